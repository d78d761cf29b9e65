"""Parallel folds benchmark (`make bench`): one LOSO protocol, sequential vs `runner.parallel=N`,
side by side in one run, on the realistic embedded data (CASME II layout, `--subjects` folds).

Both modes run the real entry point with the same seed and `runner.threads_per_fold` (1 by
default), so their predictions must be identical; the table says whether they are, and the wall
time ratio. Not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/bench_parallel.py [--parallel 2] [--subjects 10] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(root: Path, out: Path, cache: Path, args: argparse.Namespace, parallel: int) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline")
    command = [sys.executable, "-m", "mer_lightning.train", "data=casme2", f"data.root={root}", "protocol=loso",
               f"model={args.model}", f"trainer.max_epochs={args.epochs}", f"runner.parallel={parallel}",
               f"runner.threads_per_fold={args.threads}", "~logger", "extras.print_config=false",
               f"paths.cache_dir={cache}", f"hydra.run.dir={out}"]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-5:]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--subjects", type=int, default=10, help="LOSO folds")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold, in both modes")
    parser.add_argument("--model", default="cnn_bilstm")
    args = parser.parse_args()

    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    work = Path(tempfile.mkdtemp(prefix="mer-bench-parallel-"))
    try:
        root = ensure_synthetic(work / "casme2", SyntheticSpec(subjects=args.subjects, layout="casme2"))
        cache = work / "cache"
        run(root, work / "warm", cache, argparse.Namespace(**{**vars(args), "epochs": 1}), 1)  # builds the cache
        seconds = {mode: run(root, work / mode, cache, args, n) for mode, n in (("sequential", 1),
                                                                               ("parallel", args.parallel))}
        same = (work / "sequential/predictions.csv").read_text() == (work / "parallel/predictions.csv").read_text()
        print(f"\nLOSO, {args.subjects} folds, model={args.model}, {args.epochs} epochs, {args.threads} torch thread(s) "
              f"per fold; {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
        print(f"| mode | wall (s) | ratio |\n|---|---|---|\n| sequential | {seconds['sequential']:.1f} | 1.00 |")
        print(f"| runner.parallel={args.parallel} | {seconds['parallel']:.1f} | "
              f"{seconds['sequential'] / seconds['parallel']:.2f}x faster |")
        print(f"identical predictions.csv: {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
