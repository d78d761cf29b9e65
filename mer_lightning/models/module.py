"""MERModule: backbone (per frame) -> temporal head -> classifier, with loss, optimiser and metrics."""

from __future__ import annotations

import logging
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn

from mer_lightning.evaluation.metrics import classification_metrics
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)
LOSSES = ("cross_entropy", "focal")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, gamma: float = 2.0,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_target)^gamma.

    Class weights and label smoothing act as in `cross_entropy` (weighted mean over the batch),
    so gamma=0 gives exactly the cross-entropy. Computed in float32 under mixed precision.
    """
    logits = logits.float()
    ce = nn.functional.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing, reduction="none")
    p_target = logits.softmax(-1).gather(1, target[:, None]).squeeze(1)
    norm = weight[target].sum() if weight is not None else torch.tensor(float(target.numel()), device=logits.device)
    return ((1.0 - p_target).clamp(min=0).pow(gamma) * ce).sum() / norm


class MERModule(pl.LightningModule):
    """A micro-expression classifier over clips `x` float32 (B, T, C, H, W).

    `backbone` maps (N, C, H, W) -> (N, D) and exposes `num_features`; `head` is a callable
    (a partial from config) that builds the temporal head from `in_features=D`. Metrics follow
    the project's names: `train/loss`, `val/loss`, `val/uf1`, `test/acc`, `test/uf1`, `test/uar`
    (a validation pass outside training, such as the selected checkpoint's re-validation, logs under
    `val_prefix`: `selected/val_uf1`, so it adds no point to the `val/*` curves).

    Options: `name` (the preset, shown in reports), `loss` (cross_entropy, or focal with `focal_gamma`), `label_smoothing`,
    `class_weights` (`balanced`: filled in per fold by the protocol), `channels_last` (frames in
    channels-last memory format, faster convolutions on recent GPUs), `compile` (torch.compile of
    the backbone at setup). The backbone's `freeze` (never trained: no gradients, BatchNorm and
    dropout in eval mode) and `freeze_epochs` (frozen for the first N epochs, then trained; its
    parameters are in the optimizer from the start) are applied here.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        dropout: float = 0.0,
        class_weights: str | None = None,
        label_smoothing: float = 0.0,
        class_names: list[str] | None = None,
        loss: str = "cross_entropy",
        focal_gamma: float = 2.0,
        channels_last: bool = False,
        compile: bool = False,
        name: str = "",
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["backbone", "head", "optimizer", "scheduler"])
        if loss not in LOSSES:
            raise MERError(f"model.loss={loss}: choose one of {', '.join(LOSSES)}")
        self.backbone = backbone
        self.head = head(in_features=backbone.num_features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.head.num_features, num_classes))
        # `model/scheduler=none` composes to an empty config: no scheduler
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler or None
        # `balanced`: the protocol fills in inverse class frequencies of each fold's training samples
        self.register_buffer("class_weights", torch.ones(num_classes))
        self.label_smoothing = label_smoothing
        self.loss_name, self.focal_gamma = loss, focal_gamma
        self.channels_last, self.compile_backbone = bool(channels_last), bool(compile)
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.freeze_backbone = bool(getattr(backbone, "freeze", False))
        self.freeze_epochs = 0 if self.freeze_backbone else int(getattr(backbone, "freeze_epochs", 0) or 0)
        # under DDP, parameters must require grad when the model is wrapped to be synchronised later
        # (setup() switches warm-up freezing to dropping the backbone's gradients instead)
        self._drop_backbone_grads = False
        self.backbone_frozen = False
        if self.freeze_backbone or self.freeze_epochs:
            if getattr(backbone, "weights", None) == "random init":
                log.warning("model.backbone.freeze / freeze_epochs on a randomly initialised backbone: give it "
                            "weights (model.backbone.pretrained=true or model.backbone.checkpoint=<file>)")
            self.set_backbone_frozen(True)
        self.val_metrics = classification_metrics(num_classes, prefix="val/")
        self.val_prefix = "val/"
        self.test_metrics = classification_metrics(num_classes, prefix="test/")
        # each sample's (index, y, probs) of the last validation / test pass, gathered over processes:
        # the protocol pools them (validation: the selection objective; test: the headline figures)
        self.val_outputs: list[dict[str, torch.Tensor]] = []
        self.val_predictions: dict[str, torch.Tensor] | None = None
        self.test_outputs: list[dict[str, torch.Tensor]] = []
        self.test_predictions: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        features = self.backbone(frames).reshape(b, t, -1)
        return self.classifier(self.head(features))

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "focal":
            return focal_loss(logits, y, weight=self.class_weights, gamma=self.focal_gamma,
                              label_smoothing=self.label_smoothing)
        return nn.functional.cross_entropy(logits, y, weight=self.class_weights, label_smoothing=self.label_smoothing)

    # -- start-up checks -------------------------------------------------------------------------
    def describe(self) -> str:
        backbone = getattr(self.backbone, "name", None) or type(self.backbone).__name__
        return f"backbone {backbone} (D={self.backbone.num_features}) + head {type(self.head).__name__}"

    def check_input(self, num_frames: int, channels: int, image_size: int) -> None:
        """Refuse, before any training, an input this model cannot take: a MERError saying why.

        Checks the head's `min_frames`, the backbone's `in_chans` and `min_image_size`, then runs
        one forward pass on zeros (1, T, C, H, W) in eval mode (no RNG draws, no BatchNorm
        statistics updated) and checks every stage's output width against what it states.
        """
        model, data = self.describe(), f"clips of T={num_frames} x {channels}x{image_size}x{image_size}"
        min_frames = int(getattr(self.head, "min_frames", 1))
        if num_frames < min_frames:
            raise MERError(f"{model} needs at least {min_frames} frames per clip, the data gives T={num_frames} "
                           f"(data.num_frames / data.frames / data.input). Use data.num_frames>={min_frames} or "
                           "a head that accepts single frames (model/head=mean).")
        in_chans = getattr(self.backbone, "in_chans", None)
        if in_chans is not None and in_chans != channels:
            raise MERError(f"{model} takes {in_chans} input channels (model.backbone.in_chans) but the data gives "
                           f"{channels} (data.channels); leave model.backbone.in_chans=${{data.channels}}.")
        min_size = int(getattr(self.backbone, "min_image_size", 1) or 1)
        if image_size < min_size:
            raise MERError(f"data.image_size={image_size} is too small for {model}: it needs at least "
                           f"{min_size}x{min_size} pixels (its total stride). Use data.image_size>={min_size}"
                           + (", or model.backbone.min_image_size to run anyway." if hasattr(self.backbone, "model")
                              else "."))
        x = torch.zeros(1, num_frames, channels, image_size, image_size, device=self.device)
        training = self.training
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                self.eval()
                frames = x.flatten(0, 1)
                if self.channels_last:
                    frames = frames.contiguous(memory_format=torch.channels_last)
                features = self.backbone(frames)
                if tuple(features.shape) != (num_frames, self.backbone.num_features):
                    raise MERError(f"{model} on {data}: the backbone returns {tuple(features.shape)} per "
                                   f"{num_frames} frames but states num_features={self.backbone.num_features} "
                                   "(check model.backbone.image_size / pool / num_features).")
                pooled = self.head(features.reshape(1, num_frames, -1))
                if tuple(pooled.shape) != (1, self.head.num_features):
                    raise MERError(f"{model} on {data}: the head returns {tuple(pooled.shape)} but states "
                                   f"num_features={self.head.num_features}.")
                self.classifier(pooled)
        except MERError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of the dry run is a shape/config mismatch
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise MERError(f"{model} cannot run on {data}: {type(err).__name__}: {first}. Check data.image_size, "
                           "data.channels and data.num_frames against model.backbone / model.head.") from None
        finally:
            self.train(training)

    # -- freezing, compile ------------------------------------------------------------------------
    def set_backbone_frozen(self, frozen: bool) -> None:
        """Frozen: no gradients for the backbone (requires_grad False) and the backbone in eval mode."""
        self.backbone_frozen = frozen
        if not self._drop_backbone_grads:
            for p in self.backbone.parameters():
                p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> MERModule:
        super().train(mode)
        if mode and getattr(self, "backbone_frozen", False):
            self.backbone.eval()  # BatchNorm statistics and dropout stay fixed while frozen
        return self

    def setup(self, stage: str) -> None:
        if self.freeze_epochs and self.trainer.world_size > 1:
            # DDP registers only parameters that require grad when it wraps the model: keep them all
            # trainable and drop the backbone's gradients while it is frozen
            self._drop_backbone_grads = True
            for p in self.backbone.parameters():
                p.requires_grad_(True)
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.backbone.compile()  # in place: parameter names (and checkpoints) stay the same
            self._compiled = True

    def on_train_epoch_start(self) -> None:
        if self.freeze_epochs:
            frozen = self.current_epoch < self.freeze_epochs
            if frozen != self.backbone_frozen:
                log.info("Epoch %d: backbone %s", self.current_epoch, "frozen" if frozen else "unfrozen")
            self.set_backbone_frozen(frozen)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._drop_backbone_grads and self.backbone_frozen:
            for p in self.backbone.parameters():
                p.grad = None

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["x"]), batch["y"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_outputs = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["x"])
        self.log(f"{self.val_prefix}loss", self.loss(logits, batch["y"]), prog_bar=True, batch_size=len(batch["y"]),
                 sync_dist=True)
        self.val_metrics.update(logits, batch["y"])
        self.val_outputs.append({"index": batch["index"], "y": batch["y"], "probs": logits.float().softmax(-1)})

    def on_validation_epoch_end(self) -> None:
        figures = self.val_metrics.compute()
        self.log_dict({k.replace("val/", self.val_prefix, 1): v for k, v in figures.items()}, prog_bar=True,
                      sync_dist=True)
        self.val_metrics.reset()
        if self.val_outputs:
            local = {k: torch.cat([o[k] for o in self.val_outputs]) for k in ("index", "y", "probs")}
            self.val_predictions = self._gather_unique(local)
        self.val_outputs = []

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
            local = {k: v.flatten(0, 1) for k, v in gathered.items()}
        order = torch.argsort(local["index"])
        local = {k: v[order].cpu() for k, v in local.items()}
        keep = torch.ones_like(local["index"], dtype=torch.bool)
        keep[1:] = local["index"][1:] != local["index"][:-1]
        return {k: v[keep] for k, v in local.items()}

    def configure_optimizers(self) -> Any:
        # warm-up freezing: the backbone is in the optimizer from the start (no step while it has no gradients)
        optimizer = self.optimizer_factory(params=[p for name, p in self.named_parameters() if p.requires_grad or (
            self.freeze_epochs and name.startswith("backbone."))])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "interval": "epoch"}}
