"""A small synthetic micro-expression dataset, written in the real datasets' on-disk layouts.

Each subject has its own face (shape, skin and background tone, feature positions, mouth
curvature) and these identities differ far more than the expressions do: an expression is a
displacement of a few pixels of the brows or mouth corners that rises from the onset to the
apex and fades by the offset. A single frame therefore says little about the class; the motion
between frames says it all. That makes the data a fair smoke test for temporal models and for
subject-independent evaluation, and it is generated in seconds, offline, from a seed.

The default tree follows CASME II's cropped release (`Cropped/sub01/EP01_01/reg_img46.jpg` plus
the coding sheet `CASME2-coding-20140508.xlsx`), so `data=synthetic` runs through the same reader
as `data=casme2`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CANVAS = 128
SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel feature positions
# Expressions as (region, dx, dy) displacements at the apex, in canvas pixels.
EXPRESSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "happiness": {"mouth_corners": (1.5, -4.0)},
    "surprise": {"brows": (0.0, -4.0)},
    "disgust": {"brows": (0.0, 3.5), "brows_inner": (2.0, 0.0)},
    "repression": {"mouth_corners": (-1.5, 2.5)},
}
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
CASME2_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
AUS = {"happiness": "12", "surprise": "1+2", "disgust": "4+9", "repression": "15"}


@dataclass(frozen=True)
class Face:
    """A subject's identity: what stays fixed across their clips."""

    cx: float
    cy: float
    rx: float
    ry: float
    skin: float
    background: float
    eye_dx: float
    eye_y: float
    brow_gap: float
    brow_thickness: int
    mouth_y: float
    mouth_half_width: float
    mouth_curve: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Face":
        scale = rng.uniform(0.85, 1.1)
        return cls(
            cx=CANVAS / 2 + rng.uniform(-6, 6),
            cy=CANVAS / 2 + 4 + rng.uniform(-6, 6),
            rx=42 * scale,
            ry=52 * scale,
            skin=rng.uniform(120, 210),
            background=rng.uniform(20, 90),
            eye_dx=rng.uniform(14, 20) * scale,
            eye_y=rng.uniform(-16, -8) * scale,
            brow_gap=rng.uniform(9.5, 12.5),
            brow_thickness=int(rng.integers(2, 5)),
            mouth_y=rng.uniform(20, 28) * scale,
            mouth_half_width=rng.uniform(10, 17) * scale,
            mouth_curve=rng.uniform(-2, 2),
        )


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * (1 << SHIFT))), int(round(y * (1 << SHIFT)))


def render(face: Face, expression: str | None, intensity: float, jitter: tuple[float, float],
           rng: np.random.Generator) -> np.ndarray:
    """One grayscale frame (uint8, CANVAS x CANVAS) of `face` showing `expression` at `intensity`."""
    moves = EXPRESSIONS.get(expression or "", {})

    def move(region: str) -> tuple[float, float]:
        dx, dy = moves.get(region, (0.0, 0.0))
        return dx * intensity, dy * intensity

    ox, oy = face.cx + jitter[0], face.cy + jitter[1]
    img = np.full((CANVAS, CANVAS), face.background, np.float32)
    cv2.ellipse(img, _pt(ox, oy), _pt(face.rx, face.ry), 0, 0, 360, face.skin, -1, cv2.LINE_AA, SHIFT)
    dark = face.skin * 0.25
    # eyes
    for side in (-1, 1):
        cv2.ellipse(img, _pt(ox + side * face.eye_dx, oy + face.eye_y), _pt(5.5, 3.2), 0, 0, 360, dark, -1, cv2.LINE_AA, SHIFT)
    # brows: raised/lowered together, optionally pulled towards the midline
    bdx, bdy = move("brows")
    idx, _ = move("brows_inner")
    for side in (-1, 1):
        y = oy + face.eye_y - face.brow_gap + bdy
        inner = (ox + side * (face.eye_dx - 7 - idx), y + 0.5 * idx)
        outer = (ox + side * (face.eye_dx + 8), y - 1.5)
        cv2.line(img, _pt(*inner), _pt(*outer), dark, face.brow_thickness, cv2.LINE_AA, SHIFT)
    # nose
    cv2.line(img, _pt(ox, oy + face.eye_y + 6), _pt(ox + 1, oy + face.mouth_y - 10), face.skin * 0.7, 2, cv2.LINE_AA, SHIFT)
    # mouth: corners move, the centre stays
    cdx, cdy = move("mouth_corners")
    my = oy + face.mouth_y
    left = (ox - face.mouth_half_width - cdx, my - face.mouth_curve + cdy)
    right = (ox + face.mouth_half_width + cdx, my - face.mouth_curve + cdy)
    pts = np.array([_pt(*left), _pt(ox, my), _pt(*right)], np.int32)
    cv2.polylines(img, [pts], False, dark, 2, cv2.LINE_AA, SHIFT)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def intensity_curve(n: int, apex: int) -> np.ndarray:
    """0 at the onset (index 0), 1 at the apex, back towards 0 at the offset (index n-1)."""
    t = np.arange(n, dtype=np.float64)
    rise = np.clip(t / max(apex, 1), 0, 1)
    fall = np.clip((n - 1 - t) / max(n - 1 - apex, 1), 0, 1)
    curve = np.where(t <= apex, rise, fall)
    return np.sin(curve * np.pi / 2) ** 2


