"""Train-time augmentation: albumentations pipelines applied identically to every frame of a clip.

`data.augment` is a mapping (or a list) of albumentations transforms as Hydra `_target_` configs,
e.g. `conf/data/augment/default.yaml`; an entry set to null is left out, so one transform can be
switched off from the command line (`data.augment.brightness_contrast=null`). null / empty: no
augmentation. Only the training loader augments; validation and test never do.

albumentations 2.x applies one draw of random parameters to all images given as
`Compose(...)(images=array_of_T_HWC)`: a clip is flipped, shifted and brightened as a whole, so
the motion between its frames (the only signal of a micro-expression) is left intact.

With `data.input=flow` (or `flow_seq`) the channels are u, v and strain: a horizontal flip mirrors the field and
negates u (and a vertical flip negates v), which is done here; pixel-level transforms such as
brightness/contrast change flow values meaninglessly, so give flow inputs geometric ones only.

Randomness: each process seeds the pipeline from torch (`torch.initial_seed()`, which Lightning's
`seed_everything` fixes, or the DataLoader worker's seed), so runs are reproducible and workers do
not repeat each other's augmentations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mer_lightning.utils.errors import MERError


def build_augment(augment: Any):
    """An albumentations Compose from the `data.augment` config, or None when there is nothing to do."""
    if augment is None:
        return None
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(augment, (DictConfig, ListConfig)):
        augment = OmegaConf.to_container(augment, resolve=True)
    if isinstance(augment, (str, bytes)):
        raise MERError(f"data.augment={augment!r}: give albumentations transforms as `_target_` configs "
                       "(e.g. `data/augment=default`), or null for none")
    items = list(augment.items()) if isinstance(augment, Mapping) else list(enumerate(augment))
    if not items:
        return None
    import albumentations as A
    import hydra

    transforms = []
    for name, item in items:
        if item is None:
            continue
        if isinstance(item, (A.BasicTransform, A.BaseCompose)):
            transforms.append(item)
        elif isinstance(item, Mapping) and "_target_" in item:
            try:
                transforms.append(hydra.utils.instantiate(item))
            except Exception as err:
                raise MERError(f"data.augment.{name}: cannot build {item['_target_']} ({err})") from None
        else:
            raise MERError(f"data.augment.{name}={item!r} is not an albumentations transform config "
                           "(a mapping with `_target_: albumentations.<Transform>`)")
    if not transforms:
        return None
    return A.Compose(transforms, save_applied_params=True)


class ClipAugment:
    """Augment a clip (T, C, H, W) with the same random parameters for all T frames."""

    def __init__(self, compose, flow: bool = False):
        self.compose, self.flow = compose, flow
        self._seeded_with: int | None = None

    def seeded(self, seed: int) -> "ClipAugment":
        """A copy with a stream of its own, seeded as a fit seeded `seed` seeds this one (`seed_everything`,
        then the first clip), and never reseeded: a packed fold's augmentation (`runner.pack`)."""
        import copy

        twin = copy.deepcopy(self)
        twin.compose.set_random_seed(seed % 2**32)
        twin._seeded_with, twin._fixed = seed, True
        return twin

    def _seed(self) -> None:
        import torch

        if getattr(self, "_fixed", False):
            return
        info = torch.utils.data.get_worker_info()
        seed = info.seed if info is not None else torch.initial_seed()
        if seed != self._seeded_with:
            self.compose.set_random_seed(seed % 2**32)
            self._seeded_with = seed

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        self._seed()
        images = np.asarray(clip).transpose(0, 2, 3, 1)
        if images.dtype != np.uint8:
            images = images.astype(np.float32)
        result = self.compose(images=np.ascontiguousarray(images))
        out = np.asarray(result["images"])
        if out.ndim == 3:
            out = out[..., None]
        if self.flow:
            out = self._flip_flow(out, result.get("applied_transforms") or [])
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def _flip_flow(out: np.ndarray, applied: list) -> np.ndarray:
        """Mirroring a flow field negates the component along the mirror axis (1 - x after min-max)."""
        names = [t[0] if isinstance(t, (tuple, list)) else str(t) for t in applied]
        hflips = sum(n == "HorizontalFlip" for n in names)
        vflips = sum(n == "VerticalFlip" for n in names)
        out = out.copy()
        if hflips % 2:
            out[..., 0] = 1.0 - out[..., 0]
        if vflips % 2:
            out[..., 1] = 1.0 - out[..., 1]
        return out


def clip_augment(augment: Any, input: str = "frames") -> ClipAugment | None:
    compose = build_augment(augment)
    return ClipAugment(compose, flow=input in ("flow", "flow_seq")) if compose is not None else None
