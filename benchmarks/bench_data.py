"""Data-path benchmark (`make bench`): the preprocessing cache against decoding JPEGs every epoch.

Measured side by side in one run, on the same clips (a synthetic CASME II-shaped tree written
with mer_lightning.data.synthetic: 640x480 full frames of real faces, 8-frame 112x112 grayscale clips):

1. clips/s served by the training DataLoader: from the memory-mapped cache, from an array already
   in memory, and decoding + resizing the JPEG frames on every access (what a loader without a
   cache does every epoch);
2. preprocessing throughput: frame decoding + resizing, dlib face detection + landmarks + crop,
   TV-L1 / Farneback / DIS optical flow + strain on the face at `flow_size`, flow sequences;
   plus dlib on a real photograph (skimage's astronaut);
3. one training epoch of cnn_bilstm (Lightning, the project's MERModule) fed from the cache, from
   memory, and from JPEGs.

Timings are the best of `--repeats` interleaved runs (the machine may be shared). Not a test:
nothing here asserts a time.

    .venv/bin/python benchmarks/bench_data.py [--subjects 8] [--clips-per-class 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import lightning.pytorch as pl  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from mer_lightning.data.cache import ClipCache  # noqa: E402
from mer_lightning.data.clips import frame_plan  # noqa: E402
from mer_lightning.data.datamodule import ClipDataset, collate_clips  # noqa: E402
from mer_lightning.data.labels import apply_scheme  # noqa: E402
from mer_lightning.data.preprocessing import (
    Preprocessing,  # noqa: E402
    load_clip,  # noqa: E402
)
from mer_lightning.data.readers import read_casme2  # noqa: E402
from mer_lightning.data.synthetic import SyntheticSpec  # noqa: E402
from mer_lightning.data.synthetic.writers import write_casme2_like  # noqa: E402
from mer_lightning.utils.errors import MERError  # noqa: E402
from mer_lightning.vision.face import FaceNotFound  # noqa: E402
from mer_lightning.vision.flow import FLOW_METHODS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOW_SIZE = 192


class DecodingDataset(Dataset):
    """No cache: decode and resize the selected JPEG frames on every access."""

    def __init__(self, table, size: int, num_frames: int, mean: float = 0.5, std: float = 0.5):
        self.table, self.size, self.num_frames, self.mean, self.std = table, size, num_frames, mean, std

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        clip = load_clip(self.table[i], "uniform", self.num_frames, self.size, 1)
        x = (torch.from_numpy(clip).float() / 255.0 - self.mean) / self.std
        return {"x": x, "y": int(self.table[i].label), "index": i}


def best_of(repeats: int, fn) -> float:
    return min(fn() for _ in range(repeats))


def loader_seconds(dataset, batch_size: int, workers: int, passes: int = 1) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate_clips,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(passes):
        for _batch in loader:
            pass
    return time.perf_counter() - start


def decoded_frames(table, mode: str, num_frames: int) -> int:
    """Source frames a clip's selection decodes (the blend partners included)."""
    total = 0
    for sample in table:
        used = set()
        for a, b, w in frame_plan(sample, mode, num_frames):
            used.add(a)
            if w > 0:
                used.add(b)
        total += len(used)
    return total


