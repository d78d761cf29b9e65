"""MERModule: backbone (per frame) -> temporal head -> classifier, with loss, optimiser and metrics."""

from __future__ import annotations

from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn

from mer_lightning.evaluation.metrics import classification_metrics


class MERModule(pl.LightningModule):
    """A micro-expression classifier over clips `x` float32 (B, T, C, H, W).

    `backbone` maps (N, C, H, W) -> (N, D) and exposes `num_features`; `head` is a callable
    (a partial from config) that builds the temporal head from `in_features=D`. Metrics follow
    the project's names: `train/loss`, `val/loss`, `val/uf1`, `test/acc`, `test/uf1`, `test/uar`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        num_frames: int = 8,
        dropout: float = 0.3,
        class_weights: str | None = None,
        label_smoothing: float = 0.0,
        class_names: list[str] | None = None,
        **_: Any,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["backbone", "head", "optimizer", "scheduler"])
        self.backbone = backbone
        self.head = head(in_features=backbone.num_features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.head.num_features, num_classes))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # `balanced`: the protocol fills in inverse class frequencies of each fold's training samples
        self.register_buffer("class_weights", torch.ones(num_classes))
        self.label_smoothing = label_smoothing
        self.val_metrics = classification_metrics(num_classes, prefix="val/")
        self.test_metrics = classification_metrics(num_classes, prefix="test/")
        self.test_outputs: list[dict[str, torch.Tensor]] = []
        self.test_predictions: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        features = self.backbone(x.flatten(0, 1)).view(b, t, -1)
        return self.classifier(self.head(features))

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, y, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["x"]), batch["y"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["x"])
        self.log("val/loss", self.loss(logits, batch["y"]), prog_bar=True, batch_size=len(batch["y"]), sync_dist=True)
        self.val_metrics.update(logits, batch["y"])

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_outputs = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["x"])
        self.log("test/loss", self.loss(logits, batch["y"]), batch_size=len(batch["y"]), sync_dist=True)
        self.test_metrics.update(logits, batch["y"])
        self.test_outputs.append({"index": batch["index"], "y": batch["y"], "probs": logits.float().softmax(-1)})

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        local = {k: torch.cat([o[k] for o in self.test_outputs]) for k in ("index", "y", "probs")}
        self.test_predictions = self._gather_unique(local)
        self.test_outputs = []

    def _gather_unique(self, local: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All processes' predictions, each sample once (DistributedSampler pads with repeats)."""
        if self.trainer.world_size > 1:
            gathered = self.all_gather(local)
            local = {k: v.flatten(0, 1) if k != "probs" else v.flatten(0, 1) for k, v in gathered.items()}
        order = torch.argsort(local["index"])
        local = {k: v[order].cpu() for k, v in local.items()}
        keep = torch.ones_like(local["index"], dtype=torch.bool)
        keep[1:] = local["index"][1:] != local["index"][:-1]
        return {k: v[keep] for k, v in local.items()}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "interval": "epoch"}}
