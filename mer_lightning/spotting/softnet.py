"""The learned spotter's model: a shallow CNN (two convolutions; SOFTNet's has three streams of one) that
reads one flow window (u, v, optical strain between positions t and t + k, `features.py`) and regresses
SOFTNet's pseudo-label: 1 when the window [t, t + k] overlaps an interval of its type, else 0 (Liong et
al., SOFTNet, 2021: mean squared error, no sigmoid). Small on purpose: on 2 CPU cores a fold of the
embedded videos trains in seconds (measured, LOSO on 4 subjects: 16 x 16 windows, 8 channels, 8 epochs
F1 0.80; an MLP 0.60).

One model per type and fold, trained on the fold's training subjects only. Inputs are scaled per
channel by the root mean square of the training windows (`scale`, kept with the model), so the
network sees the same units in every fold and on every dataset.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from mer_lightning.data.videos import Video
from mer_lightning.spotting.features import VideoFeatures


def pseudo_labels(video: Video, features: VideoFeatures, kind: str) -> np.ndarray:
    """SOFTNet's labels of a video's positions: 1 where the window [start, start + k stride] overlaps an
    interval of `kind`, else 0 (float32)."""
    labels = np.zeros(len(features.starts), np.float32)
    ends = features.starts + features.span
    for iv in video.of_type(kind):
        labels[(features.starts <= iv.end) & (ends >= iv.start)] = 1.0
    return labels


class SpotNet(pl.LightningModule):
    """Flow window (B, 3, W, W) -> a score per window (B,), trained by MSE on the pseudo-labels."""

    def __init__(self, window: int = 16, channels: int = 8, lr: float = 1e-3, weight_decay: float = 1e-4,
                 dropout: float = 0.2):
        super().__init__()
        self.save_hyperparameters()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c * (window // 4) ** 2, 32), nn.ReLU(),
                                  nn.Linear(32, 1))
        self.register_buffer("scale", torch.ones(3))

    def set_scale(self, windows: np.ndarray) -> None:
        """Per-channel root mean square of the training windows (N, 3, W, W)."""
        rms = np.sqrt(np.mean(np.square(windows.astype(np.float32)), axis=(0, 2, 3)))
        self.scale.copy_(torch.from_numpy(np.maximum(rms, 1e-6)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / self.scale[None, :, None, None]
        return self.head(self.features(x)).squeeze(1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if torch.rand(()) < 0.5:  # a mirrored face: u changes sign
            x = torch.flip(x, dims=[3]) * torch.tensor([-1.0, 1.0, 1.0], device=x.device)[None, :, None, None]
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    @torch.no_grad()
    def score(self, windows: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The score of every window (N, 3, W, W) -> (N,) float32, in eval mode."""
        was = self.training
        self.eval()
        out = [self(torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size])).to(self.device)).float().cpu()
               for i in range(0, len(windows), batch_size)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)
