"""One fold: train (or load) its model, select it on validation, test it once, every test clip checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning.pytorch as pl
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold, fold_seed
from mer_lightning.evaluation.results import fold_frame
from mer_lightning.models.factory import build_model
from mer_lightning.utils.errors import MERError, raise_if_preempted
from mer_lightning.utils.instantiate import instantiate_callbacks, instantiate_loggers
from mer_lightning.utils.loggers import finish_wandb


@dataclass
class FoldRun:
    """What one fold produced: test (and validation) predictions and how the model was chosen."""

    test: pd.DataFrame
    val: pd.DataFrame | None
    selection: str
    checkpoint: str | None = None  # the tested checkpoint, relative to the fold's folder
    is_zero: bool = True


def train_fold(cfg: DictConfig, dm, fold: Fold, fold_dir: Path, ckpt_path: str | None,
               current: dict | None = None) -> FoldRun:
    """Train (or, with train=false, load) one fold's model, select it on validation, test it once."""
    pl.seed_everything(fold_seed(cfg.seed, fold.index), workers=True)
    dm.set_fold(fold)
    model = build_model(cfg.model, dm)
    group = cfg.get("experiment_name") or cfg.task_name
    loggers = instantiate_loggers(cfg.get("logger"), version=f"fold_{fold.index:02d}", group=group)
    callbacks = instantiate_callbacks(cfg.get("callbacks"), fold_dir, has_logger=bool(loggers))
    callbacks.append(FoldInfo(fold, dm.class_names, cfg, current))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    train = cfg.get("train", True)
    if train:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        raise_if_preempted()
    selector = trainer.checkpoint_callback
    best = selector.best_model_path if train and selector is not None and selector.monitor else ""
    tested = best or (None if train else ckpt_path)
    val = None
    if fold.val:  # the selected model on this fold's validation subjects: the sweep objective
        trainer.validate(model, datamodule=dm, ckpt_path=tested, verbose=False)
        raise_if_preempted()
        val = fold_frame(dm, fold, model.val_predictions)
    trainer.test(model, datamodule=dm, ckpt_path=tested, verbose=False)
    raise_if_preempted()
    if not train:
        selection = f"checkpoint {ckpt_path} (train=false)"
    else:
        selection = f"best {selector.monitor} checkpoint ({Path(best).name})" if best else "last epoch"
    last = fold_dir / "checkpoints" / "last.ckpt"
    checkpoint = Path(best) if best else (last if train and last.is_file() else None)
    for lg in loggers:
        lg.finalize("success")
    finish_wandb(loggers)
    relative = os.path.relpath(checkpoint, fold_dir) if checkpoint else (str(ckpt_path) if ckpt_path else None)
    return FoldRun(fold_frame(dm, fold, model.test_predictions), val, selection, relative, trainer.is_global_zero)


class FoldInfo(pl.Callback):
    """Stores which fold a checkpoint belongs to (and the fingerprint of its configuration), so that
    it is only ever used for that fold: by a resume, by `train=false` and by `eval`."""

    def __init__(self, fold: Fold, classes: list[str], cfg: DictConfig, current: dict | None = None):
        self.fold, self.classes, self.current = fold, classes, current
        self.configs = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model", "protocol")}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["mer"] = {"fold": self.fold.index, "test_subjects": self.fold.test_subjects,
                             "classes": self.classes, "fingerprint": self.current, **self.configs}


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
