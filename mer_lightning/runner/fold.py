"""One fold: train its model as `runner.selection` says (`selection.py`), test it once, every test
clip checked.

Each fit gets fresh callbacks and loggers and the fold's seed; its checkpoints record which fold
and stage they belong to (`FoldInfo`), so a resume, `train=false` and `eval` only ever use a
fold's own model. Layout of a fold's folder: `checkpoints/` (the tested model: `best.ckpt` for
`val`, `last.ckpt` for `refit` and `last`), `selection/` (a refit fold's selection pass: one JSON
of validation predictions per split and the choice), then `predictions.csv`, `val_predictions.csv`
and `fold.json` (`store.py`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import lightning.pytorch as pl
import pandas as pd
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold, fold_seed
from mer_lightning.evaluation.dashboard import finish_wandb, fold_loggers, log_checkpoint
from mer_lightning.evaluation.results import fold_frame
from mer_lightning.models.factory import build_model
from mer_lightning.runner.checkpoints import check_fold, load_weights, read_meta, saved_epoch
from mer_lightning.runner.folds import check_predictions, debug_limits, fold_folder
from mer_lightning.runner.optimistic import TestEveryEpoch
from mer_lightning.runner.selection import (
    Choice,
    EpochCurves,
    EpochPredictions,
    choose_epochs,
    every_training_subject,
    inner_folds,
    load_split,
    monitor_of,
    save_split,
    selection_mode,
    selection_splits,
)
from mer_lightning.utils.errors import MERError, Preempted, raise_if_preempted, user_error
from mer_lightning.utils.instantiate import instantiate_callbacks
from mer_lightning.utils.io import write_json

log = logging.getLogger(__name__)


@dataclass
class FoldRun:
    """What one fold produced: test (and validation) predictions and how the model was chosen."""

    test: pd.DataFrame
    val: pd.DataFrame | None
    selection: str
    checkpoint: str | None = None  # the tested checkpoint, relative to the fold's folder
    is_zero: bool = True
    details: dict = field(default_factory=dict)  # mode, epochs trained, the selection pass's scores
    optimistic: pd.DataFrame | None = None  # protocol.optimistic: the test predictions of the best-test epoch


def train_fold(cfg: DictConfig, dm, fold: Fold, fold_dir: Path, ckpt_path: str | None,
               current: dict | None = None) -> FoldRun:
    """Train (or, with train=false, load) one fold's model as `runner.selection` says, test it once."""
    mode = selection_mode(cfg)
    if not cfg.get("train", True):
        return test_saved(cfg, dm, fold, fold_dir, ckpt_path, current, mode)
    if mode == "val":
        return fit_and_select(cfg, dm, fold, fold_dir, ckpt_path, current)
    choice = select_epochs(cfg, dm, fold, fold_dir, current) if mode == "refit" else None
    epochs = choice.epochs if choice else int(cfg.trainer.max_epochs)
    final = every_training_subject(fold)
    watcher = [TestEveryEpoch(dm)] if cfg.protocol.get("optimistic") else []
    trainer, model, loggers, curves = fit(cfg, dm, final, fold_dir, f"fold_{fold.index:02d}", current,
                                          stage="final", ckpt_path=ckpt_path, max_epochs=epochs, fold=fold,
                                          extra=watcher)
    trainer.test(model, datamodule=dm, verbose=False)
    raise_if_preempted()
    run = final_run(dm, fold, fold_dir, choice, epochs, curves.as_lists(), model.test_predictions,
                    trainer.is_global_zero)
    run.optimistic = optimistic_frame(dm, fold, watcher, run.details)
    last = fold_dir / "checkpoints" / "last.ckpt"
    log_checkpoint(cfg, loggers, last if last.is_file() else None, fold, run.details)
    close(loggers)
    return run


