"""A run's folds: built from the protocol, narrowed to `runner.folds`, each with its own folder; the
checks a fold passes before training (no selection on test subjects) and after (every test clip
predicted once); the runner's settings (`runner.*`, conf/runner/default.yaml) and the debug limits
that make a run partial."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from mer_lightning.data.splits import Fold, make_folds
from mer_lightning.runner.selection import inner_folds, selection_mode, selection_splits
from mer_lightning.utils.errors import MERError

# the runner's settings that once lived under `protocol.`: named there, they are refused with the new name
MOVED = ("folds", "resume", "parallel", "folds_per_gpu", "threads_per_fold", "pool")


def fold_folder(run_dir: str | Path, index: int) -> Path:
    """Where fold `index` of a run keeps its checkpoints, predictions and fold.json."""
    return Path(run_dir) / "folds" / f"fold_{index:02d}"


def drop_moved_keys(cfg: DictConfig) -> None:
    """Refuse `protocol.<runner key>` (now `runner.<key>`) with one line, then drop the placeholders."""
    protocol = cfg.get("protocol")
    if protocol is None:
        return
    for key in MOVED:
        value = protocol.get(key)
        if value is not None:
            shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            raise MERError(f"protocol.{key} is now runner.{key} (the runner's settings have their own group, "
                           f"conf/runner/default.yaml): use runner.{key}={shown}")
    with open_dict(protocol):
        for key in MOVED:
            protocol.pop(key, None)


def runner_settings(cfg: DictConfig) -> DictConfig:
    return cfg.get("runner") or OmegaConf.create({})


def build_folds(cfg: DictConfig, table) -> list[Fold]:
    options = OmegaConf.to_container(cfg.protocol, resolve=True)
    name = options.pop("name")
    options.pop("optimistic", None)  # not about the split: what is reported beside it (runner/optimistic.py)
    return make_folds(table, name, seed=cfg.seed, **options)


def select_folds(cfg: DictConfig, folds: list[Fold]) -> list[Fold]:
    selected = runner_settings(cfg).get("folds")
    if selected is None:
        return folds
    if isinstance(selected, int):  # `-m runner.folds=range(26)`: one fold per job
        selected = [selected]
    unknown = sorted(set(selected) - {f.index for f in folds})
    if unknown:
        raise MERError(f"runner.folds={list(selected)}: no fold(s) {unknown}; this protocol has folds 0-{len(folds) - 1}")
    return [f for f in folds if f.index in set(selected)]


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
        chosen = runner_settings(cfg).folds
        reasons.append(f"runner.folds={chosen if isinstance(chosen, int) else list(chosen)}: {ran} of {total} folds")
    return reasons


def check_predictions(dm, fold: Fold, frame: pd.DataFrame, limited: bool) -> int:
    """Every test clip of the fold predicted exactly once (a debug limit may predict fewer); returns
    how many clips were left out."""
    expected = {dm.table[i].id for i in fold.test}
    predicted = list(frame.sample_id)
    extra, repeated = set(predicted) - expected, len(predicted) - len(set(predicted))
    missing = expected - set(predicted)
    if extra or repeated or (missing and not limited):
        raise MERError(f"{fold.name}: the predictions do not cover its test clips exactly once ({len(missing)} "
                       f"missing, e.g. {sorted(missing)[:3]}; {len(extra)} not in the fold, e.g. {sorted(extra)[:3]}; "
                       f"{repeated} repeated). A result from them could not be trusted; nothing was reported.")
    return len(missing)


def check_selection(cfg: DictConfig, fold: Fold) -> None:
    """Refuse any configuration that would select a model on the test subjects, or on validation
    subjects a fold does not have."""
    mode = selection_mode(cfg)
    for name, conf in (cfg.get("callbacks") or {}).items():
        monitor = conf.get("monitor") if isinstance(conf, DictConfig) else None
        if not monitor:
            continue
        if not str(monitor).startswith(("val/", "train/")):
            raise MERError(f"callbacks.{name}.monitor={monitor}: model selection may only use validation "
                           "subjects carved from the training subjects (val/...), never the test fold.")
        if mode == "val" and str(monitor).startswith("val/") and not fold.val:
            raise MERError(f"{fold.name} has no validation subjects (protocol.val_subjects="
                           f"{cfg.protocol.get('val_subjects')}) but callbacks.{name} selects on {monitor}. "
                           "Give validation subjects, or train every training subject for a fixed budget with "
                           "runner.selection=last.")
    if mode == "refit" and not fold.val and not inner_folds(cfg):
        selection_splits(fold, None, 0, 0)  # raises the one-line message
