"""Run every fold of a protocol, pool the test predictions, write the report.

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

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning.pytorch as pl
import numpy as np
import pandas as pd
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.datamodules import MERDataModule
from mer_lightning.data.splits import Fold, fold_seed, make_folds
from mer_lightning.evaluation.checkpoints import check_fold, given_checkpoints, read_meta
from mer_lightning.evaluation.fingerprint import check_same, fingerprint
from mer_lightning.evaluation.metrics import summarize
from mer_lightning.evaluation.objective import VALIDATION, selects_on_test
from mer_lightning.evaluation.report import (
    confusion_png,
    results_markdown,
    write_csv,
    write_json,
    write_text,
)
from mer_lightning.utils.errors import MERError, Preempted, raise_if_preempted, user_error
from mer_lightning.utils.instantiate import instantiate_callbacks, instantiate_loggers
from mer_lightning.utils.rich_utils import print_results

log = logging.getLogger(__name__)


def build_folds(cfg: DictConfig, table) -> list[Fold]:
    options = OmegaConf.to_container(cfg.protocol, resolve=True)
    name = options.pop("name")
    for key in ("folds", "resume"):
        options.pop(key, None)
    return make_folds(table, name, seed=cfg.seed, **options)


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


def fold_frame(dm: MERDataModule, fold: Fold, predictions: dict) -> pd.DataFrame:
    """One row per predicted sample: ids, true and predicted labels, class probabilities."""
    classes = dm.class_names
    index = predictions["index"].numpy()
    probs = predictions["probs"].numpy()
    samples = [dm.table[i] for i in index]
    frame = pd.DataFrame({
        "sample_id": [s.id for s in samples],
        "dataset": [s.dataset for s in samples],
        "source": [s.origin for s in samples],
        "subject": [s.subject for s in samples],
        "clip": [s.clip for s in samples],
        "fold": fold.index,
        "y_true": predictions["y"].numpy(),
        "y_pred": probs.argmax(1),
    })
    frame["true_class"] = [classes[i] for i in frame.y_true]
    frame["pred_class"] = [classes[i] for i in frame.y_pred]
    for c, name in enumerate(classes):
        frame[f"p_{name}"] = probs[:, c]
    return frame


@dataclass
class FoldRun:
    """What one fold produced: test (and validation) predictions and how the model was chosen."""

    test: pd.DataFrame
    val: pd.DataFrame | None
    selection: str
    checkpoint: str | None = None  # the tested checkpoint, relative to the fold's folder
    is_zero: bool = True


def train_fold(cfg: DictConfig, dm: MERDataModule, fold: Fold, fold_dir: Path, ckpt_path: str | None,
               current: dict | None = None) -> FoldRun:
    """Train (or, with train=false, load) one fold's model, select it on validation, test it once."""
    pl.seed_everything(fold_seed(cfg.seed, fold.index), workers=True)
    dm.set_fold(fold)
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes, class_names=dm.class_names,
                                    _convert_="all")
    model.check_input(dm.num_frames, dm.channels, dm.image_size)
    if cfg.model.get("class_weights") == "balanced":
        model.class_weights.copy_(dm.class_weights())
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
    _finish_wandb(loggers)
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


