"""Run every fold of a protocol, pool the test predictions, write the report.

One run = one whole protocol. Each fold trains a fresh model on its training subjects, selects
the model on validation subjects carved from those training subjects, and touches its test
subjects once, at the end. A fold's predictions are written as soon as it ends; a rerun in the
same directory skips finished folds (their test samples are checked to be the same), so a crash
in fold 9 keeps folds 1-8.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning.pytorch as pl
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.datamodules import MERDataModule
from mer_lightning.data.splits import Fold, make_folds
from mer_lightning.evaluation.metrics import summarize
from mer_lightning.evaluation.report import confusion_png, results_markdown, write_csv, write_json
from mer_lightning.utils.errors import MERError
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
    """One row per test sample: ids, true and predicted labels, class probabilities."""
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


def train_fold(cfg: DictConfig, dm: MERDataModule, fold: Fold, fold_dir: Path, ckpt_path: str | None):
    """Train and test one fold; returns (predictions frame, how the model was selected, is rank zero)."""
    pl.seed_everything(cfg.seed + fold.index, workers=True)
    dm.set_fold(fold)
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes, class_names=dm.class_names,
                                    _convert_="all")
    model.check_input(dm.num_frames, dm.channels, dm.image_size)
    if cfg.model.get("class_weights") == "balanced":
        model.class_weights.copy_(dm.class_weights())
    group = cfg.get("experiment_name") or cfg.task_name
    loggers = instantiate_loggers(cfg.get("logger"), version=f"fold_{fold.index:02d}", group=group)
    callbacks = instantiate_callbacks(cfg.get("callbacks"), fold_dir, has_logger=bool(loggers))
    callbacks.append(FoldInfo(fold, dm.class_names, cfg))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    selector = trainer.checkpoint_callback
    best = selector.best_model_path if selector is not None and selector.monitor else ""
    test_ckpt = best or (None if cfg.get("train", True) else ckpt_path)
    trainer.test(model, datamodule=dm, ckpt_path=test_ckpt, verbose=False)
    selection = f"best {trainer.checkpoint_callback.monitor} checkpoint ({Path(best).name})" if best else "last epoch"
    for lg in loggers:
        lg.finalize("success")
    _finish_wandb(loggers)
    return fold_frame(dm, fold, model.test_predictions), selection, trainer.is_global_zero


class FoldInfo(pl.Callback):
    """Stores which fold a checkpoint belongs to, so `eval` can test it on the right subjects."""

    def __init__(self, fold: Fold, classes: list[str], cfg: DictConfig):
        self.fold, self.classes = fold, classes
        self.configs = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model", "protocol")}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["mer"] = {"fold": self.fold.index, "test_subjects": self.fold.test_subjects,
                             "classes": self.classes, **self.configs}


def _finish_wandb(loggers) -> None:
    """One W&B run per fold: close this fold's run before the next starts."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()


def run_protocol(cfg: DictConfig, dm: MERDataModule) -> dict:
    """Train/test every selected fold (resuming finished ones) and write the pooled report."""
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    table = dm.prepare()
    folds = build_folds(cfg, table)
    selected = cfg.protocol.get("folds")
    if selected is not None:
        unknown = sorted(set(selected) - {f.index for f in folds})
        if unknown:
            raise MERError(f"protocol.folds={list(selected)}: no fold(s) {unknown}; this protocol has folds 0-{len(folds) - 1}")
        folds = [f for f in folds if f.index in set(selected)]
    frames, fold_results, ckpt_path, is_zero = [], [], cfg.get("ckpt_path"), True
    for fold in folds:
        fold_dir = out_dir / "folds" / f"fold_{fold.index:02d}"
        done = load_finished_fold(fold_dir, dm, fold) if cfg.protocol.get("resume", True) else None
        if done is not None:
            log.info("Resuming: %s already finished, skipped", fold.name)
            frame, selection = done
        else:
            check_selection(cfg, fold)
            log.info("Training %s: %d train / %d val / %d test samples", fold.name, len(fold.train),
                     len(fold.val), len(fold.test))
            fold_dir.mkdir(parents=True, exist_ok=True)
            interrupted = fold_dir / "checkpoints" / "last.ckpt"
            if ckpt_path is None and cfg.protocol.get("resume", True) and interrupted.is_file():
                log.info("Resuming %s from %s", fold.name, interrupted)
                ckpt_path = str(interrupted)
            try:
                frame, selection, is_zero = train_fold(cfg, dm, fold, fold_dir, ckpt_path)
            except (MERError, KeyboardInterrupt):
                raise
            except Exception as err:
                finished = len(fold_results)
                raise RuntimeError(f"{fold.name} failed ({type(err).__name__}: {err}). {finished} finished "
                                   f"fold(s) are saved under {out_dir / 'folds'}; rerun the same command to "
                                   "resume from this fold.") from err
            ckpt_path = None
            if is_zero:
                write_csv(fold_dir / "predictions.csv", frame)
                write_json(fold_dir / "fold.json", {"index": fold.index, "test_subjects": fold.test_subjects,
                                                   "selection": selection,
                                                   "metrics": summarize(frame.y_true, frame.y_pred, dm.num_classes)})
        frames.append(frame)
        fold_results.append({"index": fold.index, "test_subjects": fold.test_subjects, "selection": selection,
                             "metrics": summarize(frame.y_true, frame.y_pred, dm.num_classes)})
    results = pooled_results(cfg, dm, frames, fold_results)
    results["elapsed_s"] = time.time() - started
    if is_zero:
        write_report(out_dir, results, pd.concat(frames, ignore_index=True), dm.class_names)
        log_summary(cfg, results)
        print_results(results)
    return results


def load_finished_fold(fold_dir: Path, dm: MERDataModule, fold: Fold):
    """A finished fold's predictions, if they exist and cover exactly this fold's test samples."""
    preds, meta = fold_dir / "predictions.csv", fold_dir / "fold.json"
    if not (preds.is_file() and meta.is_file()):
        return None
    import json

    frame = pd.read_csv(preds)
    expected = sorted(dm.table[i].id for i in fold.test)
    if sorted(frame.sample_id) != expected:
        raise MERError(f"{preds} holds predictions for other samples than {fold.name} (data or protocol "
                       "changed since it was written). Use a new output directory or protocol.resume=false.")
    return frame, json.loads(meta.read_text()).get("selection", "")


def pooled_results(cfg: DictConfig, dm: MERDataModule, frames: list[pd.DataFrame], folds: list[dict],
                   protocol: dict | None = None) -> dict:
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
    return {
        **{f"protocol/{k}": pooled[k] for k in ("acc", "uf1", "uar")},
        "title": f"{cfg.task_name}: {cfg.data.get('name', '')} / {cfg.model.get('name', '')}",
        "metrics": metrics,
        "pooled": pooled,
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
    (out_dir / "results.md").write_text(results_markdown(results))
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