def preprocessing_rows(table, size: int, frames: int, repeats: int) -> list[tuple[str, str, str, str]]:
    """Each stage over every clip, one process, the landmark model loaded once beforehand."""
    rows = []
    n = len(table)
    per_clip = decoded_frames(table, "uniform", frames)
    onset_apex = decoded_frames(table, "onset_apex", 2)
    stages = [("decode + resize (no face), 8 frames", Preprocessing(num_frames=frames, image_size=size), per_clip)]
    aligner, face = None, "none"
    try:
        from mer_lightning.vision.face import FaceAligner

        start = time.perf_counter()
        aligner, face = FaceAligner(), "dlib"
        load = time.perf_counter() - start
        stages += [("dlib face + align + crop, 8 frames", Preprocessing(num_frames=frames, image_size=size, face="dlib"),
                    per_clip)]
    except MERError:
        pass
    # motion measured on the face at flow_size (the data configs' default), then resized to 32
    for method in FLOW_METHODS:
        stages.append((f"{face} face + {method} flow + strain at flow_size {FLOW_SIZE}",
                       Preprocessing(input="flow", image_size=32, flow_size=FLOW_SIZE, flow=method, face=face),
                       onset_apex))
    stages.append((f"{face} face + farneback flow_seq, {frames} steps at flow_size {FLOW_SIZE}",
                   Preprocessing(input="flow_seq", num_frames=frames, image_size=32, flow_size=FLOW_SIZE, face=face),
                   per_clip))
    for name, prep, decoded in stages:
        found = []

        def run(prep=prep, found=found):
            found.clear()
            start = time.perf_counter()
            for sample in table:
                try:
                    prep.process(sample, aligner if prep.face == "dlib" else None)
                    found.append(sample.id)
                except FaceNotFound:
                    pass
            return time.perf_counter() - start

        seconds = best_of(repeats, run)
        note = f"faces found on {len(found)}/{n} synthetic clips" if prep.face == "dlib" else ""
        if prep.face == "none" and prep.input != "frames":
            note = "whole frames: the [face] extra is not installed"
        rows.append((name, f"{n / seconds:,.0f}", f"{decoded / seconds:,.0f}", note))
    if aligner is not None:
        from skimage.data import astronaut

        photo = astronaut()

        def photo_run(k: int = 10):
            start = time.perf_counter()
            for _ in range(k):
                aligner.estimate(photo).apply(photo, size)
            return (time.perf_counter() - start) / k

        seconds = best_of(repeats, photo_run)
        rows.append(("dlib face + align + crop on a 512x512 photo", f"{1 / seconds:,.0f}", f"{1 / seconds:,.0f}",
                     "skimage astronaut (a real face), one frame"))
        rows.append(("loading dlib's 68-landmark model (once per build)", "-", "-", f"{load:.2f} s"))
    else:
        rows.append(("dlib face detection", "-", "-", 'not measured: pip install -e ".[face]"'))
    return rows


class EpochTimer(pl.Callback):
    """Wall time of each training epoch, with the name of the source that fed it."""

    def __init__(self, names: list[str]):
        self.names, self.times, self.start = names, [], 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.times.append((self.names[trainer.current_epoch % len(self.names)], time.perf_counter() - self.start))


class RotatingData(pl.LightningDataModule):
    """Epoch k is fed by source k mod n: the sources are timed interleaved, epoch by epoch."""

    def __init__(self, datasets: dict, batch_size: int, workers: int):
        super().__init__()
        self.datasets, self.batch_size, self.workers = list(datasets.values()), batch_size, workers

    def train_dataloader(self) -> DataLoader:
        data = self.datasets[self.trainer.current_epoch % len(self.datasets)]
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, num_workers=self.workers,
                          collate_fn=collate_clips)


def make_model(num_classes: int, size: int, frames: int, epochs: int):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mer_lightning.models.factory import ClipShape, build_model
    from mer_lightning.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="train.yaml", overrides=["model=cnn_bilstm", f"data.image_size={size}",
                                                          f"data.num_frames={frames}", f"trainer.max_epochs={epochs}"])
    return build_model(cfg.model, ClipShape.of(cfg.data, num_classes))


