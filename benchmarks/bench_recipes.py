"""Recipe benchmark (`make bench`): pooled LOSO UF1 / UAR and wall time of each model preset, beside
the classical reference (`model=linear`), on the realistic embedded data in the CASME II and SAMM
layouts.

The data: `mer_lightning.data.synthetic` trees of real face photographs (one identity per subject,
head motion, action-unit motions of 1-3 px) written as `CASME2_RAW_selected` (640x480 RGB) and
SAMM (grayscale full frames), `--subjects` x 5 classes x `--clips-per-class` (default 10 x 5 x 3 =
150 clips, chance UF1 0.2). Each recipe runs the real entry point,
`python -m mer_lightning.train data=<casme2|samm> data.root=<tree> protocol=loso <recipe>`, with each
dataset's defaults; models are selected on validation subjects only (never on the test subject).

Not a test: nothing here asserts a figure; the table says where a recipe stands against the linear
baseline (`vs linear`: its UF1 minus the baseline's, measured in the same run).

    .venv/bin/python benchmarks/bench_recipes.py [--layouts casme2 samm] [--recipes linear cnn_bilstm]
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
# name -> overrides on top of `data=<layout>`: each model preset with the dataset's defaults
RECIPES = {
    "linear": ["model=linear"],
    "ststnet": ["model=ststnet"],
    "cnn": ["model=cnn"],
    "cnn_bilstm": ["model=cnn_bilstm"],
    "timm": ["model=timm"],
    "frames_cnn_bilstm": ["model=cnn_bilstm", "data.input=frames", "data.face=none", "data.image_size=64"],
}
DEFAULT_RECIPES = ["linear", "ststnet", "cnn", "cnn_bilstm", "timm"]


def write_tree(layout: str, root: Path, subjects: int, clips_per_class: int) -> Path:
    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    return ensure_synthetic(root, SyntheticSpec(subjects=subjects, clips_per_class=clips_per_class, layout=layout))


def run_recipe(layout: str, root: Path, overrides: list[str], out: Path, cache: Path) -> tuple[dict, float]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline")
    args = [sys.executable, "-m", "mer_lightning.train", f"data={layout}", f"data.root={root}", "protocol=loso",
            *overrides, "~logger", "extras.print_config=false", f"paths.cache_dir={cache}", f"hydra.run.dir={out}"]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{' '.join(args)} failed:\n{tail}")
    return json.loads((out / "results.json").read_text())["metrics"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["casme2", "samm"], choices=["casme2", "samm"])
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, choices=list(RECIPES))
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips-per-class", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where to write the trees, cache and runs (temp dir)")
    args = parser.parse_args()
    recipes = ["linear", *[r for r in args.recipes if r != "linear"]]  # the reference first, always
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mer_recipes_"))
    import torch

    print(f"# mer_lightning recipe benchmark\n\nLOSO on the realistic embedded data: {args.subjects} subjects x 5 "
          f"classes x {args.clips_per_class} clips per layout; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU(s), torch {torch.__version__} ({torch.get_num_threads()} threads). Wall time "
          "includes start-up and building the preprocessing cache on first use of a setting.\n", flush=True)
    try:
        for layout in args.layouts:
            start = time.perf_counter()
            root = write_tree(layout, work / layout, args.subjects, args.clips_per_class)
            print(f"## {layout} layout (written in {time.perf_counter() - start:.0f} s)\n")
            print("| recipe | overrides | pooled UF1 | pooled UAR | vs linear (UF1) | wall time |")
            print("|---|---|---:|---:|---:|---:|", flush=True)
            baseline = None
            for name in recipes:
                metrics, seconds = run_recipe(layout, root, RECIPES[name], work / "runs" / f"{layout}-{name}",
                                              work / "cache")
                uf1, uar = metrics["protocol/uf1"], metrics["protocol/uar"]
                baseline = uf1 if baseline is None else baseline
                print(f"| {name} | `{' '.join(RECIPES[name])}` | {uf1:.3f} | {uar:.3f} | {uf1 - baseline:+.3f} | "
                      f"{seconds:.0f} s |", flush=True)
            print()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
