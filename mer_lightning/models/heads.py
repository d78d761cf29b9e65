"""Temporal heads: (B, T, D) -> (B, num_features). Every head accepts T=1."""

from __future__ import annotations

import torch
from torch import nn


class MeanHead(nn.Module):
    """Average the per-frame features over time (for T=1 this is the frame's features)."""

    min_frames = 1

    def __init__(self, in_features: int, **_):
        super().__init__()
        self.num_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class BiLSTMHead(nn.Module):
    """A bidirectional LSTM over the frame features; the last forward and first backward states."""

    min_frames = 1

    def __init__(self, in_features: int, hidden_size: int = 64, num_layers: int = 1, dropout: float = 0.0, **_):
        super().__init__()
        self.rnn = nn.LSTM(in_features, hidden_size, num_layers=num_layers, batch_first=True,
                           bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.num_features = 2 * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.rnn(x)
        return torch.cat([h[-2], h[-1]], dim=1)
