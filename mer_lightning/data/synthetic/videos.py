"""Realistic synthetic long videos for spotting: the spec, the videos drawn from its seed, and the reader of
`data=synthetic_lv` (the default of `python -m mer_lightning.spot`).

A video is one subject (a photograph-based identity, as the clip datasets' `faces.py` makes them)
filmed for several seconds at the layout's frame rate, showing several micro-expressions (the
layout's lengths: 7-16 frames at 30 fps, 40-100 at 200 fps; 1-3 px) and macro-expressions (longer:
20-50 frames at 30 fps, 120-400 at 200 fps, with a plateau; 4-8 px), separated by neutral stretches
of 1-2.5 s, plus what makes spotting hard in real recordings and is never annotated:

- **blinks** (the upper lids closing and opening over 0.1-0.25 s, about 15 a minute, anywhere, also
  during an expression);
- **head drift and jitter** (a slow sway of a few pixels, and a fraction of a pixel every frame);
- **talking-like mouth motion** (bursts of 1-2 s of jaw and lip motion at 3-5 Hz in the neutral
  stretches, 1-2.5 px: as large as a micro-expression, at the mouth);
- light flicker, sensor noise and JPEG compression, as in the clip datasets.

Frames are rendered one at a time (`SynthVideo.frames()`), so writing a long video never holds it in
memory. The writers (`writers/cas2.py`, `samm_lv.py`, `casme3_lv.py`) write the frames and sheets in
each dataset's layout, quirks included; `read_synthetic_videos` generates a spec once (as
`ensure_synthetic` does for clips) and reads it back through that dataset's own reader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from mer_lightning.data.synthetic.clips import intensity_curve
from mer_lightning.data.synthetic.faces import (
    EMOTION_AUS,
    PHOTOS,
    Canvas,
    Identity,
    expression_field,
    make_identity,
    pixel_grid,
)
from mer_lightning.data.synthetic.layouts import VideoLayout, video_layout
from mer_lightning.utils.errors import MERError


@dataclass
class VideoSpec:
    """What to generate; the defaults make the embedded long videos of `python -m mer_lightning.spot`.

    `layout`: the long-video dataset imitated (`cas2`, `samm_lv`, `casme3_lv`); `micro` / `macro`: intervals
    of each type per video; `micro_frames` / `macro_frames`: their lengths in frames (empty: the
    layout's); `micro_motion` / `macro_motion`: peak displacement in pixels of the written frames;
    `gap_seconds`: the neutral time between two intervals; `blinks_per_minute`, `talking` (bursts per
    video), `talking_motion`, `head_motion` (the sway's size, px): the distractors; `frame_size`
    (empty: the layout's), `cropped` (write the face crops: CAS(ME)^2's `cropped/` release; other layouts
    write their full frames cropped to the face box).
    """

    layout: str = "cas2"
    subjects: int = 8
    videos_per_subject: int = 2
    micro: int = 3
    macro: int = 2
    micro_frames: tuple[int, ...] = ()
    macro_frames: tuple[int, ...] = ()
    micro_motion: tuple[float, float] = (1.0, 3.0)
    macro_motion: tuple[float, float] = (4.0, 8.0)
    gap_seconds: tuple[float, float] = (1.0, 2.5)
    blinks_per_minute: float = 15.0
    talking: int = 1
    talking_motion: tuple[float, float] = (1.0, 2.5)
    head_motion: float = 2.0
    frame_size: tuple[int, ...] = ()
    cropped: bool = False
    seed: int = 0
    photos: tuple[str, ...] = ()

    def __post_init__(self):
        self.info  # noqa: B018 - a MERError naming the known layouts
        unknown = sorted(set(self.photos) - set(PHOTOS))
        if unknown:
            raise MERError(f"data.reader.photos: unknown photograph(s) {unknown}; choose from {list(PHOTOS)}")
        for name in ("micro_frames", "macro_frames"):
            value = getattr(self, name)
            if value and (len(value) != 2 or not 1 <= value[0] <= value[1]):
                raise MERError(f"data.reader.{name}={list(value)}: give [min, max] frames, 1 <= min <= max")

    @property
    def info(self) -> VideoLayout:
        from mer_lightning.data.synthetic import writers  # noqa: F401 - registers every layout

        return video_layout(self.layout)

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.frame_size) or self.info.frame_size

    @property
    def lengths(self) -> dict[str, tuple[int, int]]:
        return {"micro": tuple(self.micro_frames) or self.info.micro_frames,
                "macro": tuple(self.macro_frames) or self.info.macro_frames}

    def fingerprint(self) -> dict:
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}
        return {**plain, "frame_size": list(self.size), "micro_frames": list(self.lengths["micro"]),
                "macro_frames": list(self.lengths["macro"]), "kind": "long_videos", "version": 1}

    def folder_name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()
        return f"{self.layout}-{digest[:8]}"


@dataclass
class SynthEvent:
    """One interval shown in a video: its type, emotion, action units and 1-based frame numbers."""

    type: str
    emotion: str
    aus: tuple[str, ...]
    first: int
    apex: int
    last: int
    amplitude: float

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclass
class SynthVideo:
    """One generated long video: what it shows (frames 1..n_frames) and how to render it lazily."""

    subject: int  # 1-based
    number: int  # 1-based within the subject
    n_frames: int
    events: list[SynthEvent]
    blinks: list[tuple[int, int]]
    talking: list[tuple[int, int]]
    identity: Identity = field(repr=False)
    layers: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)  # (field (S, S, 2), intensity per frame)
    head: np.ndarray = field(repr=False)  # (n_frames, 2) head offset in pixels
    seed: int = 0
    grayscale: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.identity.box

    def crop(self, frame: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        height, width = frame.shape[:2]
        return frame[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order (uint8 RGB (H, W, 3), or (H, W) grey), rendered one at a time."""
        rng = np.random.default_rng(self.seed)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        canvas = Canvas(self.identity)
        side = self.identity.face.shape[0]
        grid_x, grid_y = pixel_grid(side)
        for i in range(self.n_frames):
            map_x = grid_x - np.float32(self.head[i, 0])
            map_y = grid_y - np.float32(self.head[i, 1])
            for displacement, curve in self.layers:
                if curve[i] > 1e-4:
                    map_x = map_x - np.float32(curve[i]) * displacement[..., 0]
                    map_y = map_y - np.float32(curve[i]) * displacement[..., 1]
            yield canvas.frame(map_x, map_y, rng.uniform(0.99, 1.01), rng.integers(0, 64, 2), self.grayscale)


def plateau_curve(n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A macro-expression's intensity over its n frames: a smooth rise (20-35 %), a plateau, a smooth fall;
    and the apex (the plateau's first frame, 0-based)."""
    rise = max(1, int(round(n * rng.uniform(0.2, 0.35))))
    fall = max(1, int(round(n * rng.uniform(0.2, 0.35))))
    t = np.arange(n, dtype=np.float64)
    curve = np.ones(n)
    curve[:rise] = np.sin(np.pi / 2 * t[:rise] / rise) ** 2
    curve[n - fall:] = np.sin(np.pi / 2 * (n - 1 - t[n - fall:]) / fall) ** 2
    return curve, min(rise, n - 1)


def head_path(n: int, fps: float, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) head offsets in pixels: a slow sway (three sinusoids of 3-12 s periods, `amplitude` px in
    all) plus a jitter of 0.15 px per frame."""
    t = np.arange(n) / fps
    path = np.zeros((n, 2))
    for axis in range(2):
        weights = rng.dirichlet(np.ones(3)) * amplitude
        for w in weights:
            path[:, axis] += w * np.sin(2 * np.pi * t / rng.uniform(3, 12) + rng.uniform(0, 2 * np.pi))
    return path + rng.normal(0, 0.15, (n, 2))


def synth_videos(spec: VideoSpec) -> Iterator[SynthVideo]:
    """Every video of `spec`, subject by subject, drawn from its seed (rendered lazily)."""
    info, fps = spec.info, spec.fps
    rng = np.random.default_rng(spec.seed)
    photos = spec.photos or PHOTOS
    emotions = info.emotions
    for s in range(1, spec.subjects + 1):
        identity = make_identity(rng, photos[(s - 1) % len(photos)], spec.size)
        for v in range(1, spec.videos_per_subject + 1):
            yield plan_video(spec, rng, identity, s, v, emotions, fps, info.grayscale)


def plan_video(spec: VideoSpec, rng: np.random.Generator, identity: Identity, subject: int, number: int,
               emotions: Sequence[str], fps: float, grayscale: bool) -> SynthVideo:
    """Draw one video's timeline (intervals, blinks, talking, head path) and its motion layers."""
    kinds = ["micro"] * spec.micro + ["macro"] * spec.macro
    rng.shuffle(kinds)
    gaps = [int(round(g * fps)) for g in rng.uniform(*spec.gap_seconds, size=len(kinds) + 1)]
    events, layers, t = [], [], 1 + gaps[0]
    spans = []
    for i, kind in enumerate(kinds):
        low, high = spec.lengths[kind]
        n = int(rng.integers(low, high + 1))
        emotion = emotions[int(rng.integers(len(emotions)))]
        choices = EMOTION_AUS.get(emotion.lower(), ((),))
        aus = choices[int(rng.integers(len(choices)))]
        amplitude = float(rng.uniform(*(spec.micro_motion if kind == "micro" else spec.macro_motion)))
        if kind == "micro":
            apex_i = int(rng.integers(n // 3, 2 * n // 3 + 1))
            curve = intensity_curve(n, apex_i)
        else:
            curve, apex_i = plateau_curve(n, rng)
        events.append(SynthEvent(kind, emotion, tuple(aus), t, t + apex_i, t + n - 1, amplitude))
        spans.append((t, curve))
        t += n + gaps[i + 1]
    n_frames = t - 1
    for event, (first, curve) in zip(events, spans):
        dense = np.zeros(n_frames)
        dense[first - 1:first - 1 + len(curve)] = curve
        layers.append((expression_field(identity, event.aus, event.amplitude), dense))
    # blinks: anywhere, also during an expression
    blinks = []
    count = int(rng.poisson(spec.blinks_per_minute * n_frames / fps / 60.0))
    blink_layer = np.zeros(n_frames)
    for _ in range(count):
        n = max(3, int(round(rng.uniform(0.1, 0.25) * fps)))
        first = int(rng.integers(1, max(2, n_frames - n)))
        blink_layer[first - 1:first - 1 + n] = np.maximum(blink_layer[first - 1:first - 1 + n],
                                                          intensity_curve(n, n // 2)[: n_frames - first + 1])
        blinks.append((first, first + n - 1))
    if blinks:
        eye = float(np.linalg.norm(identity.landmarks[37] - identity.landmarks[41]))
        layers.append((expression_field(identity, ("45",), max(eye, 1.0) * rng.uniform(0.8, 1.1)), blink_layer))
    # talking: bursts of jaw and lip motion inside the neutral stretches
    talking = []
    talk_layer = np.zeros(n_frames)
    free = [(1, events[0].first - 1)] if events else [(1, n_frames)]
    free += [(a.last + 1, b.first - 1) for a, b in zip(events, events[1:])]
    free += [(events[-1].last + 1, n_frames)] if events else []
    margin = int(round(0.2 * fps))
    for _ in range(spec.talking):
        room = [(a + margin, b - margin) for a, b in free if b - a - 2 * margin >= int(0.5 * fps)]
        if not room:
            break
        a, b = room[int(rng.integers(len(room)))]
        n = min(int(round(rng.uniform(1.0, 2.0) * fps)), b - a + 1)
        first = int(rng.integers(a, b - n + 2))
        t = np.arange(n) / fps
        envelope = np.clip(np.sin(np.pi * np.arange(n) / max(n - 1, 1)), 0, None) ** 0.5
        talk_layer[first - 1:first - 1 + n] = envelope * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(3, 5) * t))
        talking.append((first, first + n - 1))
        free = [(x, y) for x, y in free if not (x <= first <= y)] + [(x, first - 1) for x, y in free if x <= first <= y] \
            + [(first + n, y) for x, y in free if x <= first <= y]
    if talking:
        layers.append((expression_field(identity, ("26",), rng.uniform(*spec.talking_motion)), talk_layer))
    scale = spec.size[1] / 480.0
    head = head_path(n_frames, fps, spec.head_motion * scale, rng)
    return SynthVideo(subject, number, n_frames, events, sorted(blinks), sorted(talking), identity, layers, head,
                      int(rng.integers(2**31)), grayscale)


def write_video_frames(folder: Path, video: SynthVideo, name, *, crop: bool = False, grey: bool = False,
                       skip: Sequence[int] = ()) -> None:
    """Write `video`'s frames to `folder` as `name(<frame number from 1>)` (JPEG quality 95), one at a time;
    `crop` keeps the face box, `grey` writes colour frames grey, `skip`: frame numbers left out (gaps)."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = set(skip)
    for number, frame in enumerate(video.frames(), start=1):
        if number in missing:
            continue
        image = video.crop(frame) if crop else frame
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / name(number)), image, [cv2.IMWRITE_JPEG_QUALITY, 95])


def read_synthetic_videos(root, layout: str = "cas2", subjects: int = 8, videos_per_subject: int = 2, micro: int = 3,
                          macro: int = 2, micro_frames: Sequence[int] = (), macro_frames: Sequence[int] = (),
                          micro_motion: Sequence[float] = (1.0, 3.0), macro_motion: Sequence[float] = (4.0, 8.0),
                          gap_seconds: Sequence[float] = (1.0, 2.5), blinks_per_minute: float = 15.0,
                          talking: int = 1, talking_motion: Sequence[float] = (1.0, 2.5), head_motion: float = 2.0,
                          frame_size: Sequence[int] = (), cropped: bool = False, seed: int = 0,
                          photos: Sequence[str] = ()):
    """The reader of `data=synthetic_lv`: generate the long videos on first use (`VideoSpec`: the same
    options) in their own folder `root/<layout>-<spec hash>`, then read them through the reader of the
    long-video dataset the layout imitates; videos are marked `dataset="synthetic_lv"` (their `source`
    stays the imitated dataset, so its label aliases apply)."""
    from mer_lightning.data.readers import dataset
    from mer_lightning.data.synthetic.generate import _synthetic_fingerprint, ensure_synthetic

    spec = VideoSpec(layout=layout, subjects=subjects, videos_per_subject=videos_per_subject, micro=micro, macro=macro,
                     micro_frames=tuple(micro_frames), macro_frames=tuple(macro_frames),
                     micro_motion=tuple(micro_motion), macro_motion=tuple(macro_motion),
                     gap_seconds=tuple(gap_seconds), blinks_per_minute=blinks_per_minute, talking=talking,
                     talking_motion=tuple(talking_motion), head_motion=head_motion, frame_size=tuple(frame_size),
                     cropped=cropped, seed=seed, photos=tuple(photos))
    root = Path(root)
    if _synthetic_fingerprint(root) != spec.fingerprint():
        root = root / spec.folder_name()
    ensure_synthetic(root, spec, write=spec.info.write)
    table = dataset(layout, "data.reader.layout").reader(root)
    table.videos = [v.with_(dataset="synthetic_lv", source=v.origin) for v in table.videos]
    return table
