"""Accuracy, UF1 (macro F1), UAR (macro recall) and the confusion matrix, from torchmetrics.

UF1 and UAR are means over the classes that occur in the targets *or* the predictions of the set
they are computed on, exactly as scikit-learn's `average="macro"` (the tests cross-check every
figure). So, in one fold (LOSO: one subject, who rarely shows every class), a class with no test
samples is left out of that fold's mean if the model never predicts it; if the model does predict
it, its F1 and recall are 0 and it counts in the mean. Pooled over a whole protocol every class of
the scheme has test samples, so the headline mean is over all of them.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Running metrics for a Lightning loop: `<prefix>acc`, `<prefix>uf1`, `<prefix>uar`."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "uf1": MulticlassF1Score(num_classes, average="macro"),
            "uar": MulticlassRecall(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def summarize(y_true, y_pred, num_classes: int) -> dict:
    """Headline and per-class figures for a set of predictions (plain floats and lists)."""
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    preds = torch.as_tensor(np.asarray(y_pred), dtype=torch.long)
    if target.numel() == 0:
        return {"n": 0}
    args = dict(num_classes=num_classes)
    return {
        "n": int(target.numel()),
        "acc": float(multiclass_accuracy(preds, target, average="micro", **args)),
        "uf1": float(multiclass_f1_score(preds, target, average="macro", **args)),
        "uar": float(multiclass_recall(preds, target, average="macro", **args)),
        "precision": multiclass_precision(preds, target, average="none", **args).tolist(),
        "recall": multiclass_recall(preds, target, average="none", **args).tolist(),
        "f1": multiclass_f1_score(preds, target, average="none", **args).tolist(),
        "confusion": multiclass_confusion_matrix(preds, target, **args).tolist(),
    }
