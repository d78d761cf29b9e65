"""Spotting benchmark (`make bench`): on the embedded long videos, LOSO, side by side in one run:

- F1 micro / macro / overall (MEGC metric) of `spotter=flow_peaks` and `spotter=softnet`, and the STRS of
  spot-then-recognise (`recognise=true`, the recogniser `--model`, default linear) with each;
- the spotting pipeline's throughput: frames per second of the feature pass (decode, face crop, flow at two
  windows, scores), measured cold on every video of the first run;
- the peak memory of measuring the longest video alone, in a fresh process (frames are streamed: the
  decoded video would take far more).

Each layout is generated once (`data=synthetic_lv data.reader.layout=<layout>`); every run goes through the
real entry point (`python -m mer_lightning.spot`). Not a test: nothing here asserts a time or a figure.

    .venv/bin/python benchmarks/bench_spotting.py [--layouts cas2 samm_lv] [--subjects 8] [--model linear]
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

ROOT = Path(__file__).resolve().parents[1]
MEMORY = r"""
import json, resource, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from mer_lightning.data.synthetic.videos import read_synthetic_videos
from mer_lightning.spotting.features import FeatureOptions, FeatureStore
spec = json.loads(sys.argv[2])
table = read_synthetic_videos(spec.pop("root"), **spec)
video = max(table.videos, key=lambda v: v.n_frames)
store = FeatureStore(FeatureOptions(face="auto"))
face = store.face(video)
from mer_lightning.spotting.features import extract
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
features = extract(video, [6, 18] if video.fps < 100 else [5, 18], store.options, face)
peak = tracemalloc.get_traced_memory()[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import cv2
shape = cv2.imread(str(video.path(0)), cv2.IMREAD_UNCHANGED).shape
print(json.dumps({"video": video.id, "frames": video.n_frames, "fps": video.fps, "shape": list(shape),
                  "rss_mb": after / 1024, "rss_growth_mb": (after - before) / 1024, "traced_peak_mb": peak / 2**20}))
"""


def spot(args: argparse.Namespace, layout: str, root: Path, cache: Path, out: Path, spotter: str) -> tuple[dict, float]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline",
               PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "mer_lightning.spot", f"data.root={root}", f"data.reader.layout={layout}",
               f"data.reader.subjects={args.subjects}", f"spotter={spotter}", "recognise=true", f"model={args.model}",
               f"paths.cache_dir={cache}", f"hydra.run.dir={out}", "~logger", "extras.print_config=false"]
    if args.frame_size and layout == "samm_lv":
        command.append(f"data.reader.frame_size=[{args.frame_size[0]},{args.frame_size[1]}]")
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-8:]))
    return json.loads((out / "results.json").read_text()), time.perf_counter() - start


def memory(layout: str, root: Path, args: argparse.Namespace) -> dict:
    spec = {"root": str(root), "layout": layout, "subjects": args.subjects}
    if args.frame_size and layout == "samm_lv":
        spec["frame_size"] = list(args.frame_size)
    proc = subprocess.run([sys.executable, "-c", MEMORY, str(ROOT), json.dumps(spec)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode:
        raise SystemExit("memory measurement failed:\n" + proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["cas2", "samm_lv"], choices=["cas2", "samm_lv", "casme3_lv"])
    parser.add_argument("--subjects", type=int, default=8, help="subjects (LOSO folds), 2 videos each")
    parser.add_argument("--model", default="linear", help="the recogniser of spot-then-recognise")
    parser.add_argument("--frame-size", type=int, nargs=2, default=None,
                        help="SAMM-LV frames [width height] (default: the layout's 1020x544)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data and runs here (default: a temp dir)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="mer-bench-spotting-"))
    rows, speed, memories = [], [], []
    try:
        for layout in args.layouts:
            root, cache = work / "synthetic_lv", work / f"cache-{layout}"
            shutil.rmtree(cache, ignore_errors=True)  # features measured cold by the first run
            for spotter in ("flow_peaks", "softnet"):
                results, wall = spot(args, layout, root, cache, work / f"{layout}-{spotter}", spotter)
                m = results["metrics"]
                rows.append((layout, spotter, m, wall))
                t = results["throughput"]
                if t.get("frames_per_second"):
                    speed.append((layout, t))
            memories.append((layout, memory(layout, root, args)))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nEmbedded long videos, LOSO over {args.subjects} subjects x 2 videos; recogniser model={args.model}; "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print("\n| layout | spotter | F1 micro | F1 macro | F1 overall | TP / FP / FN | STRS | UF1 | UAR | wall (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for layout, spotter, m, wall in rows:
        print(f"| {layout} | {spotter} | {m['spot/f1_micro']:.4f} | {m['spot/f1_macro']:.4f} | {m['spot/f1']:.4f} | "
              f"{m['spot/tp']} / {m['spot/fp']} / {m['spot/fn']} | {m['str/strs']:.4f} | {m['str/uf1']:.4f} | "
              f"{m['str/uar']:.4f} | {wall:.0f} |")
    print("\nMEGC 2020 baseline (MDMD) on the real sets, overall F1: CAS(ME)^2 0.0376, SAMM-LV 0.0445.")
    print("\n| layout | videos | frames | feature pass (s) | frames/s |\n|---|---:|---:|---:|---:|")
    for layout, t in speed:
        print(f"| {layout} | {t['videos']} | {t['frames']} | {t['seconds']:.1f} | {t['frames_per_second']:.0f} |")
    print("\n| layout | longest video | frames | frame (HxW[xC]) | decoded video would be (MB) | peak RSS (MB) | "
          "RSS growth while measuring (MB) | numpy/Python peak, tracemalloc (MB) |\n|---|---|---:|---|---:|---:|---:|---:|")
    for layout, mem in memories:
        decoded = mem["frames"] * __import__("math").prod(mem["shape"]) / 2**20
        print(f"| {layout} | {mem['video']} | {mem['frames']} | {'x'.join(map(str, mem['shape']))} | {decoded:.0f} | "
              f"{mem['rss_mb']:.0f} | {mem['rss_growth_mb']:.0f} | {mem['traced_peak_mb']:.1f} |")


if __name__ == "__main__":
    main()