def _finish_wandb(loggers) -> None:
    """One W&B run per fold: close this fold's run before the next starts."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()


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


def check_predictions(dm: MERDataModule, fold: Fold, frame: pd.DataFrame, limited: bool) -> int:
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


def run_protocol(cfg: DictConfig, dm: MERDataModule) -> dict:
    """Train/test every selected fold (resuming finished ones) and write the pooled report."""
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    table = dm.prepare()
    all_folds = build_folds(cfg, table)
    current = fingerprint(cfg, dm.preprocessing.options())
    folds, given = given_checkpoints(cfg, select_folds(cfg, all_folds), all_folds, current)
    resume, limits = cfg.protocol.get("resume", True), debug_limits(cfg)
    runs, fold_results, is_zero, unpredicted = [], [], True, 0
    for fold in folds:
        fold_dir = out_dir / "folds" / f"fold_{fold.index:02d}"
        run = load_finished_fold(fold_dir, dm, fold, current) if resume else set_aside(fold_dir)
        if run is not None:
            log.info("Resuming: %s already finished, skipped", fold.name)
        else:
            check_selection(cfg, fold)
            log.info("Training %s: %d train / %d val / %d test samples", fold.name, len(fold.train),
                     len(fold.val), len(fold.test))
            fold_dir.mkdir(parents=True, exist_ok=True)
            start_from = given.get(fold.index) or (interrupted_checkpoint(fold_dir, fold, current) if resume else None)
            try:
                run = train_fold(cfg, dm, fold, fold_dir, start_from, current)
            except (Preempted, SIGTERMException):
                raise Preempted(preempted_message(out_dir, fold_dir, fold, len(runs))) from None
            except KeyboardInterrupt:
                raise
            except Exception as err:
                cause = user_error(err)
                if cause is not None:
                    raise cause from None
                raise RuntimeError(f"{fold.name} failed ({type(err).__name__}: {err}). {len(runs)} finished "
                                   f"fold(s) are saved under {out_dir / 'folds'}; rerun the same command to "
                                   "resume from this fold.") from err
            is_zero = run.is_zero
            unpredicted += check_predictions(dm, fold, run.test, bool(limits))
            if is_zero:
                write_fold(fold_dir, fold, run, dm.num_classes, current, limits)
        runs.append(run)
        fold_results.append(fold_record(fold, run, dm.num_classes))
    results = pooled_results(cfg, dm, [r.test for r in runs], fold_results, val_frames=[r.val for r in runs],
                             partial=partial_reasons(cfg, limits, unpredicted, len(folds), len(all_folds)))
    results["elapsed_s"] = time.time() - started
    if is_zero:
        write_report(out_dir, results, pd.concat([r.test for r in runs], ignore_index=True), dm.class_names)
        log_summary(cfg, results)
        print_results(results)
    return results


def select_folds(cfg: DictConfig, folds: list[Fold]) -> list[Fold]:
    selected = cfg.protocol.get("folds")
    if selected is None:
        return folds
    unknown = sorted(set(selected) - {f.index for f in folds})
    if unknown:
        raise MERError(f"protocol.folds={list(selected)}: no fold(s) {unknown}; this protocol has folds 0-{len(folds) - 1}")
    return [f for f in folds if f.index in set(selected)]


def partial_reasons(cfg: DictConfig, limits: list[str], unpredicted: int, ran: int, total: int) -> list[str]:
    """Why these figures are not a whole protocol's result ([] when they are)."""
    reasons = list(limits)
    if unpredicted:
        reasons.append(f"{unpredicted} test clip(s) not predicted")
    if ran < total:
        reasons.append(f"protocol.folds={list(cfg.protocol.folds)}: {ran} of {total} folds")
    return reasons


def fold_record(fold: Fold, run: FoldRun, num_classes: int) -> dict:
    record = {"index": fold.index, "test_subjects": fold.test_subjects, "selection": run.selection,
              "checkpoint": run.checkpoint, "metrics": summarize(run.test.y_true, run.test.y_pred, num_classes)}
    if run.val is not None:
        record["val_metrics"] = summarize(run.val.y_true, run.val.y_pred, num_classes)
    return record


def write_fold(fold_dir: Path, fold: Fold, run: FoldRun, num_classes: int, current: dict, limits: list[str]) -> None:
    """A finished fold, on disk at once: predictions first, `fold.json` (what makes it finished) last."""
    write_csv(fold_dir / "predictions.csv", run.test)
    if run.val is not None:
        write_csv(fold_dir / "val_predictions.csv", run.val)
    write_json(fold_dir / "fold.json", {**fold_record(fold, run, num_classes), "debug_limits": limits,
                                        "fingerprint": current})


def load_finished_fold(fold_dir: Path, dm: MERDataModule, fold: Fold, current: dict) -> FoldRun | None:
    """A finished fold's predictions, if made by this configuration for exactly this fold's test samples."""
    preds, meta = fold_dir / "predictions.csv", fold_dir / "fold.json"
    if not (preds.is_file() and meta.is_file()):
        return None
    record = json.loads(meta.read_text())
    check_same(f"{fold_dir} (a finished fold)", record.get("fingerprint"), current,
               "Use a new output directory (hydra.run.dir=...), or protocol.resume=false to retrain every fold "
               "from scratch (finished fold folders are then moved aside, never mixed).")
    frame = pd.read_csv(preds)
    expected = sorted(dm.table[i].id for i in fold.test)
    if not record.get("debug_limits") and sorted(frame.sample_id) != expected:
        raise MERError(f"{preds} holds predictions for other samples than {fold.name} (data or protocol "
                       "changed since it was written). Use a new output directory or protocol.resume=false.")
    val_path = fold_dir / "val_predictions.csv"
    val = pd.read_csv(val_path) if val_path.is_file() else None
    return FoldRun(frame, val, record.get("selection", ""), record.get("checkpoint"))