def final_run(dm, fold: Fold, fold_dir: Path, choice: Choice | None, epochs: int, tested: dict,
              test_predictions: dict, is_zero: bool = True) -> FoldRun:
    """What a `refit` or `last` fold produced, from its final training (`tested`: its curves) and test
    predictions (also what a packed fold produces, `pack.py`)."""
    val = fold_frame(dm, fold, choice.predictions) if choice else None
    last = fold_dir / "checkpoints" / "last.ckpt"
    checkpoint = os.path.relpath(last, fold_dir) if last.is_file() else None
    if choice:
        where = (f"{choice.splits} inner subject folds" if choice.splits > 1 else
                 f"{choice.validation_subjects} validation subject(s)")
        text = (f"refit: {epochs} epoch(s) on every training subject, the count chosen by {choice.monitor} on "
                f"{where}")
        details = {"mode": "refit", "epochs": epochs, "monitor": choice.monitor, "scores": choice.scores,
                   "splits": choice.splits, "curves": {"tested": tested, "chosen_on": choice.curves}}
    else:
        text = f"last: the last of {epochs} epoch(s) on every training subject"
        details = {"mode": "last", "epochs": epochs, "curves": {"tested": tested}}
    return FoldRun(fold_frame(dm, fold, test_predictions), val, text, checkpoint, is_zero, details)


def fit_and_select(cfg: DictConfig, dm, fold: Fold, fold_dir: Path, ckpt_path: str | None,
                   current: dict | None) -> FoldRun:
    """`val`: train without the validation subjects, test the checkpoint that scored best on them."""
    watcher = [TestEveryEpoch(dm)] if cfg.protocol.get("optimistic") else []
    trainer, model, loggers, curves = fit(cfg, dm, fold, fold_dir, f"fold_{fold.index:02d}", current,
                                          stage="val", ckpt_path=ckpt_path, fold=fold, extra=watcher)
    selector = trainer.checkpoint_callback
    best = selector.best_model_path if selector is not None and selector.monitor else ""
    # what the fit recorded, before testing a checkpoint restores its callbacks' older state
    epochs, tested, noted = int(trainer.current_epoch), curves.as_lists(), {}
    optimistic = optimistic_frame(dm, fold, watcher, noted)
    val = None
    if fold.val:  # the selected model on this fold's validation subjects: the sweep objective
        model.val_prefix = "selected/val_"  # its own keys, not one more point of the val/* curves
        trainer.validate(model, datamodule=dm, ckpt_path=best or None, verbose=False)
        raise_if_preempted()
        val = fold_frame(dm, fold, model.val_predictions)
    trainer.test(model, datamodule=dm, ckpt_path=best or None, verbose=False)
    raise_if_preempted()
    run = val_run(dm, fold, fold_dir, selector.monitor if best else None, best or None, epochs, tested,
                  model.test_predictions, val, trainer.is_global_zero)
    run.details.update(noted)
    run.optimistic = optimistic
    log_checkpoint(cfg, loggers, fold_dir / run.checkpoint if run.checkpoint else None, fold, run.details)
    close(loggers)
    return run


def val_run(dm, fold: Fold, fold_dir: Path, monitor: str | None, best: str | Path | None, epochs: int,
            tested: dict, test_predictions: dict, val: pd.DataFrame | None, is_zero: bool = True) -> FoldRun:
    """What a `val` fold produced: the best checkpoint's (else the last epoch's) test predictions."""
    last = fold_dir / "checkpoints" / "last.ckpt"
    checkpoint = Path(best) if best else (last if last.is_file() else None)
    text = f"val: best {monitor} checkpoint ({Path(best).name})" if best else "val: last epoch"
    details = {"mode": "val", "epochs": epochs, "curves": {"tested": tested}}
    if best:
        details["selected_epoch"] = saved_epoch(best)
    return FoldRun(fold_frame(dm, fold, test_predictions), val, text,
                   os.path.relpath(checkpoint, fold_dir) if checkpoint else None, is_zero, details)


def optimistic_frame(dm, fold: Fold, watcher: list, details: dict) -> pd.DataFrame | None:
    """protocol.optimistic: the fold's test predictions at its best-test epoch (and every epoch's test UF1
    in `details`); None when not asked for."""
    best = watcher[0].best(dm.num_classes) if watcher else None
    if best is None:
        return None
    epoch, predictions, scores = best
    details["optimistic"] = {"epoch": epoch, "test_uf1_per_epoch": scores}
    return fold_frame(dm, fold, predictions)


