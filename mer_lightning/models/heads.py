"""Temporal heads: (B, T, D) -> (B, num_features). Every head accepts T=1.

Each head is built from a config partial with `in_features=D` (the backbone's width) and states
`num_features` (its output width) and `min_frames` (the fewest time steps it accepts; 1 for all
heads here, raise it with `model.head.min_frames=N` to refuse shorter clips at start-up).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MeanHead(nn.Module):
    """Average the per-frame features over time (for T=1 this is the frame's features)."""

    min_frames = 1

    def __init__(self, in_features: int, min_frames: int = 1):
        super().__init__()
        self.num_features = in_features
        self.min_frames = min_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class _BidirectionalRNNHead(nn.Module):
    """A bidirectional recurrent layer over the frame features.

    `pool: last`: the last forward and first backward states; `pool: mean`: the outputs (both
    directions) averaged over time, which lets every step (the apex among them) reach the classifier
    directly instead of through the whole sequence.
    """

    rnn_type: type[nn.RNNBase] = nn.LSTM
    min_frames = 1

    def __init__(self, in_features: int, hidden_size: int = 64, num_layers: int = 1, dropout: float = 0.0,
                 min_frames: int = 1, pool: str = "mean"):
        super().__init__()
        if pool not in ("last", "mean"):
            raise ValueError(f"model.head.pool={pool}: choose last or mean")
        self.rnn = self.rnn_type(in_features, hidden_size, num_layers=num_layers, batch_first=True,
                                 bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.num_features = 2 * hidden_size
        self.min_frames, self.pool = min_frames, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(x)
        if self.pool == "mean":
            return out.mean(dim=1)
        h = h[0] if isinstance(h, tuple) else h  # an LSTM returns (hidden, cell)
        return torch.cat([h[-2], h[-1]], dim=1)


class BiLSTMHead(_BidirectionalRNNHead):
    """A bidirectional LSTM over the frame features; its outputs averaged over time (`pool=last`: the
    last forward and first backward states)."""

    rnn_type = nn.LSTM


class GRUHead(_BidirectionalRNNHead):
    """A bidirectional GRU over the frame features; its outputs averaged over time (`pool=last`: the
    last forward and first backward states)."""

    rnn_type = nn.GRU


class TransformerHead(nn.Module):
    """A small transformer encoder over the frame features.

    Frame features are projected to `d_model`, get sinusoidal positional encodings (any T), a
    learned CLS token is prepended (`pool: cls`; `pool: mean` averages the outputs instead), and
    `num_layers` pre-norm encoder layers run over the sequence. Output: (B, d_model).
    """

    min_frames = 1

    def __init__(self, in_features: int, d_model: int = 128, num_heads: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 256, dropout: float = 0.1, pool: str = "cls", min_frames: int = 1):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"model.head.d_model={d_model} must be a multiple of model.head.num_heads={num_heads}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"model.head.pool={pool}: choose cls or mean")
        self.proj = nn.Linear(in_features, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pool == "cls" else None
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.pool, self.num_features, self.min_frames = pool, d_model, min_frames

    @staticmethod
    def positions(length: int, dim: int, device, dtype) -> torch.Tensor:
        """Sinusoidal positional encodings (length, dim)."""
        position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(length, dim + dim % 2, device=device)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq)
        return table[:, :dim].to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + self.positions(x.shape[1], x.shape[2], x.device, x.dtype)
        x = self.norm(self.encoder(x))
        return x[:, 0] if self.cls is not None else x.mean(dim=1)
