"""A small synthetic micro-expression dataset, written in the real datasets' on-disk layouts.

Each subject has its own face (shape, skin and background tone, feature positions, mouth
curvature) and these identities differ far more than the expressions do: an expression is a
displacement of a few pixels of the brows or mouth corners that rises from the onset to the
apex and fades by the offset. A single frame therefore says little about the class; the motion
between frames says it all. That makes the data a fair smoke test for temporal models and for
subject-independent evaluation, and it is generated in seconds, offline, from a seed.

Writers, one per real layout (`../shared/formats`), quirks included, so that every reader is
tested on files shaped like the real ones:

- `write_casme2_like`: `Cropped/sub01/EP01_01/reg_img46.jpg` + `CASME2-coding-20140508.xlsx` with
  integer subjects, two blank-headed columns and a '/' apex cell. The embedded default
  (`data=synthetic`) is this tree, read through the same reader as `data=casme2`.
- `write_samm_like`: `SAMM/006/006_1_2/006_05562.jpg` + `SAMM_Micro_FACS_Codes_v2.xlsx` whose header
  is on row 14 below free text, integer subjects with gaps, `Other` and once `others`.
- `write_smic_like`: `HS/s1/micro/negative/s1_ne_01/image046811.bmp`, no sheet.
- `write_fer2013_like`: `fer2013.csv` (emotion, pixels, Usage) with one image duplicated across
  parts, or with `folders=True` the folder release `train/<class>/*.jpg`, `test/<class>/*.jpg`.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd

from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

CANVAS = 128
SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel feature positions
# Expressions as (region, dx, dy) displacements at the apex, in canvas pixels.
EXPRESSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "happiness": {"mouth_corners": (1.5, -4.0)},
    "surprise": {"brows": (0.0, -4.0)},
    "disgust": {"brows": (0.0, 3.5), "brows_inner": (2.0, 0.0)},
    "repression": {"mouth_corners": (-1.5, 2.5)},
    "anger": {"brows": (0.0, 3.0), "brows_inner": (3.0, 0.0)},
    "contempt": {"mouth_corners": (2.5, -1.0)},
    "sadness": {"mouth_corners": (0.5, 4.0), "brows_inner": (-2.0, 0.0)},
    "fear": {"brows": (0.0, -2.5), "mouth_corners": (-2.0, 0.0)},
    "neutral": {},
}
# other datasets' names for the same movements
EXPRESSIONS.update(other=EXPRESSIONS["repression"], others=EXPRESSIONS["repression"], angry=EXPRESSIONS["anger"],
                   happy=EXPRESSIONS["happiness"], sad=EXPRESSIONS["sadness"], negative=EXPRESSIONS["disgust"],
                   positive=EXPRESSIONS["happiness"])
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
# as in some real copies: two extra columns with blank headers (pandas reads `Unnamed: 2`, `Unnamed: 6`)
CASME2_COLUMNS = ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units",
                  "Estimated Emotion"]
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SAMM_SUBJECTS = (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 30, 31, 32, 33,
                 34, 35, 36, 37)  # 29 subjects, 006-037 with gaps, as in SAMM
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_NAMES = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
DEFAULT_EMOTIONS = {"casme2": ("happiness", "surprise", "disgust"), "samm": ("Anger", "Happiness", "Surprise", "Other"),
                    "smic": ("negative", "positive", "surprise"), "fer2013": FER_CLASSES}
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
    """What to generate. The defaults make the embedded dataset of `data=synthetic`.

    `layout` picks the real dataset whose files are imitated (casme2, samm, smic, fer2013);
    `emotions` (empty: the layout's usual ones) are written as that dataset spells them.
    """

    subjects: int = 16
    clips_per_class: int = 4
    emotions: tuple[str, ...] = ()
    min_frames: int = 10
    max_frames: int = 18
    # scale of the expression displacements (3.0: up to about 12 px on the 128 px canvas, 6 px at 64 px)
    motion: float = 3.0
    seed: int = 0
    layout: str = "casme2"

    def fingerprint(self) -> dict:
        return {"subjects": self.subjects, "clips_per_class": self.clips_per_class,
                "emotions": list(self.emotion_names), "min_frames": self.min_frames,
                "max_frames": self.max_frames, "motion": self.motion, "seed": self.seed,
                "layout": self.layout, "version": 3}

    @property
    def emotion_names(self) -> tuple[str, ...]:
        return tuple(self.emotions) or DEFAULT_EMOTIONS[self.layout]


@dataclass
class SynthClip:
    """One generated clip: who, which expression, its absolute frame numbers and its frames."""

    subject: int  # 1-based subject number
    number: int  # 1-based clip number within the subject
    suffix: int  # a small number for clip names (CASME II's EPxx_yy, SAMM's inducement code)
    emotion: str
    first: int  # absolute number of the onset frame
    apex: int  # absolute number of the apex frame
    frames: list[np.ndarray]

    @property
    def last(self) -> int:
        return self.first + len(self.frames) - 1


def synth_clips(spec: SyntheticSpec, first_frame: tuple[int, int] = (1, 400)) -> Iterator[SynthClip]:
    """Every clip of `spec`, subject by subject, drawn from its seed (the same clips for any layout)."""
    rng = np.random.default_rng(spec.seed)
    emotions = spec.emotion_names
    for s in range(1, spec.subjects + 1):
        face = Face.random(rng)
        plan = [e for e in emotions for _ in range(spec.clips_per_class)]
        rng.shuffle(plan)
        for k, emotion in enumerate(plan, start=1):
            suffix = int(rng.integers(1, 9))
            n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
            first = int(rng.integers(*first_frame))
            apex_i = int(rng.integers(n // 3, 2 * n // 3 + 1))
            curve = intensity_curve(n, apex_i)
            gain = spec.motion * rng.uniform(0.8, 1.2)
            frames = [render(face, emotion.lower(), gain * curve[i], tuple(rng.normal(0, 0.4, 2)), rng)
                      for i in range(n)]
            yield SynthClip(s, k, suffix, emotion, first, first + apex_i, frames)


def _write_frames(clip_dir: Path, clip: SynthClip, name) -> None:
    clip_dir.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip.frames):
        path = clip_dir / name(clip.first + i)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        cv2.imwrite(str(path), frame, params)


def write_casme2_like(root: Path, spec: SyntheticSpec, cropped: bool = True) -> Path:
    """Write a CASME II-shaped tree under `root` and return the root.

    Layout: `Cropped/subNN/EPxx_yy/reg_img<N>.jpg` (or `CASME2_RAW_selected/.../img<N>.jpg` when
    `cropped` is false) with absolute frame numbers that do not start at 1, and the coding sheet
    `CASME2-coding-20140508.xlsx` whose `Subject` column holds integers, with two blank-headed
    columns, and whose second row's apex is '/' (as sub04 EP12_01f in the real sheet).
    """
    root = Path(root)
    folder, prefix = ("Cropped", "reg_img") if cropped else ("CASME2_RAW_selected", "img")
    rows = []
    for clip in synth_clips(spec):
        name = f"EP{clip.number:02d}_{clip.suffix:02d}"
        _write_frames(root / folder / f"sub{clip.subject:02d}" / name, clip, lambda n: f"{prefix}{n}.jpg")
        apex = "/" if len(rows) == 1 else clip.apex
        rows.append([clip.subject, name, None, clip.first, apex, clip.last, None,
                     AUS.get(clip.emotion, ""), clip.emotion.lower()])
    _write_xlsx(root / CASME2_SHEET, [CASME2_COLUMNS, *rows])
    return root


def write_samm_like(root: Path, spec: SyntheticSpec) -> Path:
    """Write a SAMM-shaped tree: `SAMM/006/006_1_2/006_05562.jpg` and `SAMM_Micro_FACS_Codes_v2.xlsx`.

    The sheet has 13 rows of free text above its header (Excel row 14), integer subjects (6 for
    folder `006`, with SAMM's gaps in the numbering), capitalised emotions and, once, `others` for
    `Other`.
    """
    root = Path(root)
    if spec.subjects > len(SAMM_SUBJECTS):
        raise ValueError(f"a SAMM-like tree has at most {len(SAMM_SUBJECTS)} subjects")
    rows, spelled_others = [], False
    for clip in synth_clips(spec, first_frame=(1000, 6000)):
        subject = SAMM_SUBJECTS[clip.subject - 1]
        name = f"{subject:03d}_{clip.suffix}_{clip.number}"
        _write_frames(root / "SAMM" / f"{subject:03d}" / name, clip, lambda n, s=subject: f"{s:03d}_{n:05d}.jpg")
        emotion = clip.emotion
        if emotion == "Other" and not spelled_others:
            emotion, spelled_others = "others", True
        rows.append([subject, name, f"{clip.suffix}_{clip.number}", clip.first, clip.apex, clip.last,
                     clip.last - clip.first + 1, "Micro - 1/2", "AU" + AUS.get(emotion.lower(), "4"), emotion,
                     "", ""])
    preamble = [["SAMM: Spontaneous Actions and Micro-Movements (synthetic copy written by mer_lightning)"],
                ["Facial Action Coding System codes, micro-movements"], *[[""]] * 10,
                ["Frame numbers are absolute; see the notes column."]]
    _write_xlsx(root / SAMM_SHEET, [*preamble, SAMM_COLUMNS, *rows])
    return root


def write_smic_like(root: Path, spec: SyntheticSpec) -> Path:
    """Write an SMIC-HS-shaped tree: `HS/s1/micro/negative/s1_ne_01/image046811.bmp` (no sheet)."""
    root = Path(root)
    for clip in synth_clips(spec, first_frame=(10000, 90000)):
        short = {"negative": "ne", "positive": "po", "surprise": "sur"}.get(clip.emotion, clip.emotion[:2])
        name = f"s{clip.subject}_{short}_{clip.number:02d}"
        clip_dir = root / "HS" / f"s{clip.subject}" / "micro" / clip.emotion / name
        _write_frames(clip_dir, clip, lambda n: f"image{n:06d}.bmp")
    return root


def write_fer2013_like(root: Path, spec: SyntheticSpec, folders: bool = False) -> Path:
    """Write FER-2013's `fer2013.csv` (48x48 apex images, Usage 80/10/10 %), or with `folders` the
    folder release (`train/<class>/*.jpg`, `test/<class>/*.jpg`). The CSV repeats one training
    image in PrivateTest, as some real copies do.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, clip in enumerate(synth_clips(spec)):
        image = cv2.resize(clip.frames[clip.apex - clip.first], (48, 48), interpolation=cv2.INTER_AREA)
        usage = ("Training",) * 8 + ("PublicTest", "PrivateTest")
        emotion = FER_NAMES.get(clip.emotion.lower(), clip.emotion.lower())
        rows.append((FER_CLASSES.index(emotion), image, usage[i % 10]))
    if folders:
        for i, (code, image, usage) in enumerate(rows):
            part = "train" if usage == "Training" else "test"
            (root / part / FER_CLASSES[code]).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / part / FER_CLASSES[code] / f"{usage[:4]}_{i:05d}.jpg"), image)
        return root
    rows.append((rows[0][0], rows[0][1], "PrivateTest"))
    frame = pd.DataFrame({"emotion": [r[0] for r in rows], "pixels": [" ".join(map(str, r[1].ravel())) for r in rows],
                          "Usage": [r[2] for r in rows]})
    frame.to_csv(root / "fer2013.csv", index=False)
    return root


def _write_xlsx(path: Path, rows: list[list]) -> None:
    """Rows as they appear in the sheet (the header is one of them, wherever it stands)."""
    pd.DataFrame(rows).to_excel(path, header=False, index=False)


WRITERS = {"casme2": write_casme2_like, "samm": write_samm_like, "smic": write_smic_like,
           "fer2013": write_fer2013_like}


def ensure_synthetic(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Generate a synthetic dataset under `root` (in `spec.layout`) unless an identical one is there."""
    root = Path(root)
    spec = spec or SyntheticSpec()
    if spec.layout not in WRITERS:
        raise MERError(f"data.spec.layout={spec.layout}: choose one of {list(WRITERS)}")
    marker = root / "synthetic.json"
    if marker.exists() and json.loads(marker.read_text()) == spec.fingerprint():
        return root
    log.info("Generating the synthetic %s-like dataset in %s (seed %d) ...", spec.layout, root, spec.seed)
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    WRITERS[spec.layout](tmp, spec)
    (tmp / "synthetic.json").write_text(json.dumps(spec.fingerprint()))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root
