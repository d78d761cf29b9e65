"""Motion inputs from the onset and apex frames: dense optical flow, optical strain, difference.

- `dense_flow(onset, apex)`: per-pixel displacement (u, v) in pixels from the onset to the apex:
  `tvl1` (TV-L1, the field's standard since STSTNet / Off-ApexNet, scikit-image's
  `registration.optical_flow_tvl1`), `farneback` or `dis` (OpenCV's main build). OpenCV's own
  TV-L1 lives in opencv-contrib's `cv2.optflow`, whose wheel clashes with the headless OpenCV that
  albumentations installs, so scikit-image's maintained implementation is used.
- `optical_strain(flow)`: the pinned optical-strain formula of the MER literature (Liong et al.;
  STSTNet), the magnitude of the infinitesimal strain tensor of the displacement field,
  e = sqrt(exx^2 + eyy^2 + exy^2 + eyx^2) with exx = du/dx, eyy = dv/dy, exy = eyx = (du/dy + dv/dx) / 2,
  i.e. sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2); derivatives by central differences (`np.gradient`,
  one-sided at the border), in pixels of the face it was measured on. Large where the skin
  stretches or compresses, zero under a rigid translation of the whole face.
- `diff_input(onset, apex)`: apex - onset mapped to [0, 1] (0.5 = no change).

How flow is scaled into [0, 1] for a network (per clip, jointly over a sequence's steps) is
`preprocessing.normalise_flow`'s job; `minmax` below is one of its choices.
"""

from __future__ import annotations

import cv2
import numpy as np

from mer_lightning.utils.errors import MERError

FLOW_METHODS = ("farneback", "dis", "tvl1")
# bump when the computation changes: cached flow inputs are rebuilt
FLOW_VERSION = 2


def _gray(image: np.ndarray) -> np.ndarray:
    """HxW uint8 from HxW, HxWx1 or HxWx3 (RGB), or from (1|3, H, W)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    elif image.ndim == 3:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def dense_flow(onset: np.ndarray, apex: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Displacement (u, v) in pixels of each onset pixel at the apex: float32 (H, W, 2)."""
    a, b = _gray(onset), _gray(apex)
    if a.shape != b.shape:
        raise ValueError(f"onset {a.shape} and apex {b.shape} frames differ in size")
    if method == "farneback":
        # pyramid scale 0.5, 3 levels, 15 px window, 3 iterations, polynomial of 5 px with sigma 1.2:
        # OpenCV's documented defaults for faces of 64-256 px
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(a, b, None)
    if method == "tvl1":
        from skimage.registration import optical_flow_tvl1

        # scikit-image's defaults (attachment 15, tightness 0.3, 5 warps, 10 iterations); returns (v, u)
        v, u = optical_flow_tvl1(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0, dtype=np.float32)
        return np.stack([u, v], axis=-1)
    raise MERError(f"unknown data.flow={method}; choose one of {FLOW_METHODS}")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2) of a (H, W, 2) flow field: float32 (H, W)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    uy, ux = np.gradient(u)  # np.gradient returns d/drow (y) first, then d/dcol (x)
    vy, vx = np.gradient(v)
    return np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2).astype(np.float32)


def minmax(channel: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant channel becomes all zeros."""
    channel = channel.astype(np.float32)
    low, high = float(channel.min()), float(channel.max())
    if high - low < 1e-12:
        return np.zeros_like(channel)
    return (channel - low) / (high - low)


def diff_input(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """(apex - onset) / 510 + 0.5 in [0, 1], same shape as the inputs: float32.

    With the usual mean = std = 0.5 the network then sees (apex - onset) / 255 in [-1, 1].
    """
    return (apex.astype(np.float32) - onset.astype(np.float32)) / 510.0 + 0.5
