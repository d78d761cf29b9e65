"""Per-frame feature extractors. Each maps (N, C, H, W) -> (N, D) and states `num_features`."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """The seed architecture: conv + ReLU + max-pool blocks, then dense layers.

    Input (N, in_chans, image_size, image_size); output (N, num_features). `pool` is the spatial
    grid kept before the dense layers (1 = global average pooling: features that do not depend
    on where the face sits in the crop; 0 = flatten the whole last feature map).
    """

    def __init__(self, in_chans: int = 1, image_size: int = 64, channels: tuple[int, ...] = (16, 32, 64),
                 num_features: int = 128, dropout: float = 0.2, pool: int = 0, **_):
        super().__init__()
        layers, c = [], in_chans
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = out
        side = image_size // (2 ** len(channels))
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for {len(channels)} pooling blocks")
        if pool:
            layers.append(nn.AdaptiveAvgPool2d(pool))
            side = pool
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * side * side, num_features),
                                   nn.ReLU(inplace=True))
        self.in_chans, self.image_size, self.num_features = in_chans, image_size, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x))