@dataclass
class SyntheticSpec:
    """What to generate. The defaults make the embedded dataset of `data=synthetic`."""

    subjects: int = 16
    clips_per_class: int = 4
    emotions: tuple[str, ...] = ("happiness", "surprise", "disgust")
    min_frames: int = 10
    max_frames: int = 18
    # scale of the expression displacements (3.0: up to about 12 px on the 128 px canvas, 6 px at 64 px)
    motion: float = 3.0
    seed: int = 0

    def fingerprint(self) -> dict:
        return {"subjects": self.subjects, "clips_per_class": self.clips_per_class,
                "emotions": list(self.emotions), "min_frames": self.min_frames,
                "max_frames": self.max_frames, "motion": self.motion, "seed": self.seed, "version": 2}


def write_casme2_like(root: Path, spec: SyntheticSpec, cropped: bool = True) -> Path:
    """Write a CASME II-shaped tree under `root` and return the root.

    Layout: `Cropped/subNN/EPxx_yy/reg_img<N>.jpg` (or `CASME2_RAW_selected/.../img<N>.jpg` when
    `cropped` is false) with absolute frame numbers that do not start at 1, and the coding sheet
    `CASME2-coding-20140508.xlsx` whose `Subject` column holds integers.
    """
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    folder, prefix = ("Cropped", "reg_img") if cropped else ("CASME2_RAW_selected", "img")
    rows = []
    for s in range(1, spec.subjects + 1):
        face = Face.random(rng)
        plan = [e for e in spec.emotions for _ in range(spec.clips_per_class)]
        rng.shuffle(plan)
        for k, emotion in enumerate(plan, start=1):
            clip = f"EP{k:02d}_{int(rng.integers(1, 9)):02d}"
            n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
            first = int(rng.integers(1, 400))
            apex_i = int(rng.integers(n // 3, 2 * n // 3 + 1))
            curve = intensity_curve(n, apex_i)
            gain = spec.motion * rng.uniform(0.8, 1.2)
            clip_dir = root / folder / f"sub{s:02d}" / clip
            clip_dir.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                jitter = tuple(rng.normal(0, 0.4, 2))
                frame = render(face, emotion, gain * curve[i], jitter, rng)
                cv2.imwrite(str(clip_dir / f"{prefix}{first + i}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows.append([s, clip, first, first + apex_i, first + n - 1, AUS.get(emotion, ""), emotion])
    pd.DataFrame(rows, columns=CASME2_COLUMNS).to_excel(root / CASME2_SHEET, index=False)
    return root


def ensure_synthetic(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Generate the embedded dataset under `root` unless an identical one is already there."""
    root = Path(root)
    spec = spec or SyntheticSpec()
    marker = root / "synthetic.json"
    if marker.exists() and json.loads(marker.read_text()) == spec.fingerprint():
        return root
    log.info("Generating the synthetic dataset in %s (seed %d) ...", root, spec.seed)
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_casme2_like(tmp, spec)
    (tmp / "synthetic.json").write_text(json.dumps(spec.fingerprint()))
    if root.exists():
        import shutil

        shutil.rmtree(root)
    tmp.rename(root)
    return root
