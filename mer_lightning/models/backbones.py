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

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

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

    def __init__(self, in_chans: int = 1, image_size: int = 64, channels: tuple[int, ...] = (16, 32, 64),
                 num_features: int = 128, dropout: float = 0.2, pool: int = 0, freeze: bool = False,
                 freeze_epochs: int = 0, **_):
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
                 freeze: bool = False, freeze_epochs: int = 0, **_):
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
                 min_image_size: int | None = None, kwargs: dict[str, Any] | None = None, **_):
        super().__init__()
        import timm

        check_timm_name(name)
        args: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans, "drop_rate": drop_rate, **(kwargs or {})}
        if drop_path_rate is not None:
            args["drop_path_rate"] = drop_path_rate
        cfg = _pretrained_cfg(name)
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
            _check_loaded(self.model, state_dict, name, self.weights, user_file=bool(checkpoint),
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

def check_timm_name(name: str) -> None:
    """A MERError naming close matches when `name` is not a timm architecture."""
    import timm

    if isinstance(name, str) and ":" not in name and timm.is_model(name):
        return
    arch = str(name).split(".")[0].split(":")[-1].split("/")[-1]
    names = timm.list_models()
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.6)
    pattern = timm.list_models(f"*{arch}*")
    if not close and not pattern:
        stem = re.match(r"[A-Za-z]+", arch)
        family = timm.list_models(f"*{stem.group(0)}*") if stem else []
        pattern = difflib.get_close_matches(arch, family, n=5, cutoff=0.0)
    suggestions = list(dict.fromkeys(close + pattern))[:8]
    hint = f" Close matches: {', '.join(suggestions)}." if suggestions else ""
    raise MERError(f"model.backbone.name={name} is not a timm model.{hint} List them with "
                   f"python -c \"import timm; print(timm.list_models('*{arch[:6]}*'))\"")


def _pretrained_cfg(name: str):
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name)
    except (RuntimeError, KeyError, ValueError):
        return None


def cached_pretrained_file(name: str) -> str:
    """The local file of timm's default pretrained weights for `name`, or a MERError saying how to get it.

    Looks in the Hugging Face hub cache (`huggingface_hub.try_to_load_from_cache`, no network)
    and in torch hub's checkpoint folder (where timm keeps weights fetched by URL).
    """
    import timm

    cfg = _pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        tags = timm.list_pretrained(f"{name.split('.')[0]}.*")[:8]
        have = f" Pretrained tags for it: {', '.join(tags)}." if tags else " timm has no pretrained weights for it."
        raise MERError(f"model.backbone.pretrained=true: no pretrained config for timm model {name}.{have} "
                       "Use one of those names, model.backbone.checkpoint=<file>, or model.backbone.pretrained=false.")
    looked, download = [], ""
    if cfg.file and Path(cfg.file).is_file():
        return str(cfg.file)
    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        wanted = cfg.hf_hub_filename or "pytorch_model.bin"
        candidates = ([wanted[:-4] + ".safetensors"] if wanted.endswith(".bin") else []) + [wanted]
        if wanted == "pytorch_model.bin":
            candidates = ["model.safetensors", "pytorch_model.bin"]
        for filename in candidates:
            path = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(path, str) and os.path.isfile(path):
                return path
        looked.append(f"{repo} ({' or '.join(candidates)}) in the Hugging Face cache {constants.HF_HUB_CACHE}")
        download = f"https://huggingface.co/{repo}/resolve/{revision or 'main'}/{candidates[0]}"
    if cfg.url and not cfg.url.endswith(".npz"):
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(cfg.url).path))
        if os.path.isfile(path):
            return path
        looked.append(path)
        download = download or cfg.url
    raise MERError(
        f"model.backbone.pretrained=true: the weights of timm model {name} are not on this machine "
        f"(looked for {'; '.join(looked)}) and training never downloads. Either download {download} and pass "
        f"model.backbone.checkpoint=/path/to/{os.path.basename(urlparse(download).path)}, or fill the cache once "
        f"on a machine with network (python -c \"import timm; timm.create_model('{name}', pretrained=True)\") "
        "and copy ~/.cache/huggingface here, or train from scratch with model.backbone.pretrained=false.")


def load_weights_file(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or torch.load(weights_only=True) (no pickled code)."""
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise MERError(f"{what}: no such file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise MERError(f"{what}: cannot be read as weights ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
                       "Give a .safetensors file or a state dict saved with torch.save(model.state_dict(), path) "
                       "(loaded with torch.load(weights_only=True): no pickled code).") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise MERError(f"{what}: holds a {type(obj).__name__}, not a state dict of tensors")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    ours = {k[len("backbone.model."):]: v for k, v in tensors.items() if k.startswith("backbone.model.")}
    tensors = ours or tensors
    for prefix in ("module.", "_orig_mod.", "model."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    if not tensors:
        raise MERError(f"{what}: holds no tensors")
    return tensors


def _check_loaded(model: nn.Module, state_dict: dict[str, torch.Tensor], name: str, source: str,
                  user_file: bool, classifier: tuple[str, ...] = ()) -> None:
    """Refuse weights of another architecture (timm loads adapted weights non-strictly).

    Nothing in common is always an error; for a user's file, tensors the model does not have
    (other than the classifier's, which num_classes=0 drops) are one too (e.g. resnet34 weights
    for resnet18). Tensors the file lacks are left at random init, with a warning.
    """
    own = model.state_dict()
    keys = [k for k in own if not k.endswith("num_batches_tracked")]
    missing = [k for k in keys if k not in state_dict]
    if len(missing) == len(keys):
        raise MERError(f"the weights in {source} share no tensor names with timm model {name} "
                       f"(model has e.g. {keys[:2]}, the file e.g. {list(state_dict)[:2]}): "
                       "is it a checkpoint of another architecture?")
    extra = [k for k in state_dict if k not in own and not k.startswith(tuple(f"{c}." for c in classifier))]
    if user_file and extra:
        raise MERError(f"the weights in {source} have {len(extra)} tensors that timm model {name} does not have "
                       f"(e.g. {extra[:3]}): are they weights of another architecture?")
    if missing:
        log.warning("%s: %d of %d tensors were not in %s (left at random init), e.g. %s",
                    name, len(missing), len(keys), source, missing[:3])
