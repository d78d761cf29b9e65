"""Per-frame feature extractors. Each maps (N, C, H, W) -> (N, D) and states `num_features`.

Every backbone also states `in_chans` (the channels it expects), `min_image_size` (the smallest
square input it makes sense on; `MERModule.check_input` enforces both at start-up) and the
freezing options `freeze` / `freeze_epochs` that `MERModule` applies.

- `Pooled`: no learned features: the input average-pooled to a grid and flattened (with a linear
  classifier on top: logistic regression, the classical reference of `model=linear`).
- `SmallCNN`: the seed architecture (conv blocks + dense layer), trained from scratch.
- `STSTNet`: the shallow triple-stream network for optical-flow inputs (Liong et al., FG 2019).
- `TimmBackbone`: any `timm.create_model` architecture, features taken before its classifier;
  pretrained weights only from local files (the Hugging Face / torch hub cache or a checkpoint),
  never downloaded.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from mer_lightning.models.weights import (
    cached_pretrained_file,
    check_loaded,
    check_timm_name,
    load_weights_file,
    pretrained_cfg,
)
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)


class Pooled(nn.Module):
    """The input average-pooled to a `grid` x `grid` map and flattened: (N, C, H, W) -> (N, C * grid^2).

    Nothing is learned here: under `MERModule`'s linear classifier this is multinomial logistic
    regression on pooled features, the classical baseline of MER (onset -> apex flow pooled to a
    coarse grid + a linear classifier) run through the same protocol and report as deep models.
    """

    def __init__(self, in_chans: int = 3, image_size: int = 28, grid: int = 8, freeze: bool = False,
                 freeze_epochs: int = 0):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.in_chans, self.image_size, self.min_image_size = in_chans, image_size, grid
        self.num_features = in_chans * grid * grid
        self.freeze, self.freeze_epochs = freeze, freeze_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class SmallCNN(nn.Module):
    """The seed architecture: conv + ReLU + max-pool blocks, then dense layers.

    Input (N, in_chans, image_size, image_size); output (N, num_features). `pool` is the spatial
    grid kept before the dense layers (1 = global average pooling: features that do not depend
    on where the face sits in the crop; 0 = flatten the whole last feature map).
    """

    def __init__(self, in_chans: int = 1, image_size: int = 64, channels: tuple[int, ...] = (16, 32, 64, 64),
                 num_features: int = 128, dropout: float = 0.2, pool: int = 2, freeze: bool = False,
                 freeze_epochs: int = 0):
        super().__init__()
        layers, c = [], in_chans
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = out
        # each block halves the side: smaller images leave nothing to pool (MERModule.check_input says so)
        self.min_image_size = 2 ** len(channels)
        side = max(image_size // (2 ** len(channels)), 1)
        if pool:
            layers.append(nn.AdaptiveAvgPool2d(pool))
            side = pool
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * side * side, num_features),
                                   nn.ReLU(inplace=True))
        self.in_chans, self.image_size, self.num_features = in_chans, image_size, num_features
        self.freeze, self.freeze_epochs = freeze, freeze_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x))


class STSTNet(nn.Module):
    """Shallow Triple Stream network for optical-flow inputs (STSTNet).

    Reference: S.-T. Liong, Y. S. Gan, J. See, H.-Q. Khor, Y.-C. Huang, "Shallow Triple Stream
    Three-dimensional CNN (STSTNet) for Micro-expression Recognition", IEEE FG 2019
    (arXiv:1902.03634); UF1 0.735 / UAR 0.761 on the MEGC 2019 composite (CASME II + SAMM + SMIC,
    leave-one-subject-out) from 28x28 inputs of optical flow u, v and optical strain computed
    onset -> apex (`data.input=flow`, `data.image_size=28`).

    Three parallel streams of one 3x3 convolution (3, 5 and 8 filters) + ReLU + BatchNorm +
    3x3/3 max-pooling (+ dropout), concatenated over channels, 2x2 average pooling, flattened:
    400 features for a 28x28 input (the original feeds these straight into the softmax layer,
    which here is MERModule's classifier). `pool` > 0 average-pools to a fixed grid instead of
    flattening everything (features then do not grow with the image size); `num_features` > 0
    adds a dense layer of that width.
    """

    def __init__(self, in_chans: int = 3, image_size: int = 28, streams: tuple[int, ...] = (3, 5, 8),
                 kernel_size: int = 3, dropout: float = 0.5, pool: int = 0, num_features: int = 0,
                 freeze: bool = False, freeze_epochs: int = 0):
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_chans, width, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True),
                          nn.BatchNorm2d(width), nn.MaxPool2d(3, stride=3, padding=1), nn.Dropout(dropout))
            for width in streams)
        # side after the max-pool, then after the 2x2 average pool; both must keep at least one cell
        pooled = (image_size - 1) // 3 + 1
        self.min_image_size = 4
        self.pool = nn.Sequential(nn.AvgPool2d(2, stride=2), *([nn.AdaptiveAvgPool2d(pool)] if pool else []))
        side = pool or max(pooled // 2, 1)
        flat = sum(streams) * side * side
        self.dense = (nn.Sequential(nn.Linear(flat, num_features), nn.ReLU(inplace=True)) if num_features
                      else nn.Identity())
        self.in_chans, self.image_size = in_chans, image_size
        self.num_features = num_features or flat
        self.freeze, self.freeze_epochs = freeze, freeze_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.dense(self.pool(x).flatten(1))


class TimmBackbone(nn.Module):
    """Any timm architecture as a per-frame feature extractor: (N, C, H, W) -> (N, num_features).

    The model is built with `num_classes=0` (its own pooling, no classifier); `num_features` is
    the width of what it then returns (timm's `head_hidden_size`). `in_chans` other than 3 use
    timm's adaptation of the pretrained first convolution (summed for 1 channel, repeated and
    rescaled for more). Weights:

    - `checkpoint`: a local file (`.safetensors`, or a state dict read with
      `torch.load(weights_only=True)`: a timm/torchvision state dict, a `{"state_dict": ...}` or
      `{"model": ...}` wrapper, or a mer_lightning `.ckpt` whose `backbone.model.*` are used);
    - `pretrained: true`: timm's default weights for `name`, from the local Hugging Face hub or
      torch hub cache only. Nothing is ever downloaded: missing weights are a MERError that says
      how to provide the file.

    `image_size` is passed to architectures with a fixed input size (ViT-style, positional
    embeddings resized by timm); `min_image_size` defaults to the model's total stride
    (typically 32: smaller inputs leave less than one cell in the last feature map).
    """

    def __init__(self, name: str = "resnet18", in_chans: int = 3, image_size: int | None = None,
                 pretrained: bool = False, checkpoint: str | None = None, freeze: bool = False,
                 freeze_epochs: int = 0, drop_rate: float = 0.0, drop_path_rate: float | None = None,
                 min_image_size: int | None = None, kwargs: dict[str, Any] | None = None):
        super().__init__()
        import timm

        check_timm_name(name)
        args: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans, "drop_rate": drop_rate, **(kwargs or {})}
        if drop_path_rate is not None:
            args["drop_path_rate"] = drop_path_rate
        cfg = pretrained_cfg(name)
        if image_size and cfg is not None and cfg.fixed_input_size:
            args.setdefault("img_size", image_size)
        state_dict, self.weights = None, "random init"
        if checkpoint:
            state_dict, self.weights = load_weights_file(checkpoint, f"model.backbone.checkpoint={checkpoint}"), str(checkpoint)
        elif pretrained:
            path = cached_pretrained_file(name)
            state_dict, self.weights = load_weights_file(path, f"cached weights {path}"), path
        try:
            if state_dict is None:
                self.model = timm.create_model(name, pretrained=False, **args)
            else:
                self.model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": state_dict},
                                               **args)
                self.model.pretrained_cfg.pop("state_dict", None)
        except (RuntimeError, KeyError, AssertionError, ValueError, TypeError) as err:
            if state_dict is None:
                raise MERError(f"timm could not build model.backbone.name={name} with {args} "
                               f"(model.backbone.* / model.backbone.kwargs): {err}") from None
            raise MERError(f"the weights in {self.weights} do not fit timm model {name} "
                           f"(in_chans={in_chans}): {' '.join(str(err).split())[:400]}") from None
        if state_dict is not None:
            classifier = (cfg.classifier if cfg is not None else None) or ()
            check_loaded(self.model, state_dict, name, self.weights, user_file=bool(checkpoint),
                          classifier=(classifier,) if isinstance(classifier, str) else tuple(classifier))
            log.info("%s: weights from %s", name, self.weights)
        self.name, self.in_chans, self.image_size = name, in_chans, image_size
        self.num_features = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        feature_info = getattr(self.model, "feature_info", None) or [{}]
        stride = feature_info[-1].get("reduction", 1) if isinstance(feature_info, list) else 1
        self.min_image_size = int(min_image_size if min_image_size is not None else stride)
        self.freeze, self.freeze_epochs = freeze, freeze_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        if y.ndim == 4:  # architectures whose num_classes=0 output is still a feature map
            y = y.mean(dim=(2, 3))
        elif y.ndim == 3:  # token sequences
            y = y.mean(dim=1)
        return y


# -- timm names and offline weights --------------------------------------------------------------
