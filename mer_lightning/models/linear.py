"""The classical reference of MER: multinomial logistic regression on pooled onset -> apex flow.

`LogisticRegression` is a `MERModule` whose features are fixed (the backbone, `Pooled`: the flow
average-pooled to a grid, then the head's mean over time steps), standardised with the mean and
standard deviation of the fold's training samples, and whose classifier is fitted once, to
convergence, by full-batch L-BFGS in float64 on scikit-learn's objective

    C * sum_i w_i * cross_entropy(W z_i + b, y_i) + ||W||^2 / 2      (the intercept b not penalised)

so it gives scikit-learn's `LogisticRegression(C=C)` on the same features (the tests check it). The
fit happens at the start of the first training epoch; later epochs change nothing (`model=linear`
trains one epoch). Being a MERModule it goes through the same runner, reports and checkpoints as
every deep model; `fit_features` / `predict_features` let the runner's reference (`runner/reference.py`)
use the same model without a Lightning loop.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from mer_lightning.models.module import MERModule
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)


def standardise(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per feature (a constant feature gets std 1, as scikit-learn's StandardScaler)."""
    mean = features.mean(0)
    std = features.std(0, unbiased=False)
    std = torch.where(std < 10 * torch.finfo(std.dtype).eps, torch.ones_like(std), std)
    return mean, std


def logistic_objective(z: torch.Tensor, y: torch.Tensor, linear: nn.Linear, C: float,
                       sample_weight: torch.Tensor | None = None) -> Callable[[], torch.Tensor]:
    """The closure L-BFGS minimises: (sum_i w_i CE_i + ||W||^2 / (2 C)) / sum(w), scikit-learn's objective
    divided by C * sum(w) (the same minimiser, better scaled); the intercept is not penalised."""
    w = torch.ones(len(y), dtype=z.dtype) if sample_weight is None else sample_weight.to(z.dtype)
    total = float(w.sum())

    def objective() -> torch.Tensor:
        for p in linear.parameters():
            p.grad = None
        losses = nn.functional.cross_entropy(linear(z), y, reduction="none")
        loss = (w * losses).sum() / total + (linear.weight ** 2).sum() / (2.0 * C * total)
        loss.backward()
        return loss

    return objective


class Standardise(nn.Module):
    """(x - mean) / std per feature, in float64 (the statistics of the fold's training samples)."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features, dtype=torch.float64))
        self.register_buffer("std", torch.ones(features, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.mean) - self.mean) / self.std


class Float32(nn.Module):
    """Logits back to float32, what the rest of the module (loss, metrics) expects."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def lbfgs(linear: nn.Linear, max_iter: int, tol: float) -> torch.optim.LBFGS:
    return torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                             tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")


class LogisticRegression(MERModule):
    """Multinomial logistic regression on fixed features, fitted to convergence (see the module docstring).

    `C`: inverse L2 strength (scikit-learn's); `max_iter`, `tol`: L-BFGS's budget and gradient
    tolerance; `class_weights`: null or `balanced` (each sample weighted by its class's inverse
    frequency in the fold's training samples, as scikit-learn's class_weight="balanced"). The
    classifier and the standardisation are float64, as the fit.
    """

    def __init__(self, backbone: nn.Module, head: Callable[..., nn.Module], num_classes: int, C: float = 1.0,
                 max_iter: int = 1000, tol: float = 1e-6, class_weights: str | None = None,
                 class_names: list[str] | None = None, name: str = "linear"):
        if C <= 0:
            raise MERError(f"model.C={C}: the inverse regularisation strength must be positive (e.g. 1.0)")
        super().__init__(backbone, head, num_classes, optimizer=None, dropout=0.0, class_weights=class_weights,
                         class_names=class_names, name=name)
        self.C, self.max_iter, self.tol = float(C), int(max_iter), float(tol)
        self.automatic_optimization = False
        d = self.head.num_features
        self.classifier = nn.Sequential(Standardise(d), nn.Linear(d, num_classes, dtype=torch.float64), Float32())
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._training_set: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- features ---------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> the unstandardised features (B, D)."""
        b, t = x.shape[:2]
        return self.head(self.backbone(x.flatten(0, 1)).reshape(b, t, -1))

    # -- fitting ----------------------------------------------------------------------------------
    def _prepare(self, features: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Standardise on `features`, start from zero weights and return the objective's closure."""
        features = features.detach().to(torch.float64)
        mean, std = standardise(features)
        weights = None
        if self.hparams.class_weights == "balanced":
            counts = torch.bincount(y, minlength=self.hparams.num_classes).to(torch.float64)
            weights = (len(y) / (self.hparams.num_classes * counts.clamp(min=1)))[y]
        standardise_, linear = self.classifier[0], self.classifier[1]
        with torch.no_grad():
            standardise_.mean.copy_(mean)
            standardise_.std.copy_(std)
            linear.weight.zero_()
            linear.bias.zero_()
        return logistic_objective((features - mean) / std, y.to(torch.long), linear, self.C, weights)

    def _converged(self, objective: Callable[[], torch.Tensor]) -> None:
        objective()
        gradient = max(float(p.grad.abs().max()) for p in self.classifier.parameters())
        if gradient > self.tol:
            log.warning("model=linear: L-BFGS stopped with gradient %.2e > tol %.0e (raise model.max_iter)",
                        gradient, self.tol)
        with torch.no_grad():
            self.fitted.fill_(True)

    def fit_features(self, features: torch.Tensor, y: torch.Tensor) -> None:
        """Standardise `features` (N, D) on themselves and fit the classifier to convergence (no Lightning loop:
        the runner's reference)."""
        objective = self._prepare(features, y)
        lbfgs(self.classifier[1], self.max_iter, self.tol).step(objective)
        self._converged(objective)

    def predict_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, K) of unstandardised features (N, D)."""
        with torch.no_grad():
            return self.classifier(features).softmax(-1)

    def on_train_epoch_start(self) -> None:
        """Collect the fold's training features once (the fit is the first training step)."""
        if bool(self.fitted):
            return
        features, labels = [], []
        with torch.no_grad():
            for batch in self.trainer.train_dataloader:
                features.append(self.features(batch["x"].to(self.device)).cpu())
                labels.append(torch.as_tensor(batch["y"]).cpu())
        if not features:
            raise MERError("model=linear: the fold has no training samples to fit on")
        self._training_set = (torch.cat(features), torch.cat(labels))

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if not bool(self.fitted) and self._training_set is not None:
            objective = self._prepare(*self._training_set)
            self.optimizers().step(closure=objective)  # the whole L-BFGS fit: one optimizer step for Lightning
            self._converged(objective)
            self._training_set = None
        with torch.no_grad():
            loss = self.loss(self(batch["x"]), batch["y"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return lbfgs(self.classifier[1], self.max_iter, self.tol)
