"""What the synthetic datasets show, independent of any layout: the spec, the clips drawn from its seed
(motion and timing), rendered by `faces.py` and written by each layout's writer.

The same spec draws the same clips for any layout (a layout changes only the default emotions,
frame size and colour), and the same clips in the same order on every run: the RNG draws are part of
what the spec's fingerprint stands for, so any change to them must change `version`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from mer_lightning.data.synthetic.faces import (
    EMOTION_AUS,
    PHOTOS,
    expression_field,
    make_identity,
    render_clip,
)
from mer_lightning.data.synthetic.layouts import layout
from mer_lightning.utils.errors import MERError


def intensity_curve(n: int, apex: int) -> np.ndarray:
    """0 at the onset (index 0), 1 at the apex, back towards 0 at the offset (index n-1)."""
    t = np.arange(n, dtype=np.float64)
    rise = np.clip(t / max(apex, 1), 0, 1)
    fall = np.clip((n - 1 - t) / max(n - 1 - apex, 1), 0, 1)
    curve = np.where(t <= apex, rise, fall)
    return np.sin(curve * np.pi / 2) ** 2


@dataclass
class SyntheticSpec:
    """What to generate. The defaults make the embedded dataset of `data=synthetic`.

    `layout` picks the real dataset whose files are imitated (`layouts.layout_names()`: casme2, samm,
    smic, fer2013, ...); `cropped` (CASME II only) writes the `Cropped` release (face crops) instead of
    the raw full frames; `emotions` (empty: the layout's usual ones) are written as that dataset spells
    them. `motion` is the range of the expression's peak displacement in pixels of the written frames;
    `frame_size` (width, height; empty: the layout's own) sets the frames' size.
    `photos` (empty: all of `PHOTOS`, taken in turn) are the photographs identities are drawn from:
    one photograph gives a set whose every subject is a variant of one face.
    """

    subjects: int = 10
    clips_per_class: int = 3
    emotions: tuple[str, ...] = ()
    min_frames: int = 10
    max_frames: int = 18
    motion: tuple[float, float] = (1.0, 3.0)
    frame_size: tuple[int, ...] = ()
    cropped: bool = False
    seed: int = 0
    layout: str = "casme2"
    photos: tuple[str, ...] = ()

    def __post_init__(self):
        layout(self.layout)  # a MERError naming the known layouts
        unknown = sorted(set(self.photos) - set(PHOTOS))
        if unknown:
            raise MERError(f"data.reader.photos: unknown photograph(s) {unknown}; choose from {list(PHOTOS)}")

    def folder_name(self) -> str:
        """`<layout>-<8 hex digits of the fingerprint>`: one folder per generated dataset."""
        digest = hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()
        return f"{self.layout}-{digest[:8]}"

    def fingerprint(self) -> dict:
        return {"subjects": self.subjects, "clips_per_class": self.clips_per_class,
                "emotions": list(self.emotion_names), "min_frames": self.min_frames,
                "max_frames": self.max_frames, "motion": list(self.motion), "frame_size": list(self.size),
                "cropped": self.cropped, "seed": self.seed, "layout": self.layout, "version": 6,
                **({"photos": list(self.photos)} if self.photos else {})}

    @property
    def emotion_names(self) -> tuple[str, ...]:
        return tuple(self.emotions) or layout(self.layout).emotions

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.frame_size) or layout(self.layout).frame_size


@dataclass
class SynthClip:
    """One generated clip: who, which expression, its absolute frame numbers, its frames and face box."""

    subject: int  # 1-based subject number
    number: int  # 1-based clip number within the subject
    suffix: int  # a small number for clip names (CASME II's EPxx_yy, SAMM's inducement code)
    emotion: str
    aus: tuple[str, ...]  # the action units shown
    first: int  # absolute number of the onset frame
    apex: int  # absolute number of the apex frame
    frames: list[np.ndarray]  # full frames, uint8 RGB (H, W, 3) or grayscale (H, W)
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) around the subject's face, the same all clip

    @property
    def last(self) -> int:
        return self.first + len(self.frames) - 1

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The face box of a frame (what a cropped release keeps)."""
        x0, y0, x1, y1 = self.box
        height, width = frame.shape[:2]
        return frame[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]

    def placed(self, first: int, min_frames: int = 0) -> SynthClip:
        """This clip moved to start at frame `first`, its last frame repeated up to `min_frames` frames."""
        frames = self.frames + [self.frames[-1]] * max(0, min_frames - len(self.frames))
        return replace(self, first=first, apex=first + (self.apex - self.first), frames=frames)


def synth_clips(spec: SyntheticSpec, first_frame: tuple[int, int] = (1, 400)) -> Iterator[SynthClip]:
    """Every clip of `spec`, subject by subject, drawn from its seed (the same clips for any layout)."""
    rng = np.random.default_rng(spec.seed)
    emotions = spec.emotion_names
    grayscale = layout(spec.layout).grayscale
    photos = spec.photos or PHOTOS
    for s in range(1, spec.subjects + 1):
        identity = make_identity(rng, photos[(s - 1) % len(photos)], spec.size)
        plan = [e for e in emotions for _ in range(spec.clips_per_class)]
        rng.shuffle(plan)
        for k, emotion in enumerate(plan, start=1):
            suffix = int(rng.integers(1, 9))
            n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
            first = int(rng.integers(*first_frame))
            apex_i = int(rng.integers(n // 3, 2 * n // 3 + 1))
            choices = EMOTION_AUS.get(emotion.lower(), ((),))
            aus = choices[int(rng.integers(len(choices)))]
            field = expression_field(identity, aus, rng.uniform(*spec.motion))
            frames = render_clip(identity, field, intensity_curve(n, apex_i), rng, grayscale=grayscale)
            yield SynthClip(s, k, suffix, emotion, aus, first, first + apex_i, frames, identity.box)
