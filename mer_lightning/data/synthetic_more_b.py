"""Synthetic writers for 4DME and DFME, in their layouts as `docs/formats/more_datasets.md` gives them,
quirks included (registered in `synthetic.WRITERS`; the clips come from `synthetic.synth_clips`).

- `write_4dme_like`: `4DMicro/gray_micro/S01/S01_1st_001_01_1/Frame_000000123.jpg` (grey-scale; or with
  `flat=True` the pre-release `gray_micro_register_final/S01_1st_001_01_1/`) + `4DME_Labelling_Micro_release
  v1.xlsx` (sub_ID, fold, fold_name, Onset, Apex, Offset, AUs, Emotion, then one-hot AU and emotion columns)
  with float frame numbers, capitalised emotions, one multi-label row (`Surprise+Positive`), one row whose
  AUs and Emotion cells are swapped and an AU suffixed `(k)`; beside it the extras file
  (`self-report emo'`, `video emo'`), which must not be taken for the labels.
- `write_dfme_like`: part folders `USTC_MEv4_partA_sub0001_sub0002/micro/<emotion>/<Filename>/<n>.jpg` for
  Parts A, B, C (500, 300, 200 fps: subjects split in three) + `data_coding/DFME_data_coding.xlsx`
  (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Emotion, fps) with the
  spellings `happy` / `sad` beside `happiness` / `sadness` and one blank fps cell (the part folder
  says it); with `suggested=True` the third-party layout `train_data/coding.xlsx` (no offset, no fps)
  + `train_data/<Filename>/00000.png` (frames numbered from 0, the sheet's onset/apex absolute).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2

EMOTIONS = {"4dme": ("Positive", "Negative", "Surprise", "Repression", "Others"),
            "dfme": ("happiness", "sadness", "anger", "contempt", "fear", "disgust", "surprise")}
FRAME_SIZES = {"4dme": (640, 480), "dfme": (640, 480)}  # resolutions UNVERIFIED
FOURDME_SHEET = "4DME_Labelling_Micro_release v1.xlsx"
FOURDME_EXTRAS = "4DME_Labelling_Micro_extras_release v1.xlsx"
FOURDME_COLUMNS = ["sub_ID", "fold", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion", "AU1", "AU2", "AU4",
                   "AU12", "eye blink", "Positive", "Negative", "Surprise", "Repression", "Others", "Total"]
DFME_SHEET = "data_coding/DFME_data_coding.xlsx"
DFME_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Emotion", "fps"]
DFME_PARTS = (("A", 500), ("B", 300), ("C", 200))
DFME_SPELLED = {"happiness": "happy", "sadness": "sad"}


def _spec(spec, layout: str):
    return replace(spec, emotions=tuple(spec.emotions) or EMOTIONS[layout],
                   frame_size=tuple(spec.frame_size) or FRAME_SIZES[layout])


def _write_clip(clip_dir: Path, frames, numbers, name, grey: bool) -> None:
    clip_dir.mkdir(parents=True, exist_ok=True)
    for frame, n in zip(frames, numbers):
        path = clip_dir / name(n)
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else [])


def write_4dme_like(root: Path, spec, flat: bool = False) -> Path:
    """Write a 4DME-shaped tree under `root` (see the module doc) and return the root."""
    from mer_lightning.data.synthetic import _write_xlsx, synth_clips

    root = Path(root)
    spec = _spec(spec, "4dme")
    rows, extras, multi, swapped = [], [], False, False
    for clip in synth_clips(spec, first_frame=(100, 3000)):
        subject = f"S{clip.subject:02d}"
        name = f"{subject}_1st_{clip.number:03d}_01_1"  # subject, video, ME, sub-ME
        folder = (root / "gray_micro_register_final" / name) if flat else (root / "4DMicro" / "gray_micro" / subject
                                                                           / name)
        _write_clip(folder, clip.frames, range(clip.first, clip.last + 1), lambda n: f"Frame_{n:09d}.jpg", True)
        emotion, aus = clip.emotion, "+".join(f"AU{a}" for a in clip.aus) or "AU7"
        if emotion == "Surprise" and not multi:
            emotion, multi = "Surprise+Positive", True
        if len(rows) == 1:
            aus += "+AU4(k)"  # a static AU
        onehot = [int(f"AU{a}" in aus) for a in ("1", "2", "4", "12")] + [0]
        onehot += [int(e in emotion) for e in ("Positive", "Negative", "Surprise", "Repression", "Others")]
        cells = [aus, emotion]
        if len(rows) == 3 and not swapped:  # meb rows 144/145: values from `AU` on swapped
            cells, swapped = [emotion, aus], True
        rows.append([subject, 1, name, float(clip.first), float(clip.apex), float(clip.last), *cells, *onehot,
                     sum(onehot)])
        extras.append([subject, 1, name, clip.emotion.lower(), clip.emotion.lower()])
    _write_xlsx(root / FOURDME_SHEET, [FOURDME_COLUMNS, *rows])
    _write_xlsx(root / FOURDME_EXTRAS, [["sub_ID", "fold", "fold_name", "self-report emo'", "video emo'"], *extras])
    return root


def dfme_part(subject: int, subjects: int) -> tuple[str, int]:
    """(part letter, fps) of a 1-based subject: the subjects split in three, in order."""
    third = max(1, -(-subjects // 3))
    return DFME_PARTS[min((subject - 1) // third, 2)]


def write_dfme_like(root: Path, spec, suggested: bool = False) -> Path:
    """Write a DFME-shaped tree under `root` (see the module doc) and return the root."""
    from mer_lightning.data.synthetic import _write_xlsx, synth_clips

    root = Path(root)
    spec = _spec(spec, "dfme")
    third = max(1, -(-spec.subjects // 3))
    rows = []
    for clip in synth_clips(spec, first_frame=(1, 2000)):
        subject = f"sub{clip.subject:04d}"
        name = f"{subject}_{clip.number:02d}"
        emotion = clip.emotion.lower()
        spelled = DFME_SPELLED.get(emotion, emotion) if clip.number % 2 else emotion
        numbers = range(clip.first, clip.last + 1)
        if suggested:
            _write_clip(root / "train_data" / name, clip.frames, range(len(clip.frames)), lambda n: f"{n:05d}.png",
                        False)
            rows.append([subject, name, clip.first, clip.apex, spelled])
            continue
        letter, fps = dfme_part(clip.subject, spec.subjects)
        k = "ABC".index(letter)
        first, last = k * third + 1, min((k + 1) * third, spec.subjects)
        part = root / f"USTC_MEv4_part{letter}_sub{first:04d}_sub{last:04d}"
        _write_clip(part / "micro" / spelled / name, clip.frames, numbers, lambda n: f"{n}.jpg", False)
        rows.append([subject, name, clip.first, clip.apex, clip.last, "+".join(clip.aus), spelled,
                     None if len(rows) == 0 else fps])
    if suggested:
        _write_xlsx(root / "train_data" / "coding.xlsx",
                    [["Subject", "Filename", "OnsetFrame", "ApexFrame", "Emotion"], *rows])
    else:
        (root / DFME_SHEET).parent.mkdir(parents=True, exist_ok=True)
        _write_xlsx(root / DFME_SHEET, [DFME_COLUMNS, *rows])
    return root
