"""Offline-safe weights for timm backbones: timm's names checked, pretrained files found in the local
Hugging Face / torch hub cache only (never downloaded), checkpoint files read and matched to a model."""

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


def pretrained_cfg(name: str):
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

    cfg = pretrained_cfg(name)
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


def check_loaded(model: nn.Module, state_dict: dict[str, torch.Tensor], name: str, source: str,
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
