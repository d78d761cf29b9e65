"""Selection benchmark (`make bench`): the matrix the defaults are chosen on.

Cells: the realistic embedded data (`mer_lightning.data.synthetic`: real face photographs, action-unit
motions of 1-3 px, head motion, full frames where the face must be found) at two sizes (`large`: 10
subjects x 5 classes x 3 clips, as `data=synthetic`; `small`: 6 subjects x 5 classes x 2 clips, the
size of a real set's subjects: 3-10 clips each), from each photograph alone (`astronaut`, `hopper`:
every subject a variant of one face), in both layouts (`casme2`: CASME2_RAW_selected 640x480 RGB,
`samm`: grayscale full frames). In each cell, every model preset x selection mode
(`runner.selection=refit|last|val`) runs the real entry point with the dataset's defaults,
`python -m mer_lightning.train data=<layout> data.root=<tree> protocol=loso model=<m> runner.selection=<mode>`,
and every run reports the classical reference (`model=linear`, converged, on the same folds) beside it.

Printed: one table per cell (pooled LOSO UF1, the reference's, the difference, wall time), then the
summary over cells (mean UF1 per model x mode, in how many cells the model is at or above the
reference) and the costs (refit and inner folds against val; the reference against the run).
Not a test: nothing here asserts a figure.

    .venv/bin/python benchmarks/bench_selection.py [--sizes large small] [--photos astronaut hopper]
        [--layouts casme2 samm] [--models ststnet cnn cnn_bilstm] [--modes refit last val]
        [--inner-folds 3] [--set data.flow_scaling=pixels] [--workdir DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"large": {"subjects": 10, "clips_per_class": 3}, "small": {"subjects": 6, "clips_per_class": 2}}


def write_tree(root: Path, layout: str, size: str, photo: str) -> Path:
    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    return ensure_synthetic(root / f"{layout}-{size}-{photo}", SyntheticSpec(layout=layout, photos=(photo,),
                                                                             **SIZES[size]))


def run(layout: str, root: Path, overrides: list[str], out: Path, cache: Path, threads: int | None) -> dict:
    """One run of the real entry point; its results.json (reused when the run directory has one)."""
    results = out / "results.json"
    if results.is_file():
        return json.loads(results.read_text())
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline",
               PYTHONWARNINGS="ignore")
    args = [sys.executable, "-m", "mer_lightning.train", f"data={layout}", f"data.root={root}", "protocol=loso",
            *overrides, "~logger", "extras.print_config=false", f"paths.cache_dir={cache}", f"hydra.run.dir={out}",
            *([f"runner.threads_per_fold={threads}"] if threads else [])]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{' '.join(args)} failed:\n{tail}")
    data = json.loads(results.read_text())
    data["bench_wall_s"] = time.perf_counter() - start
    results.write_text(json.dumps(data))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--photos", nargs="+", default=["astronaut", "hopper"], choices=["astronaut", "hopper"])
    parser.add_argument("--layouts", nargs="+", default=["casme2", "samm"], choices=["casme2", "samm"])
    parser.add_argument("--models", nargs="+", default=["ststnet", "cnn", "cnn_bilstm"])
    parser.add_argument("--modes", nargs="+", default=["refit", "last", "val"], choices=["refit", "last", "val"])
    parser.add_argument("--inner-folds", type=int, default=3, help="one more run per cell: cnn_bilstm, refit with "
                        "this many inner folds (0: none)")
    parser.add_argument("--inner-sizes", nargs="+", default=["small"], choices=list(SIZES),
                        help="the cell sizes that get the inner-folds run (k selection passes each)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument("--tag", default="", help="names this variant's runs in the workdir (default: from --set)")
    parser.add_argument("--workdir", default=None, help="trees, cache and runs (kept: a rerun reuses finished runs)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each with runner.threads_per_fold="
                        "cores/jobs; wall times are then measured side by side)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mer_selection_"))
    import torch

    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    tag = args.tag or "-".join(o.replace("=", "_").replace(".", "_") for o in args.set) or "defaults"
    print(f"# mer_lightning selection benchmark\n\nLOSO, pooled UF1 (chance 0.2), every fold's model chosen without "
          f"its test subject; reference: `model=linear` (converged logistic regression on the onset -> apex flow) "
          f"on the same folds. {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch "
          f"{torch.__version__}, {args.jobs} run(s) at once. Overrides: `{' '.join(args.set) or 'none'}`.\n", flush=True)
    cells = list(itertools.product(args.sizes, args.photos, args.layouts))
    plain = [(m, mode, []) for m in args.models for mode in args.modes]
    inner = [("cnn_bilstm", "refit", [f"runner.inner_folds={args.inner_folds}"])] if (
        args.inner_folds and "cnn_bilstm" in args.models) else []
    table: dict[tuple, dict] = {}
    try:
        for size, photo, layout in cells:
            start = time.perf_counter()
            root = write_tree(work / "data", layout, size, photo)
            written = time.perf_counter() - start

            def one(spec, size=size, photo=photo, layout=layout, root=root):
                model, mode, extra = spec
                name = f"{layout}-{size}-{photo}-{model}-{mode}{''.join('-' + e.split('=')[1] for e in extra)}-{tag}"
                overrides = [f"model={model}", f"runner.selection={mode}", *extra, *args.set]
                return spec, run(layout, root, overrides, work / "runs" / name, work / "cache", threads)

            runs = plain + (inner if size in args.inner_sizes else [])
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                outcomes = list(pool.map(one, runs))
            print(f"## {layout} layout, {size} ({SIZES[size]['subjects']} subjects x 5 classes x "
                  f"{SIZES[size]['clips_per_class']} clips), photograph {photo} (written in {written:.0f} s)\n")
            print("| model | selection | pooled UF1 | reference UF1 | vs reference | val UF1 | epochs | wall time | "
                  "reference time |")
            print("|---|---|---:|---:|---:|---:|---|---:|---:|")
            for (model, mode, extra), results in outcomes:
                m = results["metrics"]
                epochs = sorted({(f.get("details") or {}).get("epochs") for f in results["folds"]} - {None})
                label = mode + (f" ({', '.join(extra)})" if extra else "")
                reference = results.get("reference") or {}
                table[(size, photo, layout, model, label)] = {"uf1": m["protocol/uf1"], "ref": m.get("reference/uf1"),
                                                              "time": results.get("bench_wall_s", results["elapsed_s"]),
                                                              "ref_time": reference.get("elapsed_s")}
                val = m.get("protocol/val_uf1")
                print(f"| {model} | {label} | {m['protocol/uf1']:.3f} | {m.get('reference/uf1', float('nan')):.3f} | "
                      f"{m.get('vs_reference/uf1', float('nan')):+.3f} | {'' if val is None else f'{val:.3f}'} | "
                      f"{'-'.join(str(e) for e in (epochs[0], epochs[-1])) if epochs else ''} | "
                      f"{table[(size, photo, layout, model, label)]['time']:.0f} s | "
                      f"{reference.get('elapsed_s', float('nan')):.1f} s |", flush=True)
            print()
        summarise(table, cells)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def summarise(table: dict, cells: list) -> None:
    """Mean UF1 per model x mode over the cells, cells at or above the reference, and the costs."""
    import numpy as np

    print(f"## Summary over {len(cells)} cell(s)\n")
    print("| model | selection | mean UF1 | min UF1 | mean reference UF1 | cells >= reference | mean wall time |")
    print("|---|---|---:|---:|---:|---:|---:|")
    keys = sorted({(k[3], k[4]) for k in table}, key=lambda k: (k[0], k[1]))
    for model, label in keys:
        rows = [v for k, v in table.items() if (k[3], k[4]) == (model, label)]
        uf1 = [r["uf1"] for r in rows]
        ref = [r["ref"] for r in rows if r["ref"] is not None]
        above = sum(r["ref"] is not None and r["uf1"] >= r["ref"] - 1e-9 for r in rows)
        print(f"| {model} | {label} | {np.mean(uf1):.3f} | {min(uf1):.3f} | {np.mean(ref):.3f} | {above}/{len(rows)} | "
              f"{np.mean([r['time'] for r in rows]):.0f} s |")
    print("\nCost against `val` (wall time ratio, mean over cells):\n")
    for model in sorted({k[3] for k in table}):
        for label in sorted({k[4] for k in table if k[3] == model} - {"val"}):
            ratios = [table[k]["time"] / table[(*k[:4], "val")]["time"] for k in table
                      if k[3] == model and k[4] == label and (*k[:4], "val") in table]
            if ratios:
                print(f"- {model} {label}: {np.mean(ratios):.2f}x")
    shares = [r["ref_time"] / r["time"] for r in table.values() if r.get("ref_time")]
    if shares:
        print(f"\nReference (`report.reference=linear`): {np.mean(shares):.1%} of a run's wall time on average "
              f"(max {max(shares):.1%}; building its input's cache on first use included).")


if __name__ == "__main__":
    main()