def select_epochs(cfg: DictConfig, dm, fold: Fold, fold_dir: Path, current: dict | None) -> Choice:
    """The refit selection pass: each split trained with a validation pass every epoch (resumable: a
    finished split's predictions are on disk, an interrupted one has its last.ckpt), then the epoch
    count that scores best on the pooled validation predictions."""
    k = inner_folds(cfg)
    splits = selection_splits(fold, dm.table, k, int(cfg.seed))
    where = fold_dir / "selection"
    per_split, first_curves = [], None
    for i, split in enumerate(splits):
        record = where / f"split_{i}.json"
        done = load_split(record)
        if done is not None:
            done, split_curves = done
        else:
            split_dir = where / f"split_{i}"
            last = split_dir / "checkpoints" / "last.ckpt"
            resume = None
            if last.is_file():
                check_fold(last, read_meta(last), fold, current or {})
                resume = str(last)
            recorder = EpochPredictions()
            suffix = f"inner_{i}" if k else "select"
            log.info("%s: selection pass%s (%d train / %d validation samples)", fold.name,
                     f" {i + 1}/{len(splits)}" if k else "", len(split.train), len(split.val))
            _, _, loggers, curves = fit(cfg, dm, split, split_dir, f"fold_{fold.index:02d}_{suffix}", current,
                                        stage="select", ckpt_path=resume, fold=fold, extra=[recorder])
            close(loggers)
            split_curves = curves.as_lists()
            save_split(record, recorder.epochs, split_curves)
            shutil.rmtree(where / f"split_{i}", ignore_errors=True)  # its predictions are kept; its weights are not needed
            done = recorder.epochs
        per_split.append(done)
        first_curves = first_curves if i else split_curves
    return settle_choice(cfg, dm, fold, splits, per_split, first_curves, where)


def settle_choice(cfg: DictConfig, dm, fold: Fold, splits: list[Fold], per_split: list[dict], first_curves: dict,
                  where: Path) -> Choice:
    """The epoch count that scores best on the selection pass's validation predictions, written to
    `selection/choice.json` (also for a packed fold, `pack.py`)."""
    monitor, direction = monitor_of(cfg)
    val_subjects = len({dm.table[i].subject for i in splits[0].val})
    choice = choose_epochs(per_split, monitor, direction, dm.num_classes, val_subjects)
    choice.curves = first_curves
    write_json(where / "choice.json", {"epochs": choice.epochs, "monitor": monitor, "mode": direction,
                                       "scores": choice.scores, "splits": choice.splits})
    log.info("%s: %d epoch(s) chosen by %s (%s)", fold.name, choice.epochs, monitor,
             ", ".join("-" if s is None else f"{s:.3f}" for s in choice.scores))
    return choice


def fit(cfg: DictConfig, dm, part: Fold, where: Path, version: str, current: dict | None, *, stage: str,
        fold: Fold, ckpt_path: str | None = None, max_epochs: int | None = None, extra=()):
    """One fit of a fresh model (the fold's seed) on `part`'s training samples, checkpoints in `where/checkpoints`.

    `stage`: `val` (every callback), `select` (a selection pass: no best-checkpoint file, the epoch
    predictions recorded instead), `final` (no validation: callbacks that monitor a figure are
    dropped). `max_epochs`: the budget a refit chose; the model's settings (the learning-rate
    schedule's length) stay those of `trainer.max_epochs`, so epoch e of the refit sees the learning
    rate epoch e of the selection pass saw.
    """
    if ckpt_path and stage == "final" and read_meta(ckpt_path).get("stage") == "select":
        raise MERError(f"{ckpt_path} is a selection-pass checkpoint (trained without the validation subjects): "
                       "a refit fold resumes its final training only from checkpoints/last.ckpt")
    pl.seed_everything(fold_seed(cfg.seed, fold.index), workers=True)
    dm.set_fold(part)
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    model = build_model(model_cfg, dm)
    loggers = fold_loggers(cfg, version, fold, stage)
    callbacks = instantiate_callbacks(stage_callbacks(cfg, stage), where, has_logger=bool(loggers))
    curves = EpochCurves()
    callbacks += [*extra, curves, FoldInfo(fold, dm.class_names, cfg, current, stage)]
    overrides = {}
    if max_epochs is not None:
        overrides.update(max_epochs=int(max_epochs), min_epochs=min(int(cfg.trainer.get("min_epochs") or 1),
                                                                    int(max_epochs)))
    if not part.val:
        overrides.update(limit_val_batches=0, num_sanity_val_steps=0)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                  **overrides)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    raise_if_preempted()
    return trainer, model, loggers, curves


