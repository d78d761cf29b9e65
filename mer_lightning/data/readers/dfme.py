"""DFME (USTC): `USTC_MEv4_partA_sub0001_sub0015/micro/<emotion>/<Filename>/<frame>` + a coding sheet.

7,526 ME clips of 671 participants in three parts recorded at different rates: Part A 500 fps,
Part B 300 fps, Part C 200 fps (`docs/formats/more_datasets.md` §2). Every sample records its `fps`.

Layouts accepted (both only known from code that consumes DFME, hence tolerant):
- the release as the CAS group's FED-PsyAU reads it: part folders `USTC_MEv4_part<X>_sub<first>_sub<last>`
  (also `..._500fps` / `..._200fps` for Part D, split by frame rate), each `micro/<emotion>/<Filename>/`;
  the coding sheet (FED: `data_coding/DFME_data_coding.xlsx`) anywhere in the root or one folder below;
- a third-party "suggested layout": `train_data/coding.xlsx` beside `train_data/<Filename>/00000.png`
  (or `<Subject>/<Filename>/`), without an offset or fps column.

Quirks handled here: the sheet is found by its columns (Subject, Filename, Emotion; onset / apex /
offset / fps optional, names compared case-insensitively with known variants), so its name and
column positions do not matter; an unknown header is a MERError listing what was found and expected;
subjects are `sub0001` (integers are formatted so); emotion spellings vary (happy / happiness,
sad / sadness: one name each); folders match case-insensitively. Clips are folders of the clip's own
frames: frames span onset..offset when the sheet's numbers fit the files, else the whole folder
(the file numbering is unknown; an apex given relative to the onset is mapped onto the files and
counted as `apex_relative`; no usable apex: the middle frame, `apex_missing`). `fps` per sample: the
sheet's `fps` column, else the part folder (`500fps` in its name, else Part A/B/C -> 500/300/200),
else 0 (counted as `fps_unknown`). Rows without frames, damaged frames and unknown emotions are
skipped per row (`common.add_clip`); a clip on two rows is read once if they agree.

Assumed (UNVERIFIED in the formats file): official file names, image format, frame numbering; that
`Filename` is the clip folder's name; no official folds exist, so `data=dfme` defaults to
subject-independent k-fold (FED uses 10 folds over subjects: `protocol.k=10`).
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_lightning.data.readers.common import (
    add_clip,
    annotation_path,
    as_int,
    numbered_frames,
    outside_subject_folder,
    require_root,
    same_clip_rows,
    sheet_rows,
)
from mer_lightning.data.readers.tolerant import cell_text, child_dir, find_sheet_by_columns
from mer_lightning.data.samples import SampleTable

SHEETS = ("DFME_data_coding.xlsx", "coding.xlsx", "DFME_coding.xlsx")
COLUMNS = {
    "subject": ("Subject", "sub", "sub_ID"),
    "clip": ("Filename", "File name", "clip"),
    "emotion": ("Emotion", "Estimated Emotion", "emotion label"),
    "onset": ("OnsetFrame", "Onset", "Onset Frame"),
    "apex": ("ApexFrame", "Apex", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset", "Offset Frame"),
    "fps": ("fps", "frame rate", "FrameRate"),
}
REQUIRED = ("subject", "clip", "emotion")
EMOTIONS = ("happiness", "sadness", "anger", "contempt", "fear", "disgust", "surprise", "others")
SPELLINGS = {"happy": "happiness", "sad": "sadness", "other": "others", "angry": "anger", "surprised": "surprise"}
PART_FPS = {"a": 500.0, "b": 300.0, "c": 200.0}
_PART = re.compile(r"part[_ ]?([a-d])(?![a-z])", re.IGNORECASE)
_FPS = re.compile(r"(\d+)\s*fps", re.IGNORECASE)
REQUEST_FROM = ("the DFME authors (USTC): a non-commercial licence agreement e-mailed to them, see "
                "https://mea-lab-421.github.io (student requests signed by a supervisor)")


def part_fps(folder_name: str) -> float:
    """The frame rate a part folder's name implies (`..._500fps`, else Part A/B/C), 0 when unknown."""
    rate = _FPS.search(folder_name)
    if rate:
        return float(rate.group(1))
    part = _PART.search(folder_name)
    return PART_FPS.get(part.group(1).lower(), 0.0) if part else 0.0


