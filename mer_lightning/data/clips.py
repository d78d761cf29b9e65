"""Frame selection (onset..offset -> T frames, apex, onset+apex) and decoding of one frame.

`frame_plan` says which frames (and blend weights) make up the T time steps (decoded, cropped and
turned into inputs by `preprocessing.py`). Clips shorter than T are temporally interpolated (a
linear blend of the two nearest frames), never padded with repeats of garbage.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mer_lightning.data.samples import Sample
from mer_lightning.utils.errors import MERError

FRAME_MODES = ("uniform", "apex", "onset_apex")


class BadFrame(Exception):
    """A frame that cannot be decoded (missing, truncated, not an image)."""


def frames_for(mode: str, num_frames: int) -> int:
    """How many time steps a frame mode produces."""
    if mode not in FRAME_MODES:
        raise MERError(f"unknown data.frames={mode}; choose one of {FRAME_MODES}")
    return {"apex": 1, "onset_apex": 2}.get(mode, num_frames)


def frame_plan(sample: Sample, mode: str, num_frames: int) -> list[tuple[int, int, float]]:
    """For each time step: (index a, index b, weight of b) into `sample.frames`.

    `uniform` spaces T points evenly from onset to offset (T=1 takes the apex), `apex` is the
    apex frame alone, `onset_apex` the onset then the apex.
    """
    numbers = list(sample.frame_numbers) or list(range(len(sample.frames)))
    if len(numbers) <= 1:
        return [(0, 0, 0.0)] * frames_for(mode, num_frames)

    def at(frame_number: float) -> tuple[int, int, float]:
        pos = float(np.interp(frame_number, numbers, np.arange(len(numbers))))
        a = int(np.floor(pos))
        b = min(a + 1, len(numbers) - 1)
        return a, b, pos - a

    if mode == "apex" or (mode == "uniform" and num_frames == 1):
        return [at(sample.apex)]
    if mode == "onset_apex":
        return [at(sample.onset), at(sample.apex)]
    frames_for(mode, num_frames)
    return [at(t) for t in np.linspace(sample.onset, sample.offset, num_frames)]


def read_gray_or_color(path: Path, channels: int) -> np.ndarray:
    """Decode one frame as HxW (channels=1) or HxWx3 RGB; BadFrame if it cannot be decoded."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, flag) if data is not None and data.size else None
    if image is None:
        raise BadFrame(f"cannot decode frame {path}")
    if truncated_jpeg(data[:2].tobytes(), data[-2:].tobytes()):
        raise BadFrame(f"truncated JPEG {path}")
    return image if channels == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def truncated_jpeg(head: bytes, tail: bytes) -> bool:
    """A JPEG (first bytes FF D8) must end with the EOI marker (FF D9); OpenCV silently decodes truncated ones."""
    return head[:2] == b"\xff\xd8" and tail[-2:] != b"\xff\xd9"
