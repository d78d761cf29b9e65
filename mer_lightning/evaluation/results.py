"""Pooling over folds: one frame of predictions per fold, then the figures of the whole protocol.

Each number is stored once in `results.json`: the pooled headline figures and the per-fold mean and
spread under `metrics` (`protocol/uf1`, `protocol/val_uf1`, `fold_mean/uf1`, `fold_std/uf1`, ...), the
per-class detail and confusion matrix under `pooled` (and `validation`), each fold's own figures
under `folds`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.evaluation.metrics import summarize
from mer_lightning.evaluation.objective import VALIDATION, selects_on_test

HEADLINE = ("acc", "uf1", "uar")


def fold_frame(dm, fold, predictions: dict) -> pd.DataFrame:
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


def fold_record(fold, test: pd.DataFrame, val: pd.DataFrame | None, selection: str, checkpoint: str | None,
                num_classes: int, details: dict | None = None) -> dict:
    """A fold's entry in results.json and fold.json: its test subjects, how its model was chosen (in words,
    and `details`: the selection mode, epochs trained, the selection pass's scores), its figures."""
    record = {"index": fold.index, "test_subjects": fold.test_subjects, "selection": selection,
              "details": dict(details or {}), "checkpoint": checkpoint,
              "metrics": summarize(test.y_true, test.y_pred, num_classes)}
    if val is not None:
        record["val_metrics"] = summarize(val.y_true, val.y_pred, num_classes)
    return record


def _detail(summary: dict) -> dict:
    """A summary without its headline figures (those live in `metrics`, once)."""
    return {k: v for k, v in summary.items() if k not in HEADLINE}


def pooled_results(cfg: DictConfig, classes: list[str], frames: list[pd.DataFrame], folds: list[dict],
                   protocol: dict | None = None, val_frames: list | None = None, partial: list[str] | None = None,
                   skipped: list[dict] | None = None) -> dict:
    """The protocol's results: pooled test (and validation) figures, per-fold mean and spread."""
    num_classes = len(classes)
    all_preds = pd.concat(frames, ignore_index=True)
    pooled = summarize(all_preds.y_true, all_preds.y_pred, num_classes)
    metrics = {f"protocol/{k}": pooled[k] for k in HEADLINE}
    validation = None
    if val_frames and all(v is not None and len(v) for v in val_frames):
        val = pd.concat(val_frames, ignore_index=True)
        validation = summarize(val.y_true, val.y_pred, num_classes)
        metrics.update({f"protocol/val_{k}": validation[k] for k in HEADLINE})
    for k in HEADLINE:
        per_fold = [f["metrics"][k] for f in folds]
        metrics[f"fold_mean/{k}"] = float(np.mean(per_fold))
        metrics[f"fold_std/{k}"] = float(np.std(per_fold))
    per_source = {}
    if all_preds.source.nunique() > 1:
        for source, part in all_preds.groupby("source"):
            per_source[source] = summarize(part.y_true, part.y_pred, num_classes)
    metric = cfg.get("optimized_metric")
    return {
        "title": f"{cfg.task_name}: {cfg.data.get('name', '')} / {cfg.model.get('name', '')}",
        "complete": not partial,
        "not_a_protocol_result": list(partial or []),
        "objective": {"metric": metric, "value": metrics.get(metric),
                      "on": "validation" if metric in VALIDATION else "test",
                      "optimistic": selects_on_test(cfg)} if metric else None,
        "metrics": metrics,
        "pooled": _detail(pooled),
        "validation": _detail(validation) if validation else None,
        "per_source": per_source,
        "folds": folds,
        "classes": classes,
        "protocol": protocol or OmegaConf.to_container(cfg.protocol, resolve=True),
        "skipped": list(skipped or []),
    }


def results_frame(results: dict) -> pd.DataFrame:
    """The results table: one row per fold, then the pooled row and the fold mean."""
    m = results["metrics"]
    rows = [{"fold": str(f["index"]), "test_subjects": " ".join(f["test_subjects"]), "n": f["metrics"]["n"],
             **{k: f["metrics"][k] for k in HEADLINE}} for f in results["folds"]]
    rows.append({"fold": "pooled", "test_subjects": "all", "n": results["pooled"]["n"],
                 **{k: m[f"protocol/{k}"] for k in HEADLINE}})
    rows.append({"fold": "mean over folds", "test_subjects": "", "n": results["pooled"]["n"],
                 **{k: m[f"fold_mean/{k}"] for k in HEADLINE}})
    return pd.DataFrame(rows)
