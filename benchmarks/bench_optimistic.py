"""Honest vs optimistic benchmark (`make bench`): how much picking each fold's epoch on its test subject
(what published MER code does) adds to a LOSO figure, for `model=ststnet` and `model=cnn_bilstm`.

One run per model of the real entry point on the realistic embedded data (CASME II layout, 10 subjects
x 5 classes x 3 clips), `protocol.optimistic=true`: the honest figure (`protocol/uf1`, this tool's
default selection) and, from the same training, the pooled best-test-epoch figure (`optimistic/uf1`).
Not a test: nothing here asserts a figure.

    .venv/bin/python benchmarks/bench_optimistic.py [--models ststnet cnn_bilstm] [--selection last]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["ststnet", "cnn_bilstm"])
    parser.add_argument("--selection", nargs="+", default=["refit", "last"], choices=["refit", "last", "val"])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mer_optimistic_"))
    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    root = ensure_synthetic(work / "casme2", SyntheticSpec(subjects=args.subjects, clips_per_class=3))
    print(f"# Honest vs optimistic\n\nLOSO on the realistic embedded data (CASME II layout, {args.subjects} subjects x 5 "
          f"classes x 3 clips); {platform.machine()}, {os.cpu_count()} CPU(s). `optimistic`: each fold's epoch chosen "
          "on its test subject, as in published code (not a result).\n")
    print("| model | selection | honest UF1 | honest UAR | optimistic UF1 | optimistic UAR | gap (UF1) | wall time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", PYTHONWARNINGS="ignore")
    try:
        for model in args.models:
            for selection in args.selection:
                out = work / "runs" / f"{model}-{selection}"
                command = [sys.executable, "-m", "mer_lightning.train", "data=casme2", f"data.root={root}",
                           "protocol=loso", f"model={model}", f"runner.selection={selection}",
                           "protocol.optimistic=true", "report.reference=null", "~logger",
                           f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={out}"]
                start = time.perf_counter()
                proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(proc.stderr.splitlines()[-5:]))
                m = json.loads((out / "results.json").read_text())["metrics"]
                print(f"| {model} | {selection} | {m['protocol/uf1']:.3f} | {m['protocol/uar']:.3f} | "
                      f"{m['optimistic/uf1']:.3f} | {m['optimistic/uar']:.3f} | {m['optimistic_gap/uf1']:+.3f} | "
                      f"{time.perf_counter() - start:.0f} s |", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