def stage_callbacks(cfg: DictConfig, stage: str) -> DictConfig | None:
    """The callbacks of a stage: all for `val`; no best-checkpoint file for `select`; nothing that
    monitors a figure for `final` (it has no validation subjects)."""
    conf = cfg.get("callbacks")
    if not conf or stage == "val":
        return conf

    def keep(item) -> bool:
        if not isinstance(item, DictConfig) or not item.get("monitor"):
            return True
        return stage == "select" and not str(item.get("_target_", "")).endswith("ModelCheckpoint")

    return OmegaConf.create({name: item for name, item in conf.items() if keep(item)})


def test_saved(cfg: DictConfig, dm, fold: Fold, fold_dir: Path, ckpt_path: str | None, current: dict | None,
               mode: str) -> FoldRun:
    """train=false: test the fold's own saved model. Its validation figure: for `val`, the model on the
    validation subjects again; for `refit`, the selection pass's predictions saved beside the checkpoint
    (the refit model trained on those subjects); for `last`, none."""
    pl.seed_everything(fold_seed(cfg.seed, fold.index), workers=True)
    dm.set_fold(fold if mode == "val" else every_training_subject(fold))
    model = load_weights(build_model(cfg.model, dm), ckpt_path)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False)
    val = None
    if mode == "val" and fold.val:
        trainer.validate(model, datamodule=dm, verbose=False)
        val = fold_frame(dm, fold, model.val_predictions)
    elif mode == "refit" and ckpt_path:
        saved = Path(ckpt_path).parent.parent / "val_predictions.csv"
        val = pd.read_csv(saved) if saved.is_file() else None
    trainer.test(model, datamodule=dm, verbose=False)
    raise_if_preempted()
    return FoldRun(fold_frame(dm, fold, model.test_predictions), val, f"checkpoint {ckpt_path} (train=false)",
                   str(ckpt_path) if ckpt_path else None, trainer.is_global_zero, {"mode": mode})


def close(loggers) -> None:
    for lg in loggers:
        lg.finalize("success")
    finish_wandb(loggers)


class FoldInfo(pl.Callback):
    """Stores which fold a checkpoint belongs to (and the fingerprint of its configuration, and its stage:
    `select` for a refit's selection pass), so that it is only ever used for that fold: by a resume, by
    `train=false` and by `eval`."""

    def __init__(self, fold: Fold, classes: list[str], cfg: DictConfig, current: dict | None = None,
                 stage: str = "val"):
        self.fold, self.classes, self.current, self.stage = fold, classes, current, stage
        self.configs = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model", "protocol")}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["mer"] = {"fold": self.fold.index, "test_subjects": self.fold.test_subjects,
                             "classes": self.classes, "fingerprint": self.current, "stage": self.stage, **self.configs}


def run_fold(cfg: DictConfig, dm, fold: Fold, out_dir: Path, start_from: str | None, current: dict,
             finished: int) -> FoldRun:
    """One fold in this process, its predictions checked; a failure names the fold and keeps the
    finished ones (SIGTERM: where the fold's last.ckpt is and how to resume)."""
    fold_dir = fold_folder(out_dir, fold.index)
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


def preempted_message(out_dir: Path, fold_dir: Path, fold: Fold, finished: int) -> str:
    saved = sorted(fold_dir.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)  # final training or selection pass
    where = f"its last.ckpt is {saved[-1]}" if saved else "it had no checkpoint yet and restarts"
    return (f"stopped by SIGTERM in {fold.name}: {where}; {finished} fold(s) finished in this run and every "
            f"finished fold is kept under {out_dir / 'folds'}. Resume: rerun the same command with "
            f"hydra.run.dir={out_dir}")
