"""How each fold's tested model is chosen (`runner.selection`); the fold's test subjects take no part.

- `refit` (the default): a selection pass trains on the fold's training subjects minus validation
  subjects carved from them and records, every epoch, its predictions on those validation subjects;
  the epoch count that scores best (the callbacks' monitor, `val/uf1` by default; of equal scores the
  longest) is the budget.
  A fresh model (the fold's seed) then trains on *every* training subject for exactly that budget
  and is tested once. With `runner.inner_folds=k` the budget comes from k inner subject folds of
  all the training subjects instead of one carve-out: their validation predictions are pooled per
  epoch (each training subject validated once), which is steadier when a carve-out is one or two
  people. Real MER sets have 3-10 clips per subject: a validation subject kept out of the tested
  model is a tenth of its training data, which `val` pays and `refit` does not.
- `last`: no validation subjects; every training subject trains for `trainer.max_epochs` and the
  last epoch is tested (the budget fixed before any subject is seen, as in meb).
- `val`: the checkpoint that scored best on the validation subjects, trained without them.

The selection pass's pooled validation figures (`protocol/val_uf1`) are what sweeps optimise.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig

from mer_lightning.data.splits import Fold, fold_seed
from mer_lightning.evaluation.metrics import summarize
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.io import write_json

log = logging.getLogger(__name__)
MODES = ("refit", "last", "val")
SCORES = ("val/uf1", "val/uar", "val/acc", "val/loss")


def selection_mode(cfg: DictConfig) -> str:
    mode = str((cfg.get("runner") or {}).get("selection", "val"))
    if mode not in MODES:
        raise MERError(f"runner.selection={mode}: choose refit (pick the epoch count on validation subjects, then "
                       "train on every training subject), last (every training subject, trainer.max_epochs) or val "
                       "(the checkpoint best on validation subjects)")
    return mode


def inner_folds(cfg: DictConfig) -> int:
    k = (cfg.get("runner") or {}).get("inner_folds")
    if k in (None, 0, 1):
        return 0
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise MERError(f"runner.inner_folds={k}: give a number of inner subject folds >= 2 (or null: one carve-out "
                       "of protocol.val_subjects)")
    return k


def monitor_of(cfg: DictConfig) -> tuple[str, str]:
    """The figure and direction the callbacks select on (the best-checkpoint callback's, else val/uf1, max)."""
    for conf in (cfg.get("callbacks") or {}).values():
        monitor = conf.get("monitor") if isinstance(conf, DictConfig) else None
        if monitor and str(monitor).startswith("val/") and str(conf.get("_target_", "")).endswith("ModelCheckpoint"):
            if monitor not in SCORES:
                raise MERError(f"the selection pass picks the epoch by {monitor}, which it cannot compute from the "
                               f"validation predictions; monitor one of {', '.join(SCORES)}")
            return str(monitor), str(conf.get("mode", "max"))
    return "val/uf1", "max"


def every_training_subject(fold: Fold) -> Fold:
    """The fold with its validation subjects given back to training (what `refit` and `last` train on)."""
    return Fold(fold.index, sorted(fold.train + fold.val), [], fold.test, fold.test_subjects)


def selection_splits(fold: Fold, table, k: int, seed: int) -> list[Fold]:
    """The validation runs of a `refit` fold: its own carve-out, or k inner subject folds of all its
    training subjects (seeded per fold). None of them holds a test subject; none has a test part."""
    if not k:
        if not fold.val:
            raise MERError(f"{fold.name}: runner.selection=refit picks the epoch count on validation subjects and "
                           "this fold has none (protocol.val_subjects=0). Give protocol.val_subjects (e.g. 0.2), "
                           "runner.inner_folds=k, or train a fixed budget with runner.selection=last.")
        return [Fold(fold.index, fold.train, fold.val, [], fold.test_subjects)]
    pool = sorted(fold.train + fold.val)
    subjects = sorted({table[i].subject for i in pool})
    if k > len(subjects):
        raise MERError(f"runner.inner_folds={k}: {fold.name} has only {len(subjects)} training subjects")
    rng = np.random.default_rng(fold_seed(seed, 10_000 + fold.index))
    groups = np.array_split(rng.permutation(subjects), k)
    splits = []
    for group in groups:
        held = set(group.tolist())
        splits.append(Fold(fold.index, [i for i in pool if table[i].subject not in held],
                           [i for i in pool if table[i].subject in held], [], fold.test_subjects))
    return splits


class EpochPredictions(pl.Callback):
    """Every epoch's predictions on the validation subjects (the selection pass pools them over its
    splits). Kept in the checkpoint's callback state, so an interrupted pass resumes with them."""

    def __init__(self):
        self.epochs: dict[int, dict[str, list]] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        predictions = getattr(pl_module, "val_predictions", None)
        if trainer.sanity_checking or predictions is None:
            return
        self.epochs[int(trainer.current_epoch)] = {k: predictions[k].tolist() for k in ("index", "y", "probs")}

    def state_dict(self) -> dict:
        return {"epochs": {str(e): p for e, p in self.epochs.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = {int(e): p for e, p in state_dict.get("epochs", {}).items()}


class EpochCurves(pl.Callback):
    """Every epoch's training and validation figures (what `curves.png` and the dashboards draw), from
    the trainer's logged metrics; kept in the checkpoint's callback state, so a resumed fit keeps them."""

    KEYS = ("train/loss", "val/loss", "val/uf1", "val/uar", "val/acc")

    def __init__(self):
        self.epochs: dict[int, dict[str, float]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        logged = trainer.callback_metrics
        self.epochs[int(trainer.current_epoch)] = {k: float(logged[k]) for k in self.KEYS if k in logged}

    def as_lists(self) -> dict[str, list]:
        """{"epoch": [0, 1, ...], "train/loss": [...], ...} (None where an epoch has no value)."""
        epochs = sorted(self.epochs)
        keys = [k for k in self.KEYS if any(k in self.epochs[e] for e in epochs)]
        return {"epoch": epochs, **{k: [self.epochs[e].get(k) for e in epochs] for k in keys}}

    def state_dict(self) -> dict:
        return {"epochs": {str(e): v for e, v in self.epochs.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = {int(e): v for e, v in state_dict.get("epochs", {}).items()}


@dataclass
class Choice:
    """What the selection pass chose: the epoch count, and the validation predictions it was chosen on."""

    epochs: int  # the budget: epochs 0 .. epochs-1
    monitor: str
    scores: list[float]  # the monitored figure per epoch (pooled over the splits)
    predictions: dict[str, torch.Tensor]  # index, y, probs at the chosen epoch, pooled over the splits
    splits: int
    validation_subjects: int
    curves: dict | None = None  # the (first) selection split's per-epoch figures


def score(predictions: dict[str, list], monitor: str, num_classes: int) -> float:
    y = np.asarray(predictions["y"], dtype=np.int64)
    probs = np.asarray(predictions["probs"], dtype=np.float64)
    if monitor == "val/loss":
        return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return float(summarize(y, probs.argmax(1), num_classes)[monitor.split("/")[1]])


def choose_epochs(per_split: list[dict[int, dict]], monitor: str, mode: str, num_classes: int,
                  validation_subjects: int) -> Choice:
    """The epoch whose validation predictions, pooled over the splits, score best; of equal scores the
    last. (A validation set of a few subjects often reaches its best score early and keeps it: the
    longest budget that still scores best is the one a refit on more data can use.)"""
    common = sorted(set.intersection(*(set(p) for p in per_split))) if per_split else []
    if not common:
        raise MERError("the selection pass recorded no validation epoch (trainer.check_val_every_n_epoch or "
                       "trainer.limit_val_batches=0?); refit needs a validation pass every epoch")
    pooled = {e: {k: sum((p[e][k] for p in per_split), []) for k in ("index", "y", "probs")} for e in common}
    scores = [score(pooled[e], monitor, num_classes) for e in common]
    sign = -1.0 if mode == "min" else 1.0
    best = max(range(len(common)), key=lambda i: (sign * scores[i], i))
    chosen = pooled[common[best]]
    predictions = {"index": torch.tensor(chosen["index"], dtype=torch.long),
                   "y": torch.tensor(chosen["y"], dtype=torch.long),
                   "probs": torch.tensor(chosen["probs"], dtype=torch.float32)}
    return Choice(common[best] + 1, monitor, [s if math.isfinite(s) else None for s in scores], predictions,
                  len(per_split), validation_subjects)


def save_split(path: Path, epochs: dict[int, dict], curves: dict) -> None:
    """A finished selection split: its validation predictions per epoch and its curves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"epochs": {str(e): p for e, p in epochs.items()}, "curves": curves})


def load_split(path: Path) -> tuple[dict[int, dict], dict] | None:
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return {int(e): p for e, p in record["epochs"].items()}, record.get("curves") or {}
