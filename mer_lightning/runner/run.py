"""Run every fold of a protocol, resuming finished ones, and report the pooled result.

One run = one whole protocol. Each fold trains a fresh model on its training subjects, chosen as
`runner.selection` says (`selection.py`: refit, last or val; never on a test subject), and touches
its test subjects once, at the end: every test clip exactly once, checked. A fold's predictions are
written as soon as it ends; a rerun in the same directory skips finished folds, so a crash in fold 9
keeps folds 1-8. Finished work is reused only by the configuration that made it (`fingerprint.py`:
a mismatch names the differing keys) for the same test samples, and a checkpoint only by its own
fold (`checkpoints.py`). Besides the pooled test figures the report pools the selection's
validation predictions (`protocol/val_uf1`: what a sweep may optimise) and, beside the model, the
classical reference trained on the same folds (`reference.py`).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from mer_lightning.evaluation.dashboard import log_summary
from mer_lightning.evaluation.report import print_results, write_report
from mer_lightning.evaluation.results import fold_record, pooled_results
from mer_lightning.runner.checkpoints import given_checkpoints
from mer_lightning.runner.fingerprint import fingerprint
from mer_lightning.runner.fold import FoldRun, run_fold
from mer_lightning.runner.folds import (
    build_folds,
    check_predictions,
    check_selection,
    debug_limits,
    fold_folder,
    partial_reasons,
    runner_settings,
    select_folds,
)
from mer_lightning.runner.optimistic import LABEL, pooled_optimistic
from mer_lightning.runner.pack import pack_size, packs, run_pack
from mer_lightning.runner.parallel import fold_threads, log_progress, run_folds_in_parallel
from mer_lightning.runner.reference import run_reference
from mer_lightning.runner.selection import inner_folds, selection_mode
from mer_lightning.runner.store import (
    finished_folds,
    interrupted_checkpoint,
    load_finished_fold,
    write_fold,
)
from mer_lightning.utils.errors import Preempted

log = logging.getLogger(__name__)


def run_protocol(cfg: DictConfig, dm) -> dict:
    """Train/test every selected fold (resuming finished ones) and write the pooled report."""
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    settings = runner_settings(cfg)
    table = dm.load()
    all_folds = build_folds(cfg, table)
    current = fingerprint(cfg, dm.preprocessing.options())
    folds, given = given_checkpoints(cfg, select_folds(cfg, all_folds), all_folds, current)
    resume, limits = settings.get("resume", True), debug_limits(cfg)
    runs: dict[int, FoldRun] = finished_folds(
        folds, out_dir, lambda fold_dir, fold: load_finished_fold(fold_dir, dm, fold, current), resume)
    pending = [f for f in folds if f.index not in runs]
    start_from = {}
    for fold in pending:
        check_selection(cfg, fold)
        fold_dir = fold_folder(out_dir, fold.index)
        fold_dir.mkdir(parents=True, exist_ok=True)
        start_from[fold.index] = given.get(fold.index) or (
            interrupted_checkpoint(fold_dir, fold, current) if resume else None)
    parallel, is_zero = max(1, int(settings.get("parallel") or 1)), True
    pack, why = pack_size(cfg, dm) if len(pending) > 1 else (1, None)
    if why:
        log.warning("runner.pack=%s: folds train one after another, since %s", settings.get("pack"), why)
    if parallel > 1 and len(pending) > 1:
        try:
            run_folds_in_parallel(cfg, pending, start_from, parallel, pack=pack)
        except (Preempted, SIGTERMException):
            raise Preempted(f"stopped by SIGTERM while {len(pending)} fold(s) trained in parallel; every finished "
                            f"fold is kept under {out_dir / 'folds'} and each interrupted one has its last.ckpt. "
                            f"Resume: rerun the same command with hydra.run.dir={out_dir}") from None
        for fold in pending:
            runs[fold.index] = load_finished_fold(fold_folder(out_dir, fold.index), dm, fold, current)
    elif pack > 1:
        done = 0
        with torch_threads(fold_threads(cfg, 1)):
            for group in packs(pending, pack):
                packed = run_pack(cfg, dm, group, out_dir, start_from, current)
                for fold in group:
                    runs[fold.index] = packed[fold.index]
                    write_fold(fold_folder(out_dir, fold.index), fold, packed[fold.index], dm.class_names, current,
                               limits, all_folds)
                done += len(group)
                log_progress([f.index for f in group], done, len(pending), started)
    else:
        with torch_threads(fold_threads(cfg, 1)):
            for done, fold in enumerate(pending, start=1):
                runs[fold.index] = run = run_fold(cfg, dm, fold, out_dir, start_from[fold.index], current, len(runs))
                is_zero = run.is_zero
                if is_zero:
                    write_fold(fold_folder(out_dir, fold.index), fold, run, dm.class_names, current, limits, all_folds)
                log_progress(fold.index, done, len(pending), started)
    if not settings.get("pool", True):
        log.info("runner.pool=false: %d fold(s) written under %s; pool the run with `python -m mer_lightning.pool "
                 "%s` once every fold is there", len(pending), out_dir / "folds", out_dir)
        return {"folds_written": sorted(f.index for f in pending), "metrics": {}}
    unpredicted = sum(check_predictions(dm, f, runs[f.index].test, bool(limits)) for f in folds)
    ordered = [runs[f.index] for f in folds]
    fold_results = [fold_record(f, r.test, r.val, r.selection, r.checkpoint, dm.num_classes, r.details)
                    for f, r in zip(folds, ordered)]
    predictions = pd.concat([r.test for r in ordered], ignore_index=True)
    results = pooled_results(cfg, dm.class_names, [r.test for r in ordered], fold_results,
                             val_frames=[r.val for r in ordered],
                             partial=partial_reasons(cfg, limits, unpredicted, len(folds), len(all_folds)),
                             skipped=[s.as_dict() for s in dm.table.skipped])
    results["selection"] = {"mode": selection_mode(cfg), "inner_folds": inner_folds(cfg) or None}
    optimistic = [r.optimistic for r in ordered if r.optimistic is not None]
    if optimistic and len(optimistic) == len(ordered):
        results["metrics"].update(pooled_optimistic(optimistic, dm.num_classes, results["metrics"]))
        results["optimistic"] = {"label": LABEL, "epochs": {f.index: (r.details.get("optimistic") or {}).get("epoch")
                                                            for f, r in zip(folds, ordered)}}
    if is_zero:
        reference = run_reference(cfg, dm, folds, out_dir)
        if reference is not None:
            results = add_reference(results, reference)
        results["elapsed_s"] = time.time() - started
        write_report(out_dir, results, predictions, dm.class_names)
        log_summary(cfg, results, out_dir)
        print_results(results)
        m = results["metrics"]
        label = "" if results["complete"] else " (NOT a protocol result: " + "; ".join(results["not_a_protocol_result"]) + ")"
        versus = (f"; reference {results['reference']['name']} UF1 {m['reference/uf1']:.4f} "
                  f"({m['vs_reference/uf1']:+.4f})" if "reference/uf1" in m else "")
        log.info("Pooled UF1 %.4f, UAR %.4f over %d fold(s)%s%s. Results: %s", m["protocol/uf1"], m["protocol/uar"],
                 len(folds), versus, label, out_dir)
    results.setdefault("elapsed_s", time.time() - started)
    return results


def add_reference(results: dict, reference: dict) -> dict:
    """The reference's pooled figures beside the model's (`reference/*`) and the differences (`vs_reference/*`)."""
    metrics = results["metrics"]
    for key in ("uf1", "uar", "acc"):
        metrics[f"reference/{key}"] = reference["metrics"][key]
        metrics[f"vs_reference/{key}"] = metrics[f"protocol/{key}"] - reference["metrics"][key]
    results["reference"] = reference
    return results


@contextmanager
def torch_threads(threads: int | None):
    """`runner.threads_per_fold` for the folds trained in this process (restored afterwards)."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
