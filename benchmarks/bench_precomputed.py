"""Precomputed inputs benchmark (`make bench`): the export round trip on the realistic embedded data,
and reading and caching 1,000 stored PNG clips.

1. **Round trip.** The realistic embedded data in CASME II's raw layout (`--subjects` x 5 classes x 3
   clips, 640x480 full frames: dlib face, Farneback flow at flow_size 192) is trained from its raw
   layout with the real entry point, `python -m mer_lightning.train data=casme2 protocol=loso
   model=<model>` (`--model`: cnn and ststnet), then exported (`python -m mer_lightning.preprocess data=casme2 data.num_frames=1
   export=<folder>`, as 8-bit PNGs the way STSTNet-style pipelines publish flow, and as full-precision
   .npy) and trained again from each export (`data=precomputed`), with the same seed and
   `runner.threads_per_fold=1`. The table gives pooled UF1 / UAR, wall time and whether the predictions
   are identical to the raw run's (else the largest difference of a class probability). Wall times
   include each run's start-up and depend on what else the machine runs.
2. **Reading and caching.** 1,000 stored clips (28x28 RGB PNGs, 50 subjects x 20 clips, a manifest with
   a path column) are read (manifest + each file's header), read by `data.reader.pattern` instead (the
   tolerant match), cached (decoded, resized to `data.image_size`, scaled, written), reused from the
   cache, and served for an epoch by the DataLoader (batches of 64, after one epoch of warm-up).

Not a test: nothing here asserts a time or a figure.

    .venv/bin/python benchmarks/bench_precomputed.py [--model cnn ststnet] [--subjects 10] [--clips 1000] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline",
           PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))


def entry(module: str, *overrides: str) -> float:
    """Run `python -m <module> <overrides>` as a user does; its wall time."""
    command = [sys.executable, "-m", module, *overrides, "extras.print_config=false"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-8:]))
    return time.perf_counter() - start


def round_trip(work: Path, args: argparse.Namespace) -> None:
    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    root = ensure_synthetic(work / "casme2", SyntheticSpec(subjects=args.subjects, layout="casme2"))
    cache = work / "cache"
    prepared = entry("mer_lightning.preprocess", "data=casme2", f"data.root={root}", "data.num_frames=1",
                     f"paths.cache_dir={cache}", f"hydra.run.dir={work / 'prep'}")  # dlib + flow, cached once
    inputs = {"raw layout (data=casme2)": ["data=casme2", f"data.root={root}"]}
    exports = {}
    for fmt in ("png", "npy"):
        folder = work / f"export_{fmt}"
        exports[fmt] = entry("mer_lightning.preprocess", "data=casme2", f"data.root={root}", "data.num_frames=1",
                             f"paths.cache_dir={cache}", f"export={folder}", f"export_format={fmt}",
                             f"hydra.run.dir={work / f'prep_{fmt}'}")
        inputs[f"exported {fmt.upper()} (data=precomputed)"] = ["data=precomputed", f"data.root={folder}",
                                                                "data.classes=casme2_5"]
    print(f"\n### Round trip: the realistic embedded data ({args.subjects} subjects x 5 classes x 3 clips, CASME II "
          f"raw layout), LOSO, seed {args.seed}, runner.threads_per_fold=1, report.reference=null\n")
    print(f"Preprocessing the raw layout once (dlib face + Farneback flow, cached): {prepared:.0f} s; each export "
          f"from that cache: PNG {exports['png']:.0f} s, .npy {exports['npy']:.0f} s (both entry points' start-up "
          "included).\n")
    print("| model | input | pooled UF1 / UAR | wall time | predictions vs the raw layout's |\n|---|---|---:|---:|---|")
    for model in args.model:
        common = ["protocol=loso", f"model={model}", "runner.threads_per_fold=1", f"seed={args.seed}",
                  "report.reference=null", "~logger", f"paths.cache_dir={cache}"]
        if args.epochs:
            common.append(f"trainer.max_epochs={args.epochs}")
        reference = None
        for i, (name, data) in enumerate(inputs.items()):
            out = work / f"{model}_{i}"
            seconds = entry("mer_lightning.train", *data, *common, f"hydra.run.dir={out}")
            metrics = json.loads((out / "results.json").read_text())["metrics"]
            predictions = read_predictions(out / "predictions.csv")
            if reference is None:
                reference, same = predictions, "(the reference)"
            else:
                gap = float(np.abs(predictions - reference).max())
                same = "identical" if gap == 0 else f"differ: largest class-probability gap {gap:.4f}"
            print(f"| `{model}` | {name} | {metrics['protocol/uf1']:.3f} / {metrics['protocol/uar']:.3f} | "
                  f"{seconds:.0f} s | {same} |", flush=True)


def read_predictions(path: Path) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(path)
    return frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()


def make_clips(root: Path, n: int, kind: str) -> None:
    """`n` stored clips (28x28 RGB, 50 subjects) and their manifest (with a path column)."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(0)
    per_subject = max(1, n // 50)
    rows = []
    for i in range(n):
        subject, sample = f"s{i // per_subject + 1:02d}", f"clip{i % per_subject:03d}"
        path = f"{subject}_{sample}.{kind}"
        pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
        if kind == "png":
            cv2.imwrite(str(root / path), pixels)
        else:
            np.save(root / path, pixels.transpose(2, 0, 1).astype(np.float32) / 255)
        rows.append({"subject": subject, "sample": sample, "label": ("negative", "positive", "surprise")[i % 3],
                     "path": path})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)


