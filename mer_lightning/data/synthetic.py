"""A small, realistic synthetic micro-expression dataset, written in the real datasets' layouts.

Frames are real face photographs animated by action-unit motions of 1-3 px, one identity per
subject, small head motion in every frame, in full frames where the face must be found
(`mer_lightning.data.synthetic_faces` renders them). Identity varies far more than expression,
so raw appearance says little about the class: a model must find the face and measure motion,
as on CASME II or SAMM. Generated offline from a seed in well under a minute.

Writers, one per real layout (`docs/formats/`), quirks included, so that every reader is
tested on files shaped like the real ones:

- `write_casme2_like`: `CASME2_RAW_selected/sub01/EP01_01/img46.jpg` (640x480 full frames; or the
  `Cropped/.../reg_img46.jpg` face crops) + `CASME2-coding-20140508.xlsx` with integer subjects,
  two blank-headed columns and a '/' apex cell. The embedded default (`data=synthetic`) is the raw
  tree, read through the same reader as `data=casme2`.
- `write_samm_like`: `SAMM/006/006_1_2/006_05562.jpg` + `SAMM_Micro_FACS_Codes_v2.xlsx` whose header
  is on row 14 below free text, integer subjects with gaps, `Other` and once `others`.
- `write_smic_like`: `HS/s1/micro/negative/s1_ne_01/image046811.bmp`, no sheet.
- `write_fer2013_like`: `fer2013.csv` (emotion, pixels, Usage) with one image duplicated across
  parts, or with `folders=True` the folder release `train/<class>/*.jpg`, `test/<class>/*.jpg`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import pandas as pd

from mer_lightning.data.readers import read_casme2, read_fer2013, read_samm, read_smic
from mer_lightning.data.readers.casme import read_casme
from mer_lightning.data.readers.casme3 import read_casme3
from mer_lightning.data.readers.dfme import read_dfme
from mer_lightning.data.readers.fourdme import read_4dme
from mer_lightning.data.readers.mmew import read_mmew
from mer_lightning.data.samples import SampleTable
from mer_lightning.data.synthetic_faces import (
    EMOTION_AUS,
    PHOTOS,
    expression_field,
    make_identity,
    render_clip,
)
from mer_lightning.data.synthetic_more import EMOTIONS as MORE_EMOTIONS
from mer_lightning.data.synthetic_more import FRAME_SIZES as MORE_SIZES
from mer_lightning.data.synthetic_more import write_casme3_like, write_casme_like, write_mmew_like
from mer_lightning.data.synthetic_more_b import EMOTIONS as MORE_B_EMOTIONS
from mer_lightning.data.synthetic_more_b import FRAME_SIZES as MORE_B_SIZES
from mer_lightning.data.synthetic_more_b import write_4dme_like, write_dfme_like
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

# Frame sizes (width, height) written per layout: CASME II's raw 640x480; SAMM's 2040x1088 shots
# at half size (the same face-to-frame proportion, a quarter of the pixels to write and decode)
FRAME_SIZES = {"casme2": (640, 480), "samm": (1020, 544), "smic": (640, 480), "fer2013": (320, 240),
               **MORE_B_SIZES, **MORE_SIZES}
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
DEFAULT_EMOTIONS = {"casme2": ("happiness", "disgust", "repression", "surprise", "others"),
                    "samm": ("Anger", "Contempt", "Happiness", "Surprise", "Other"),
                    "smic": ("negative", "positive", "surprise"), "fer2013": FER_CLASSES, **MORE_B_EMOTIONS,
                    **MORE_EMOTIONS}


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
    `cropped` (CASME II only) writes the `Cropped` release (face crops) instead of the raw full
    frames; `emotions` (empty: the layout's usual ones) are written as that dataset spells them.
    `motion` is the range of the expression's peak displacement in pixels of the written frames;
    `frame_size` (width, height; empty: the layout's own, `FRAME_SIZES`) sets the frames' size.
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
        return tuple(self.emotions) or DEFAULT_EMOTIONS[self.layout]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.frame_size) or FRAME_SIZES[self.layout]


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


def synth_clips(spec: SyntheticSpec, first_frame: tuple[int, int] = (1, 400)) -> Iterator[SynthClip]:
    """Every clip of `spec`, subject by subject, drawn from its seed (the same clips for any layout)."""
    rng = np.random.default_rng(spec.seed)
    emotions = spec.emotion_names
    grayscale = spec.layout == "samm"  # SAMM's camera is monochrome
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


def _write_frames(clip_dir: Path, clip: SynthClip, name, crop: bool = False) -> None:
    clip_dir.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip.frames):
        path = clip_dir / name(clip.first + i)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        image = clip.crop(frame) if crop else frame
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image, params)


def write_casme2_like(root: Path, spec: SyntheticSpec, cropped: bool | None = None) -> Path:
    """Write a CASME II-shaped tree under `root` and return the root.

    Layout: `CASME2_RAW_selected/subNN/EPxx_yy/img<N>.jpg` (full 640x480 RGB frames) or, when
    `cropped` (default: `spec.cropped`), `Cropped/subNN/EPxx_yy/reg_img<N>.jpg` (the face box),
    with absolute frame numbers that do not start at 1, and the coding sheet
    `CASME2-coding-20140508.xlsx` whose `Subject` column holds integers, with two blank-headed
    columns, and whose second row's apex is '/' (as sub04 EP12_01f in the real sheet).
    """
    root = Path(root)
    cropped = spec.cropped if cropped is None else cropped
    folder, prefix = ("Cropped", "reg_img") if cropped else ("CASME2_RAW_selected", "img")
    rows = []
    for clip in synth_clips(spec):
        name = f"EP{clip.number:02d}_{clip.suffix:02d}"
        _write_frames(root / folder / f"sub{clip.subject:02d}" / name, clip, lambda n: f"{prefix}{n}.jpg", cropped)
        apex = "/" if len(rows) == 1 else clip.apex
        rows.append([clip.subject, name, None, clip.first, apex, clip.last, None,
                     "+".join(clip.aus), clip.emotion.lower()])
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
                     clip.last - clip.first + 1, "Micro - 1/2", "+".join(clip.aus), emotion,
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
        apex = clip.crop(clip.frames[clip.apex - clip.first])
        apex = cv2.cvtColor(apex, cv2.COLOR_RGB2GRAY) if apex.ndim == 3 else apex
        image = cv2.resize(apex, (48, 48), interpolation=cv2.INTER_AREA)
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
           "fer2013": write_fer2013_like, "4dme": write_4dme_like, "dfme": write_dfme_like,
           "casme3": write_casme3_like, "casme": write_casme_like, "mmew": write_mmew_like}


# the reader of each layout: the real dataset's own
LAYOUT_READERS = {"casme2": read_casme2, "samm": read_samm, "smic": read_smic, "fer2013": read_fer2013,
                  "4dme": read_4dme, "dfme": read_dfme,
                  "casme3": read_casme3, "casme": read_casme, "mmew": read_mmew}
SYNTHETIC_MARKER = "synthetic.json"  # written last: its presence marks a complete dataset


def ensure_synthetic(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Generate a synthetic dataset under `root` (in `spec.layout`) unless an identical one is there.

    Safe when several jobs (a sweep, DDP ranks) call it at once for the same root: each generates in
    its own temporary folder next to `root`, writes the `synthetic.json` marker last and renames
    the folder into place; a job that finds the same dataset published meanwhile discards its copy.
    No folder another job is writing is ever deleted, nor a folder without a synthetic marker.
    """
    root = Path(root)
    spec = spec or SyntheticSpec()
    if spec.layout not in WRITERS:
        raise MERError(f"data.reader.layout={spec.layout}: choose one of {list(WRITERS)}")
    if _synthetic_fingerprint(root) == spec.fingerprint():
        return root
    if root.is_dir() and _synthetic_fingerprint(root) is None and any(root.iterdir()):
        raise MERError(f"data.root={root} holds files that are not a synthetic dataset (no readable "
                       f"{SYNTHETIC_MARKER}); they are left alone: choose a new or empty folder with `data.root=...`")
    log.info("Generating the synthetic %s-like dataset in %s (seed %d) ...", spec.layout, root, spec.seed)
    tmp = None
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
        WRITERS[spec.layout](tmp, spec)
        (tmp / SYNTHETIC_MARKER).write_text(json.dumps(spec.fingerprint()))  # last: marks it complete
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _publish_synthetic(tmp, root, spec)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise MERError(f"could not write the synthetic dataset to {root} ({err.strerror or err}); free some "
                           "disk space there or choose a writable folder with `data.root=/some/dir`") from err
        raise
    return root


