"""The resume store: finished folds on disk, reused only by the configuration that made them.

A fold is finished when its `fold.json` exists (written last, after its predictions). A rerun in the
same run directory reuses it only when its fingerprint equals this run's and it holds exactly this
fold's test samples; an interrupted fold resumes from its `last.ckpt` under the same checks.
`runner.resume=false` moves an earlier attempt's folder aside instead of mixing with it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from mer_lightning.data.splits import Fold
from mer_lightning.evaluation.results import fold_record
from mer_lightning.runner.checkpoints import check_fold, read_meta
from mer_lightning.runner.fingerprint import check_same
from mer_lightning.runner.fold import FoldRun
from mer_lightning.runner.folds import fold_folder
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.io import write_csv, write_json

log = logging.getLogger(__name__)


def write_fold(fold_dir: Path, fold: Fold, run: FoldRun, classes: list[str], current: dict, limits: list[str],
               all_folds: list[Fold]) -> None:
    """A finished fold, on disk at once: predictions first, `fold.json` (what makes it finished) last.

    `fold.json` also lists every fold of the protocol (their test subjects) and the class names, so
    a run directory whose folds were trained apart (a job array) can be pooled and checked complete.
    """
    write_csv(fold_dir / "predictions.csv", run.test)
    if run.val is not None:
        write_csv(fold_dir / "val_predictions.csv", run.val)
    if run.optimistic is not None:
        write_csv(fold_dir / "optimistic_predictions.csv", run.optimistic)
    record = fold_record(fold, run.test, run.val, run.selection, run.checkpoint, len(classes), run.details)
    write_json(fold_dir / "fold.json", {**record, "debug_limits": limits, "fingerprint": current, "classes": classes,
                                        "protocol_folds": [f.test_subjects for f in all_folds]})


def finished_record(fold_dir: Path, written: Path, current: dict, redo: str) -> dict | None:
    """A finished fold's `fold.json` (None when it or the file `written` before it is missing), checked to
    be this configuration's: a different one names the keys and says how to `redo` the folds instead."""
    meta = fold_dir / "fold.json"
    if not (written.is_file() and meta.is_file()):
        return None
    record = json.loads(meta.read_text())
    check_same(f"{fold_dir} (a finished fold)", record.get("fingerprint"), current,
               f"Use a new output directory (hydra.run.dir=...), or runner.resume=false to {redo} (finished fold "
               "folders are then moved aside, never mixed).")
    return record


def load_finished_fold(fold_dir: Path, dm, fold: Fold, current: dict) -> FoldRun | None:
    """A finished fold's predictions, if made by this configuration for exactly this fold's test samples."""
    preds = fold_dir / "predictions.csv"
    record = finished_record(fold_dir, preds, current, "retrain every fold from scratch")
    if record is None:
        return None
    frame = pd.read_csv(preds)
    expected = sorted(dm.table[i].id for i in fold.test)
    if not record.get("debug_limits") and sorted(frame.sample_id) != expected:
        raise MERError(f"{preds} holds predictions for other samples than {fold.name} (data or protocol "
                       "changed since it was written). Use a new output directory or runner.resume=false.")
    val_path, optimistic_path = fold_dir / "val_predictions.csv", fold_dir / "optimistic_predictions.csv"
    val = pd.read_csv(val_path) if val_path.is_file() else None
    optimistic = pd.read_csv(optimistic_path) if optimistic_path.is_file() else None
    return FoldRun(frame, val, record.get("selection", ""), record.get("checkpoint"), details=record.get("details") or {},
                   optimistic=optimistic)


def finished_folds(folds: list[Fold], out_dir: Path, load: Callable[[Path, Fold], Any], resume: bool) -> dict:
    """fold index -> what `load(fold_dir, fold)` finds finished in the run directory (None: not finished),
    for the folds a rerun skips; with `resume` false every earlier attempt's folder is moved aside."""
    done = {}
    for fold in folds:
        fold_dir = fold_folder(out_dir, fold.index)
        finished = load(fold_dir, fold) if resume else set_aside(fold_dir)
        if finished is not None:
            log.info("Resuming: %s already finished, skipped", fold.name)
            done[fold.index] = finished
    return done


def set_aside(fold_dir: Path) -> None:
    """`runner.resume=false`: an earlier attempt's fold folder is renamed, never mixed with the new one."""
    if fold_dir.exists():
        aside = fold_dir.with_name(f"{fold_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        os.replace(fold_dir, aside)
        log.info("runner.resume=false: moved the earlier %s aside to %s", fold_dir.name, aside.name)
    return None


def interrupted_checkpoint(fold_dir: Path, fold: Fold, current: dict) -> str | None:
    """The `last.ckpt` of an interrupted attempt at this fold, checked to be this fold's and configuration's."""
    last = fold_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    check_fold(last, read_meta(last), fold, current, fix="Use a new output directory (hydra.run.dir=...), or "
               "runner.resume=false to start the fold afresh (its folder is moved aside, never mixed).")
    log.info("Resuming %s from %s", fold.name, last)
    return str(last)
