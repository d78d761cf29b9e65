"""Packed folds benchmark (`make bench`): one LOSO protocol sequential vs `runner.parallel=2` vs
`runner.pack=K` (and both), side by side in one run, with the wall time, the CPU time, the pooled UF1 and
whether each fold's predictions are the sequential ones.

Data (both cached before anything is timed):
- `casme2`: the realistic embedded data in the CASME II layout (`CASME2_RAW_selected` full frames, dlib
  face crops, flow at `flow_size` 192), 10 subjects x 5 classes x 3 clips: LOSO, 10 folds;
- `composite68`: a set the size of the MEGC 2019 composite's subject count (68 subjects x 5 classes x 1
  clip, face crops at 320x240) as 28 px onset -> apex flow inputs (STSTNet's input): LOSO, 68 folds.

Every run is the real entry point with the same seed and `runner.threads_per_fold` (1 by default, so the
sequential and packed runs have identical float sums and one process uses one core: the CPU column then
compares the work done, whatever else runs on the machine). Not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/bench_pack.py [--sets casme2 composite68] [--models ststnet cnn_bilstm]
        [--modes sequential parallel pack pack+parallel] [--pack 0] [--epochs 15] [--threads 1]
        [--set runner.selection=last] [--workdir DIR]

`--pack 0` packs every fold of the protocol (K = folds); `pack+parallel` splits them over the 2
processes. "folds' training" is the time from the first fold's start to the last fold's end (from the
run's log: no start-up, no report); the linear reference (the same fits in every mode) is left out
unless `--reference`. A device (`--set trainer=gpu`) is measured the same way; none was lent to the task that
wrote this (CPU figures only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "casme2": {"spec": {"subjects": 10, "layout": "casme2"}, "folds": 10,
               "overrides": ["data=casme2", "protocol=loso"]},
    "composite68": {"spec": {"subjects": 68, "clips_per_class": 1, "cropped": True, "frame_size": (320, 240)},
                    "folds": 68, "overrides": ["data=casme2", "protocol=loso", "data.image_size=28"]},
}
MODES = {"sequential": [], "parallel": ["runner.parallel=2"], "pack": ["runner.pack={pack}"],
         "pack+parallel": ["runner.pack={pack}", "runner.parallel=2"],
         "pack vmap": ["runner.pack={pack}", "runner.pack_execution=vmap"]}


def run(root: Path, out: Path, cache: Path, overrides: list[str]) -> dict:
    """One run of the real entry point: its results.json, with the wall and CPU seconds it took."""
    if (out / "results.json").is_file() and (out / "bench.json").is_file():
        return {**json.loads((out / "results.json").read_text()), **json.loads((out / "bench.json").read_text())}
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline",
               PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "mer_lightning.train", f"data.root={root}", *overrides, "~logger",
               "extras.print_config=false", f"paths.cache_dir={cache}", f"hydra.run.dir={out}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-8:]))
    timing = {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
    (out / "bench.json").write_text(json.dumps(timing))
    return {**json.loads((out / "results.json").read_text()), **timing}


def training_seconds(out: Path) -> float:
    """From the run's log: the first fold's training start to the last fold's end (no start-up, no report)."""
    from datetime import datetime

    stamps = []
    for line in (out / "train.log").read_text().splitlines():
        if ("Training fold" in line or "stacked model" in line or " fold(s), " in line or "finished (" in line) \
                and line.startswith("["):
            stamps.append(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f"))
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else float("nan")


def compare(reference: Path, other: Path) -> str:
    """Whether `other`'s predictions are the sequential run's: identical, else how far apart."""
    import pandas as pd

    a, b = pd.read_csv(reference / "predictions.csv"), pd.read_csv(other / "predictions.csv")
    if (reference / "predictions.csv").read_text() == (other / "predictions.csv").read_text():
        return "identical"
    probs = [c for c in a.columns if c.startswith("p_")]
    a, b = a.sort_values("sample_id").reset_index(drop=True), b.sort_values("sample_id").reset_index(drop=True)
    same = int((a.y_pred == b.y_pred).sum())
    return f"{same}/{len(a)} same class, max |dp| {float((a[probs] - b[probs]).abs().max().max()):.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--models", nargs="+", default=["ststnet", "cnn_bilstm"])
    parser.add_argument("--modes", nargs="+", default=["sequential", "parallel", "pack", "pack+parallel"],
                        choices=list(MODES))
    parser.add_argument("--pack", type=int, default=0, help="folds per pack (0: all of them)")
    parser.add_argument("--epochs", type=int, default=15, help="trainer.max_epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold, in every mode (0: default)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument("--reference", action="store_true", help="also fit the linear reference in every run (the "
                        "same L-BFGS fits in every mode: left out by default)")
    parser.add_argument("--workdir", default=None, help="keep data, caches and runs here (reruns reuse finished runs)")
    args = parser.parse_args()

    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mer-bench-pack-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    threads = [f"runner.threads_per_fold={args.threads}"] if args.threads else []
    rows = []
    try:
        for name in args.sets:
            spec = SETS[name]
            root = ensure_synthetic(work / "data" / name, SyntheticSpec(**spec["spec"]))
            base = [*spec["overrides"], f"trainer.max_epochs={args.epochs}", *threads, *args.set,
                    *([] if args.reference else ["report.reference=null"])]
            for model in args.models:
                warm = run(root, work / "runs" / f"{name}-{model}-warm", cache,
                           [*spec["overrides"], f"model={model}", "trainer.max_epochs=1", "runner.folds=[0]"])
                del warm  # builds the cache (and the reference's) before anything is timed
                pack = args.pack or spec["folds"]
                results = {}
                for mode in args.modes:
                    overrides = [*base, f"model={model}", *[o.format(pack=pack) for o in MODES[mode]]]
                    out = work / "runs" / f"{name}-{model}-{mode.replace('+', '_').replace(' ', '_')}"
                    results[mode] = (run(root, out, cache, overrides), out)
                reference = results.get("sequential")
                for mode, (result, out) in results.items():
                    seq = reference[0] if reference else None
                    rows.append({
                        "set": name, "folds": spec["folds"], "model": model,
                        "mode": mode.replace("pack", f"pack={pack}"),
                        "wall": result["wall_s"], "cpu": result["cpu_s"], "train": training_seconds(out),
                        "uf1": result["metrics"]["protocol/uf1"],
                        "speedup": seq["wall_s"] / result["wall_s"] if seq else float("nan"),
                        "same": compare(reference[1], out) if reference and mode != "sequential" else "",
                    })
        print(f"\nLOSO, {args.epochs} epochs, runner.threads_per_fold={args.threads or 'default'}"
              f"{' ' + ' '.join(args.set) if args.set else ''}; {os.cpu_count()} CPU cores, "
              f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end")
        print("| data (folds) | model | mode | wall (s) | folds' training (s) | CPU (s) | wall vs sequential | "
              "pooled UF1 | predictions vs sequential |")
        print("|---|---|---|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r['set']} ({r['folds']}) | {r['model']} | {r['mode']} | {r['wall']:.1f} | {r['train']:.1f} | "
                  f"{r['cpu']:.1f} | {r['speedup']:.2f}x | {r['uf1']:.4f} | {r['same']} |")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