def read_synthetic(root, layout: str = "casme2", subjects: int = 10, clips_per_class: int = 3,
                   emotions: Sequence[str] = (), min_frames: int = 10, max_frames: int = 18,
                   motion: Sequence[float] = (1.0, 3.0), frame_size: Sequence[int] = (), cropped: bool = False,
                   seed: int = 0, photos: Sequence[str] = ()) -> SampleTable:
    """The reader of `data=synthetic`: generate the dataset on first use (`SyntheticSpec`: the same
    options) in its own folder `root/<layout>-<spec hash>` (so layouts and sweeps over the spec never
    replace each other's data; `root` itself when it holds exactly this dataset), then read it through
    the reader of the real dataset whose `layout` it imitates; its samples are marked `dataset="synthetic"`."""
    spec = SyntheticSpec(subjects=subjects, clips_per_class=clips_per_class, emotions=tuple(emotions),
                         min_frames=min_frames, max_frames=max_frames, motion=tuple(motion),
                         frame_size=tuple(frame_size), cropped=cropped, seed=seed, layout=layout,
                         photos=tuple(photos))
    root = Path(root)
    if _synthetic_fingerprint(root) != spec.fingerprint():  # `root` itself, when it is this very dataset
        root = root / spec.folder_name()
    ensure_synthetic(root, spec)
    table = LAYOUT_READERS[layout](root)
    table.samples = [s.with_(dataset="synthetic") for s in table.samples]
    return table


def _synthetic_fingerprint(root: Path) -> dict | None:
    """The spec fingerprint a complete synthetic dataset at `root` was generated from (else None)."""
    try:
        return json.loads((root / SYNTHETIC_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _publish_synthetic(tmp: Path, root: Path, spec: SyntheticSpec) -> None:
    """Rename the complete `tmp` to `root`. Another spec's dataset there is first moved aside with one
    rename (deleted once ours is in); the same spec published by another job meanwhile wins."""
    if _synthetic_fingerprint(root) == spec.fingerprint():
        shutil.rmtree(tmp, ignore_errors=True)  # another job won: use theirs
        return
    aside = None
    if _synthetic_fingerprint(root) is not None:
        aside = root.with_name(f".{root.name}.old-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(root, aside)
        except FileNotFoundError:  # moved aside by another job
            aside = None
    try:
        os.replace(tmp, root)  # fails when `root` is not empty: another job published first
    except OSError:
        if _synthetic_fingerprint(root) != spec.fingerprint():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
