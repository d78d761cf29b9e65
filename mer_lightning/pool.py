"""Pool a run directory whose folds were trained apart: `python -m mer_lightning.pool <run dir>`.

The folds of one protocol may be trained by separate jobs into one run directory (a SLURM job
array: `python -m mer_lightning.train -m protocol=loso 'runner.folds=range(26)' runner.pool=false
hydra/launcher=submitit_slurm hydra.sweep.dir=<run dir> hydra.sweep.subdir=.`). This reads every
finished `folds/fold_XX/fold.json`, refuses a run with a missing fold or with folds of different
configurations (naming them), and writes the same pooled report `train` writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from mer_lightning.evaluation.dashboard import log_summary
from mer_lightning.evaluation.report import print_results, write_report
from mer_lightning.evaluation.results import pooled_results
from mer_lightning.runner.fingerprint import differences
from mer_lightning.runner.run import add_reference
from mer_lightning.runner.selection import inner_folds, selection_mode
from mer_lightning.utils.errors import MERError, exit_on_user_error


def finished_folds(run_dir: Path) -> list[dict]:
    """Every finished fold's record (fold.json) under `run_dir/folds`, in fold order."""
    records = []
    for meta in sorted((run_dir / "folds").glob("fold_*/fold.json")):
        record = json.loads(meta.read_text())
        record["dir"] = meta.parent
        records.append(record)
    if not records:
        raise MERError(f"no finished fold under {run_dir / 'folds'} (expected folds/fold_XX/fold.json): give the "
                       "run directory of `python -m mer_lightning.train` (hydra.run.dir / hydra.sweep.dir)")
    return records


def check_complete(records: list[dict]) -> None:
    """Every fold of the protocol present, all made by one configuration; else a MERError naming them."""
    first = records[0]
    expected = first.get("protocol_folds") or []
    present = {r["index"] for r in records}
    missing = [i for i in range(len(expected)) if i not in present]
    if missing:
        shown = ", ".join(f"{i} (test: {', '.join(expected[i])})" for i in missing[:10])
        raise MERError(f"{len(missing)} of {len(expected)} fold(s) are missing: {shown}"
                       f"{' ...' if len(missing) > 10 else ''}. Train them into the same directory "
                       f"(runner.folds={missing}) and pool again.")
    for record in records[1:]:
        diff = differences(first.get("fingerprint"), record.get("fingerprint") or {})
        if diff or record.get("protocol_folds") != expected:
            raise MERError(f"fold {record['index']} was made with another configuration than fold {first['index']} "
                           f"({'; '.join(diff[:4]) or 'other folds'}): a pooled result would mix them")


def pool_reference(cfg, run_dir: Path, records: list[dict]) -> dict | None:
    """The classical reference on the run's folds (`report.reference`), as `train` adds it when it pools."""
    from mer_lightning.resolvers import register_resolvers
    from mer_lightning.runner.folds import build_folds
    from mer_lightning.runner.reference import reference_name, run_reference
    from mer_lightning.utils.instantiate import instantiate_strict

    if reference_name(cfg) is None:
        return None
    register_resolvers()
    dm = instantiate_strict(cfg.data, "data")
    folds = {f.index: f for f in build_folds(cfg, dm.load())}
    return run_reference(cfg, dm, [folds[r["index"]] for r in records if r["index"] in folds], run_dir)


def pool_run(run_dir: str | Path) -> dict:
    """Pool the finished folds of `run_dir` into results.json / results.md / predictions.csv."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise MERError(f"{run_dir} holds no config.yaml: give a run directory written by mer_lightning.train")
    records = finished_folds(run_dir)
    check_complete(records)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    classes = records[0]["classes"]
    tests = [pd.read_csv(r["dir"] / "predictions.csv") for r in records]
    vals = [pd.read_csv(r["dir"] / "val_predictions.csv") if (r["dir"] / "val_predictions.csv").is_file() else None
            for r in records]
    limits = sorted({limit for r in records for limit in r.get("debug_limits") or []})
    folds = [{k: r[k] for k in ("index", "test_subjects", "selection", "details", "checkpoint", "metrics",
                                "val_metrics") if k in r} for r in records]
    protocol = OmegaConf.to_container(cfg.protocol, resolve=True)
    results = pooled_results(cfg, classes, tests, folds, protocol=protocol, val_frames=vals, partial=limits)
    results["selection"] = {"mode": selection_mode(cfg), "inner_folds": inner_folds(cfg) or None}
    reference = pool_reference(cfg, run_dir, records)
    if reference is not None:
        results = add_reference(results, reference)
    write_report(run_dir, results, pd.concat(tests, ignore_index=True), classes)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    log_summary(cfg, results, run_dir, hydra=OmegaConf.load(hydra_yaml).hydra if hydra_yaml.is_file() else None)
    print_results(results)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory whose folds/ were trained apart")
    args = parser.parse_args(argv)
    exit_on_user_error(pool_run)(args.run_dir)
    print(f"wrote {args.run_dir / 'results.json'}, results.md, predictions.csv and confusion_matrix.png")


if __name__ == "__main__":
    main()
