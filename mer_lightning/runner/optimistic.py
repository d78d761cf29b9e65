"""The papers' protocol, measured beside ours and labelled: `protocol.optimistic=true`.

Published MER code (HTNet, CausalNet, MMNet, SKD-TSTSAN ...) evaluates each fold's model on its test
subject after every epoch and reports the epoch with the best test score: a figure no new subject
would see. With `protocol.optimistic=true` the tested model's training (the refit or `last` fit, or
the `val` fit) also predicts the fold's test subjects after every epoch; the pooled predictions of
each fold's best-test epoch give `optimistic/uf1|uar|acc`, reported next to the honest `protocol/*`
with the gap and the label "Optimistic: epoch chosen on the test subject, as in published code; not a
result". Nothing the run selects, saves or reports as `protocol/*` changes: the extra passes run in
evaluation mode, without gradients, on forked random-number streams (the training draws the same
numbers as without them; tested).

In `refit` the tested fit trains only the chosen budget, so the best test epoch is searched within it;
`last` (every training subject, `trainer.max_epochs`) is the papers' setting exactly.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch

from mer_lightning.evaluation.metrics import summarize

LABEL = "Optimistic: epoch chosen on the test subject, as in published code; not a result"


class TestEveryEpoch(pl.Callback):
    """After every training epoch, the model's predictions on the fold's test subjects (kept in the
    checkpoint's callback state, so a resumed fit keeps the epochs it already scored)."""

    def __init__(self, datamodule):
        self.datamodule = datamodule
        self.epochs: dict[int, dict[str, list]] = {}

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and pl_module.device.type == "cuda" else []
        training = pl_module.training
        with torch.random.fork_rng(devices=devices):
            pl_module.eval()
            index, y, probs = [], [], []
            for batch in self.datamodule.test_dataloader():
                logits = pl_module(batch["x"].to(pl_module.device))
                index.append(torch.as_tensor(batch["index"]).cpu())
                y.append(torch.as_tensor(batch["y"]).cpu())
                probs.append(logits.float().softmax(-1).cpu())
            pl_module.train(training)
        if index:
            self.epochs[int(trainer.current_epoch)] = {"index": torch.cat(index).tolist(), "y": torch.cat(y).tolist(),
                                                       "probs": torch.cat(probs).tolist()}

    def state_dict(self) -> dict:
        return {"epochs": {str(e): p for e, p in self.epochs.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = {int(e): p for e, p in state_dict.get("epochs", {}).items()}

    def best(self, num_classes: int) -> tuple[int, dict[str, torch.Tensor], list[float]] | None:
        """The epoch whose test predictions score the best UF1 (the first of equals), those predictions,
        and every epoch's test UF1."""
        if not self.epochs:
            return None
        epochs = sorted(self.epochs)
        scores = [summarize(np.asarray(self.epochs[e]["y"]), np.asarray(self.epochs[e]["probs"]).argmax(1),
                            num_classes)["uf1"] for e in epochs]
        chosen = epochs[int(np.argmax(scores))]
        record = self.epochs[chosen]
        return chosen, {"index": torch.tensor(record["index"], dtype=torch.long),
                        "y": torch.tensor(record["y"], dtype=torch.long),
                        "probs": torch.tensor(record["probs"], dtype=torch.float32)}, scores


def pooled_optimistic(frames: list, num_classes: int, honest: dict) -> dict:
    """`optimistic/*` pooled over the folds' best-test epochs, and the gap to the honest figures."""
    import pandas as pd

    predictions = pd.concat(frames, ignore_index=True)
    figures = summarize(predictions.y_true, predictions.y_pred, num_classes)
    metrics = {f"optimistic/{k}": figures[k] for k in ("uf1", "uar", "acc")}
    metrics.update({f"optimistic_gap/{k}": figures[k] - honest[f"protocol/{k}"] for k in ("uf1", "uar", "acc")})
    return metrics