def epoch_seconds(datasets: dict, args, num_classes: int) -> dict[str, float]:
    """Best epoch time per source; one model, sources rotating every epoch (a first round warms up)."""
    pl.seed_everything(0, workers=True, verbose=False)
    model = make_model(num_classes, args.size, args.frames, args.epochs)
    names = list(datasets)
    timer = EpochTimer(names)
    epochs = len(names) * (1 + args.epochs)
    trainer = pl.Trainer(max_epochs=epochs, accelerator=args.accelerator, devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
                         reload_dataloaders_every_n_epochs=1)
    trainer.fit(model, datamodule=RotatingData(datasets, args.batch_size, args.workers))
    measured = timer.times[len(names):]
    return {name: min(t for n, t in measured if n == name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--clips-per-class", type=int, default=4)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per source (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--workdir", default=None, help="where to write the synthetic tree and cache (temp dir)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mer_bench_"))
    try:
        spec = SyntheticSpec(subjects=args.subjects, clips_per_class=args.clips_per_class, seed=0)
        t0 = time.perf_counter()
        root = write_casme2_like(work / "casme2_like", spec)
        table = apply_scheme(read_casme2(root), "all")
        n = len(table)
        jpegs = sum(len(s.frames) for s in table)
        print(f"# mer_lightning data benchmark\n\n{n} clips ({args.subjects} subjects, {jpegs} JPEG frames of "
              f"{spec.size[0]}x{spec.size[1]} written in {time.perf_counter() - t0:.1f} s), clips of {args.frames} frames at "
              f"{args.size}x{args.size}, grayscale; batch {args.batch_size}, {args.workers} loader worker(s); "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s) visible, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}.\n", flush=True)

        prep = Preprocessing(num_frames=args.frames, image_size=args.size)
        cache = ClipCache(work / "cache", prep, root, dataset="bench", progress=False)
        start = time.perf_counter()
        cached = cache.get(table.samples)
        build = time.perf_counter() - start
        in_memory = np.array(cached.clips)  # the same arrays, copied into RAM
        labels = table.labels
        everything = list(range(n))

        # 1. loader throughput
        datasets = {
            "cache (memory-mapped .npy)": ClipDataset(cached.clips, labels, everything, 0.5, 0.5),
            "in memory (numpy array)": ClipDataset(in_memory, labels, everything, 0.5, 0.5),
            "JPEG decode every access": DecodingDataset(table, args.size, args.frames),
        }
        passes = {"JPEG decode every access": 1}
        seconds = {k: float("inf") for k in datasets}
        for data in datasets.values():  # warm-up: first-batch costs of torch and the DataLoader, page cache
            loader_seconds(data, args.batch_size, args.workers)
        for _ in range(args.repeats):  # interleaved: a busy neighbour slows all of them alike
            for name, data in datasets.items():
                p = passes.get(name, 5)
                seconds[name] = min(seconds[name], loader_seconds(data, args.batch_size, args.workers, p) / p)
        rate = {k: n / v for k, v in seconds.items()}
        print("## 1. Training DataLoader throughput\n")
        print("| source | clips/s | vs JPEG decoding |\n|---|---:|---:|")
        for name in datasets:
            print(f"| {name} | {rate[name]:,.0f} | {rate[name] / rate['JPEG decode every access']:.1f}x |")
        ratio = rate["cache (memory-mapped .npy)"] / rate["JPEG decode every access"]
        print(f"\ncache vs JPEG decoding: **{ratio:.1f}x** (target >= 20x: {'met' if ratio >= 20 else 'NOT met'}); "
              f"the cache was built once in {build:.2f} s ({n / build:,.0f} clips/s).\n", flush=True)

        # 2. preprocessing
        print("## 2. Preprocessing throughput (one process)\n")
        print("| stage | clips/s | source frames/s | note |\n|---|---:|---:|---|")
        for row in preprocessing_rows(table, args.size, args.frames, args.repeats):
            print("| " + " | ".join(row) + " |")
        print("\nsource frames = JPEG frames decoded (8-frame clips: the frames the uniform selection blends; "
              "flow: onset and apex). Face detection runs once per clip, on the onset frame.\n", flush=True)

        # 3. training epoch
        if not args.skip_training:
            print(f"## 3. One training epoch of cnn_bilstm ({args.accelerator}; one model, the three sources "
                  f"rotating epoch by epoch, best of {args.epochs} epochs each after a warm-up round)\n")
            epoch = epoch_seconds(datasets, args, len(table.classes))
            print("| source | s / epoch | vs in memory |\n|---|---:|---:|")
            for name in datasets:
                print(f"| {name} | {epoch[name]:.2f} | {epoch[name] / epoch['in memory (numpy array)']:.2f}x |")
            slow = epoch["cache (memory-mapped .npy)"] / epoch["in memory (numpy array)"] - 1
            jpeg = epoch["JPEG decode every access"] / epoch["cache (memory-mapped .npy)"]
            print(f"\nepoch from the cache vs in memory: **{slow:+.1%}** (target within 10%: "
                  f"{'met' if slow <= 0.10 else 'NOT met'}); JPEG decoding makes an epoch {jpeg:.2f}x as long "
                  "as the cache.\n", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