def index_release(root: Path) -> dict[str, list[tuple[Path, str, float]]]:
    """Clip folder name (lower case) -> [(folder, its emotion folder, its part's fps)] over the part folders."""
    index: dict[str, list[tuple[Path, str, float]]] = {}
    for part in sorted(p for p in root.iterdir() if p.is_dir() and _PART.search(p.name)):
        micro = child_dir(part, "micro")
        if micro is None:
            continue
        rate = part_fps(part.name)
        for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = normal_emotion(emotion_dir.name)
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                index.setdefault(clip_dir.name.lower(), []).append((clip_dir, emotion, rate))
    return index


def normal_emotion(text: str) -> str:
    text = text.strip().lower()
    return SPELLINGS.get(text, text)


def find_clip(index, bases: list[Path], subject: str, clip: str, emotion: str) -> tuple[Path | None, float]:
    """The clip's folder and its part's fps (0 outside the release layout); (None, 0) when not found."""
    hits = index.get(clip.lower(), [])
    if len(hits) > 1:
        hits = [h for h in hits if h[1] == emotion] or hits
    if len(hits) == 1:
        return hits[0][0], hits[0][2]
    if hits:
        return None, 0.0  # the same Filename in several folders: ambiguous, reported by the caller
    for base in bases:
        direct = child_dir(base, clip)
        subject_dir = child_dir(base, subject)
        nested = child_dir(subject_dir, clip) if subject_dir is not None else None
        if nested or direct:
            return nested or direct, 0.0
    return None, 0.0


def read_dfme(root, annotation_file: str | None = None, fps: float | None = None) -> SampleTable:
    """Read a DFME copy into a SampleTable; `fps` (when given) overrides every sample's frame rate."""
    root = require_root(root, "DFME", REQUEST_FROM)
    found = find_sheet_by_columns(root, "DFME", SHEETS, COLUMNS, REQUIRED, annotation_path(root, annotation_file))
    index = index_release(root)
    bases = list(dict.fromkeys([found.path.parent, root]))
    table = SampleTable([])
    listed: dict[tuple[str, str], list[tuple[int, tuple]]] = {}
    for row_number, row in sheet_rows(found.table):
        cells = dict(zip(found.table.columns, row))
        number = as_int(cells["subject"])
        subject = f"sub{number:04d}" if number is not None else cell_text(cells["subject"])
        clip = cell_text(cells["clip"])
        problem = outside_subject_folder(subject, clip, root, ["Subject", "Filename"])
        if problem:
            table.skip(f"dfme/{subject}/{clip}", f"{found.path.name} row {row_number}: {problem}")
            continue
        rate = cells.get("fps")
        rate = float(rate) if as_int(rate) is not None else None
        listed.setdefault((subject, clip), []).append((row_number, (
            normal_emotion(cell_text(cells["emotion"])), as_int(cells.get("onset")), as_int(cells.get("apex")),
            as_int(cells.get("offset")), rate)))
    for (subject, clip), rows in listed.items():
        sample_id = f"dfme/{subject}/{clip}"
        if len(rows) > 1 and not same_clip_rows(table, [(n, a[:4]) for n, a in rows], sample_id, found.path.name):
            continue
        row_number, (emotion, onset, apex, offset, sheet_fps) = rows[0]
        where = f"{found.path.name} row {row_number}"
        clip_dir, folder_fps = find_clip(index, bases, subject, clip, emotion)
        if clip_dir is None:
            many = len(index.get(clip.lower(), [])) > 1
            table.skip(sample_id, f"{where}: " + (f"Filename '{clip}' names several clip folders" if many else
                                                  f"no clip folder named '{clip}' in {root}"))
            continue
        onset, apex, offset = _span(table, clip_dir, onset, apex, offset)
        rate = fps if fps is not None else (sheet_fps or folder_fps)
        if not rate:
            table.count("fps_unknown")
        add_clip(table, dataset="dfme", subject=subject, clip=clip, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=clip_dir, where=where, emotions=EMOTIONS, fps=rate or 0.0)
    return table


def _span(table: SampleTable, clip_dir: Path, onset, apex, offset):
    """(onset, apex, offset) in the files' numbering: the sheet's when they fit the files, else the folder."""
    numbers = [n for n, _ in numbered_frames(clip_dir)]
    if not numbers:
        return 0, None, 0  # add_clip reports the empty folder
    if onset is not None and offset is not None and numbers[0] <= onset <= offset <= numbers[-1]:
        return onset, apex, offset
    first, last = numbers[0], numbers[-1]
    if apex is not None and not first <= apex <= last and onset is not None and 0 <= apex - onset <= last - first:
        apex = first + (apex - onset)
        table.count("apex_relative")
    return first, apex, last
