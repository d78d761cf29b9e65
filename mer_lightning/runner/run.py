"""Run every fold of a protocol, resuming finished ones, and report the pooled result.

One run = one whole protocol. Each fold trains a fresh model on its training subjects, selects
the model on validation subjects carved from those training subjects, and touches its test
subjects once, at the end: every test clip exactly once, checked. A fold's predictions are
written as soon as it ends; a rerun in the same directory skips finished folds, so a crash in fold 9
keeps folds 1-8. Finished work is reused only by the configuration that made it (`fingerprint.py`:
a mismatch names the differing keys) for the same test samples, and a checkpoint only by its own
fold (`checkpoints.py`). Besides the pooled test figures the report pools each fold's selected
model on its own validation subjects (`protocol/val_uf1`): what a sweep may optimise.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold, make_folds
from mer_lightning.evaluation.report import write_report
from mer_lightning.evaluation.results import fold_record, pooled_results
from mer_lightning.runner.checkpoints import given_checkpoints
from mer_lightning.runner.fingerprint import fingerprint
from mer_lightning.runner.fold import FoldRun, check_predictions, train_fold
from mer_lightning.runner.parallel import fold_threads, log_progress, run_folds_in_parallel
from mer_lightning.runner.store import (
    interrupted_checkpoint,
    load_finished_fold,
    set_aside,
    write_fold,
)
from mer_lightning.utils.errors import MERError, Preempted, user_error
from mer_lightning.utils.loggers import log_summary
from mer_lightning.utils.rich_utils import print_results

log = logging.getLogger(__name__)


def run_protocol(cfg: DictConfig, dm) -> dict:
    """Train/test every selected fold (resuming finished ones) and write the pooled report."""
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    table = dm.load()
    all_folds = build_folds(cfg, table)
    current = fingerprint(cfg, dm.preprocessing.options())
    folds, given = given_checkpoints(cfg, select_folds(cfg, all_folds), all_folds, current)
    resume, limits = cfg.protocol.get("resume", True), debug_limits(cfg)
    runs: dict[int, FoldRun] = {}
    for fold in folds:
        fold_dir = out_dir / "folds" / f"fold_{fold.index:02d}"
        run = load_finished_fold(fold_dir, dm, fold, current) if resume else set_aside(fold_dir)
        if run is not None:
            log.info("Resuming: %s already finished, skipped", fold.name)
            runs[fold.index] = run
    pending = [f for f in folds if f.index not in runs]
    start_from = {}
    for fold in pending:
        check_selection(cfg, fold)
        fold_dir = out_dir / "folds" / f"fold_{fold.index:02d}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        start_from[fold.index] = given.get(fold.index) or (
            interrupted_checkpoint(fold_dir, fold, current) if resume else None)
    parallel, is_zero = max(1, int(cfg.protocol.get("parallel") or 1)), True
    if parallel > 1 and len(pending) > 1:
        try:
            run_folds_in_parallel(cfg, pending, start_from, parallel)
        except (Preempted, SIGTERMException):
            raise Preempted(f"stopped by SIGTERM while {len(pending)} fold(s) trained in parallel; every finished "
                            f"fold is kept under {out_dir / 'folds'} and each interrupted one has its last.ckpt. "
                            f"Resume: rerun the same command with hydra.run.dir={out_dir}") from None
        for fold in pending:
            runs[fold.index] = load_finished_fold(out_dir / "folds" / f"fold_{fold.index:02d}", dm, fold, current)
    else:
        with torch_threads(fold_threads(cfg, 1)):
            for done, fold in enumerate(pending, start=1):
                runs[fold.index] = run = train_one(cfg, dm, fold, out_dir, start_from[fold.index], current, len(runs))
                is_zero = run.is_zero
                if is_zero:
                    write_fold(out_dir / "folds" / f"fold_{fold.index:02d}", fold, run, dm.class_names, current, limits,
                               all_folds)
                log_progress(fold.index, done, len(pending), started)
    if not cfg.protocol.get("pool", True):
        log.info("protocol.pool=false: %d fold(s) written under %s; pool the run with `python -m mer_lightning.pool "
                 "%s` once every fold is there", len(pending), out_dir / "folds", out_dir)
        return {"folds_written": sorted(f.index for f in pending), "metrics": {}}
    unpredicted = sum(check_predictions(dm, f, runs[f.index].test, bool(limits)) for f in folds)
    ordered = [runs[f.index] for f in folds]
    fold_results = [fold_record(f, r.test, r.val, r.selection, r.checkpoint, dm.num_classes)
                    for f, r in zip(folds, ordered)]
    results = pooled_results(cfg, dm.class_names, [r.test for r in ordered], fold_results,
                             val_frames=[r.val for r in ordered],
                             partial=partial_reasons(cfg, limits, unpredicted, len(folds), len(all_folds)),
                             skipped=[s.as_dict() for s in dm.table.skipped])
    results["elapsed_s"] = time.time() - started
    if is_zero:
        write_report(out_dir, results, pd.concat([r.test for r in ordered], ignore_index=True), dm.class_names)
        log_summary(cfg, results)
        print_results(results)
        m = results["metrics"]
        label = "" if results["complete"] else " (NOT a protocol result: " + "; ".join(results["not_a_protocol_result"]) + ")"
        log.info("Pooled UF1 %.4f, UAR %.4f over %d fold(s)%s. Results: %s", m["protocol/uf1"], m["protocol/uar"],
                 len(folds), label, out_dir)
    return results


def train_one(cfg: DictConfig, dm, fold: Fold, out_dir: Path, start_from: str | None, current: dict,
              finished: int) -> FoldRun:
    """One fold in this process; a failure names the fold and keeps the finished ones."""
    fold_dir = out_dir / "folds" / f"fold_{fold.index:02d}"
    log.info("Training %s: %d train / %d val / %d test samples", fold.name, len(fold.train), len(fold.val),
             len(fold.test))
    try:
        run = train_fold(cfg, dm, fold, fold_dir, start_from, current)
    except (Preempted, SIGTERMException):
        raise Preempted(preempted_message(out_dir, fold_dir, fold, finished)) from None
    except KeyboardInterrupt:
        raise
    except Exception as err:
        cause = user_error(err)
        if cause is not None:
            raise cause from None
        raise RuntimeError(f"{fold.name} failed ({type(err).__name__}: {err}). {finished} finished "
                           f"fold(s) are saved under {out_dir / 'folds'}; rerun the same command to "
                           "resume from this fold.") from err
    check_predictions(dm, fold, run.test, bool(debug_limits(cfg)))
    return run


@contextmanager
def torch_threads(threads: int | None):
    """`protocol.threads_per_fold` for the folds trained in this process (restored afterwards)."""
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


def build_folds(cfg: DictConfig, table) -> list[Fold]:
    options = OmegaConf.to_container(cfg.protocol, resolve=True)
    name = options.pop("name")
    for key in ("folds", "resume"):
        options.pop(key, None)
    return make_folds(table, name, seed=cfg.seed, **options)


def select_folds(cfg: DictConfig, folds: list[Fold]) -> list[Fold]:
    selected = cfg.protocol.get("folds")
    if selected is None:
        return folds
    if isinstance(selected, int):  # `-m protocol.folds=range(26)`: one fold per job
        selected = [selected]
    unknown = sorted(set(selected) - {f.index for f in folds})
    if unknown:
        raise MERError(f"protocol.folds={list(selected)}: no fold(s) {unknown}; this protocol has folds 0-{len(folds) - 1}")
    return [f for f in folds if f.index in set(selected)]


def check_selection(cfg: DictConfig, fold: Fold) -> None:
    """Refuse any configuration that would select a model on the test subjects."""
    for name, conf in (cfg.get("callbacks") or {}).items():
        monitor = conf.get("monitor") if isinstance(conf, DictConfig) else None
        if not monitor:
            continue
        if not str(monitor).startswith(("val/", "train/")):
            raise MERError(f"callbacks.{name}.monitor={monitor}: model selection may only use validation "
                           "subjects carved from the training subjects (val/...), never the test fold.")
        if str(monitor).startswith("val/") and not fold.val:
            raise MERError(f"{fold.name} has no validation subjects (protocol.val_subjects="
                           f"{cfg.protocol.get('val_subjects')}) but callbacks.{name} selects on {monitor}. "
                           "Give validation subjects, or train a fixed number of epochs with "
                           f"callbacks.{name}=null.")


def debug_limits(cfg: DictConfig) -> list[str]:
    """Trainer settings that predict only part of each fold's test set (not a protocol result)."""
    trainer, reasons = cfg.get("trainer") or {}, []
    if trainer.get("fast_dev_run"):
        reasons.append(f"trainer.fast_dev_run={trainer.fast_dev_run}")
    limit = trainer.get("limit_test_batches")
    if limit is not None and limit != 1.0:
        reasons.append(f"trainer.limit_test_batches={limit}")
    if trainer.get("overfit_batches"):
        reasons.append(f"trainer.overfit_batches={trainer.overfit_batches}")
    return reasons


def partial_reasons(cfg: DictConfig, limits: list[str], unpredicted: int, ran: int, total: int) -> list[str]:
    """Why these figures are not a whole protocol's result ([] when they are)."""
    reasons = list(limits)
    if unpredicted:
        reasons.append(f"{unpredicted} test clip(s) not predicted")
    if ran < total:
        chosen = cfg.protocol.folds
        reasons.append(f"protocol.folds={chosen if isinstance(chosen, int) else list(chosen)}: {ran} of {total} folds")
    return reasons


def preempted_message(out_dir: Path, fold_dir: Path, fold: Fold, finished: int) -> str:
    last = fold_dir / "checkpoints" / "last.ckpt"
    where = (f"its last.ckpt is {last}" if last.is_file() else "it had no checkpoint yet and restarts")
    return (f"stopped by SIGTERM in {fold.name}: {where}; {finished} fold(s) finished in this run and every "
            f"finished fold is kept under {out_dir / 'folds'}. Resume: rerun the same command with "
            f"hydra.run.dir={out_dir}")