def speed(work: Path, args: argparse.Namespace) -> None:
    from functools import partial

    import pandas as pd
    from torch.utils.data import DataLoader

    from mer_lightning.data.datamodule import ClipDataset, MERDataModule, collate_clips
    from mer_lightning.data.readers.precomputed import read_precomputed

    n = args.clips
    print(f"\n### Reading and caching {n} stored clips (28x28 RGB, 50 subjects; {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()})\n")
    print("| files | step | time | clips/s |\n|---|---|---:|---:|")
    for kind in ("png", "npy"):
        root = work / f"clips_{kind}"
        root.mkdir(parents=True)
        make_clips(root, n, kind)
        pattern = "{subject}_{sample}." + kind
        timings = {}
        read_precomputed(root)  # once before timing: imports and the file cache warm
        start = time.perf_counter()
        table = read_precomputed(root)
        timings["read the manifest and every header (path column)"] = time.perf_counter() - start
        assert len(table) == n, table.skipped[:3]
        frame = pd.read_csv(root / "manifest.csv", dtype=str)
        frame.drop(columns=["path"]).to_csv(root / "manifest.csv", index=False)  # now found by the pattern
        upper = root / f"S01_CLIP000 .{kind.upper()}"  # one file the tolerant match has to find
        os.replace(root / f"s01_clip000.{kind}", upper)
        start = time.perf_counter()
        table = read_precomputed(root, pattern=pattern)
        timings["read by data.reader.pattern (tolerant match)"] = time.perf_counter() - start
        assert len(table) == n and table.notes.get("path_matched_tolerantly") == 1, (table.skipped[:3], table.notes)
        for size in (28, 32):
            cache = work / f"cache_{kind}_{size}"

            module = partial(MERDataModule, root, partial(read_precomputed, pattern=pattern), name="precomputed",
                             input="stored", channels=3, num_frames=1, image_size=size, cache_dir=str(cache))

            start = time.perf_counter()
            dm = module()
            dm.load()
            built = dm.cache_report
            timings[f"read + cache build at image_size {size} ({built.seconds:.2f} s of it decoding)"] = \
                time.perf_counter() - start
            start = time.perf_counter()
            dm = module()
            dm.load()
            assert not dm.cache_report.built
            timings[f"read + cache reuse at image_size {size}"] = time.perf_counter() - start
        data = ClipDataset(dm.clips, dm.table.labels, list(range(len(dm.table))), dm.mean, dm.std)
        loader = DataLoader(data, batch_size=64, shuffle=True, collate_fn=collate_clips)
        for _ in loader:  # the first epoch warms up torch's loader
            pass
        start = time.perf_counter()
        for _ in loader:
            pass
        timings["an epoch served from the cache (DataLoader, batches of 64)"] = time.perf_counter() - start
        for step, seconds in timings.items():
            print(f"| {kind.upper()} | {step} | {seconds:.3f} s | {n / max(seconds, 1e-9):,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn", "ststnet"], help="one-step models: cnn, ststnet, linear")
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=0, help="0: the trainer's default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--skip-train", action="store_true", help="only the reading and caching table")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="mer-bench-precomputed-"))
    try:
        speed(work, args)
        if not args.skip_train:
            round_trip(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