def set_aside(fold_dir: Path) -> None:
    """`protocol.resume=false`: an earlier attempt's fold folder is renamed, never mixed with the new one."""
    if fold_dir.exists():
        aside = fold_dir.with_name(f"{fold_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        os.replace(fold_dir, aside)
        log.info("protocol.resume=false: moved the earlier %s aside to %s", fold_dir.name, aside.name)
    return None


def interrupted_checkpoint(fold_dir: Path, fold: Fold, current: dict) -> str | None:
    """The `last.ckpt` of an interrupted attempt at this fold, checked to be this fold's and configuration's."""
    last = fold_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    check_fold(last, read_meta(last), fold, current, fix="Use a new output directory (hydra.run.dir=...), or "
               "protocol.resume=false to start the fold afresh (its folder is moved aside, never mixed).")
    log.info("Resuming %s from %s", fold.name, last)
    return str(last)


def preempted_message(out_dir: Path, fold_dir: Path, fold: Fold, finished: int) -> str:
    last = fold_dir / "checkpoints" / "last.ckpt"
    where = (f"its last.ckpt is {last}" if last.is_file() else "it had no checkpoint yet and restarts")
    return (f"stopped by SIGTERM in {fold.name}: {where}; {finished} fold(s) finished in this run and every "
            f"finished fold is kept under {out_dir / 'folds'}. Resume: rerun the same command with "
            f"hydra.run.dir={out_dir}")


def pooled_results(cfg: DictConfig, dm: MERDataModule, frames: list[pd.DataFrame], folds: list[dict],
                   protocol: dict | None = None, val_frames: list | None = None, partial: list[str] | None = None) -> dict:
    all_preds = pd.concat(frames, ignore_index=True)
    pooled = summarize(all_preds.y_true, all_preds.y_pred, dm.num_classes)
    per_fold = {k: [f["metrics"][k] for f in folds] for k in ("acc", "uf1", "uar")}
    mean = {k: float(np.mean(v)) for k, v in per_fold.items()}
    std = {k: float(np.std(v)) for k, v in per_fold.items()}
    per_source = {}
    if all_preds.source.nunique() > 1:
        for source, part in all_preds.groupby("source"):
            per_source[source] = summarize(part.y_true, part.y_pred, dm.num_classes)
    metrics = {}
    for k in ("acc", "uf1", "uar"):
        metrics[f"protocol/{k}"] = pooled[k]
        metrics[f"test/{k}"] = pooled[k]
        metrics[f"fold_mean/{k}"] = mean[k]
        metrics[f"fold_std/{k}"] = std[k]
    validation = None
    if val_frames and all(v is not None and len(v) for v in val_frames):
        val = pd.concat(val_frames, ignore_index=True)
        validation = summarize(val.y_true, val.y_pred, dm.num_classes)
        metrics.update({f"protocol/val_{k}": validation[k] for k in ("acc", "uf1", "uar")})
    metric = cfg.get("optimized_metric")
    return {
        **{f"protocol/{k}": pooled[k] for k in ("acc", "uf1", "uar")},
        "title": f"{cfg.task_name}: {cfg.data.get('name', '')} / {cfg.model.get('name', '')}",
        "complete": not partial,
        "not_a_protocol_result": list(partial or []),
        "objective": {"metric": metric, "value": metrics.get(metric),
                      "on": "validation" if metric in VALIDATION else "test",
                      "optimistic": selects_on_test(cfg)} if metric else None,
        "metrics": metrics,
        "pooled": pooled,
        "validation": validation,
        "fold_mean": mean,
        "fold_std": std,
        "per_source": per_source,
        "folds": folds,
        "classes": dm.class_names,
        "protocol": protocol or OmegaConf.to_container(cfg.protocol, resolve=True),
        "skipped": [s.as_dict() for s in dm.table.skipped],
    }


def write_report(out_dir: Path, results: dict, predictions: pd.DataFrame, classes: list[str]) -> None:
    write_csv(out_dir / "predictions.csv", predictions)
    write_json(out_dir / "results.json", results)
    write_text(out_dir / "results.md", results_markdown(results))
    confusion_png(out_dir / "confusion_matrix.png", results["pooled"]["confusion"], classes, "pooled")


def results_frame(results: dict) -> pd.DataFrame:
    """The results table: one row per fold, then the pooled row and the fold mean."""
    rows = [{"fold": str(f["index"]), "test_subjects": " ".join(f["test_subjects"]), "n": f["metrics"]["n"],
             **{k: f["metrics"][k] for k in ("acc", "uf1", "uar")}} for f in results["folds"]]
    rows.append({"fold": "pooled", "test_subjects": "all", "n": results["pooled"]["n"],
                 **{k: results["pooled"][k] for k in ("acc", "uf1", "uar")}})
    rows.append({"fold": "mean over folds", "test_subjects": "", "n": results["pooled"]["n"], **results["fold_mean"]})
    return pd.DataFrame(rows)


def log_summary(cfg: DictConfig, results: dict) -> None:
    """Pooled and per-fold figures to the loggers, as one summary run (`fold/<k>/...`, `protocol/...`)."""
    group = cfg.get("experiment_name") or cfg.task_name
    loggers = instantiate_loggers(cfg.get("logger"), version="summary", group=group)
    if not loggers:
        return
    figures = {k: v for k, v in results["metrics"].items()}
    for fold in results["folds"]:
        for k in ("acc", "uf1", "uar"):
            figures[f"fold/{fold['index']}/{k}"] = fold["metrics"][k]
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(figures, step=0)
        if type(lg).__name__ == "WandbLogger":
            import wandb

            out_dir = Path(cfg.paths.output_dir)
            lg.experiment.log({"confusion_matrix": wandb.Image(str(out_dir / "confusion_matrix.png")),
                               "results": wandb.Table(dataframe=results_frame(results)),
                               "predictions": wandb.Table(dataframe=pd.read_csv(out_dir / "predictions.csv"))})
        lg.finalize("success")
    _finish_wandb(loggers)
