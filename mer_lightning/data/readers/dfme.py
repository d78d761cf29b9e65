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
skipped per row (`_rows.add_clip`); a clip on two rows is read once if they agree (`_rows.SheetClips`).

Assumed (UNVERIFIED in the formats file): official file names, image format, frame numbering; that
`Filename` is the clip folder's name; no official folds exist, so `data=dfme` defaults to
subject-independent k-fold (FED uses 10 folds over subjects: `protocol.k=10`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_lightning.data.readers._folders import Folders, numbered_frames, require_root
from mer_lightning.data.readers._rows import ClipRow, SheetClips, emotion_name, subject_name
from mer_lightning.data.readers._sheet import Columns, as_int, cell_text, find_sheet
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable

SHEETS = ("DFME_data_coding.xlsx", "coding.xlsx", "DFME_coding.xlsx")
COLUMNS = Columns({
    "subject": ("Subject", "sub", "sub_ID"),
    "clip": ("Filename", "File name", "clip"),
    "emotion": ("Emotion", "Estimated Emotion", "emotion label"),
    "onset": ("OnsetFrame", "Onset", "Onset Frame"),
    "apex": ("ApexFrame", "Apex", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset", "Offset Frame"),
    "fps": ("fps", "frame rate", "FrameRate"),
}, required=("subject", "clip", "emotion"))
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


def index_release(root: Path, folders: Folders) -> dict[str, list[tuple[Path, str, float]]]:
    """Clip folder name (lower case) -> [(folder, its emotion folder, its part's fps)] over the part folders."""
    index: dict[str, list[tuple[Path, str, float]]] = {}
    for part in sorted(p for p in root.iterdir() if p.is_dir() and _PART.search(p.name)):
        micro = folders.child(part, "micro")
        if micro is None:
            continue
        rate = part_fps(part.name)
        for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = emotion_name(emotion_dir.name, SPELLINGS)
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                index.setdefault(clip_dir.name.lower(), []).append((clip_dir, emotion, rate))
    return index


def find_clip(index, folders: Folders, bases: list[Path], row: ClipRow) -> tuple[Path | None, float]:
    """The clip's folder and its part's fps (0 outside the release layout); (None, 0) when not found."""
    hits = index.get(row.clip.lower(), [])
    if len(hits) > 1:
        hits = [h for h in hits if h[1] == row.emotion] or hits
    if len(hits) == 1:
        return hits[0][0], hits[0][2]
    if hits:
        return None, 0.0  # the same Filename in several folders: ambiguous, reported by the caller
    for base in bases:
        found = folders.child(folders.child(base, row.subject), row.clip) or folders.child(base, row.clip)
        if found:
            return found, 0.0
    return None, 0.0


@register_dataset("dfme", title="DFME", folder="DFME", fps=tuple(PART_FPS.values()), classes="dfme_7",
                  protocol="subject_kfold", request_from=REQUEST_FROM)
def read_dfme(root, annotation_file: str | None = None, fps: float | None = None) -> SampleTable:
    """Read a DFME copy into a SampleTable; `fps` (when given) overrides every sample's frame rate."""
    root = require_root(root, "dfme")
    sheet = find_sheet(root, COLUMNS, "dfme", patterns=(*SHEETS, "*"), annotation_file=annotation_file,
                       expected=f"one of {list(SHEETS)} (or any sheet with the columns {COLUMNS.expected()})")
    folders = Folders()
    index = index_release(root, folders)
    bases = list(dict.fromkeys([sheet.path.parent, root]))
    clips = SheetClips("dfme", sheet.path.name, f"{root}{os.sep}<subject>{os.sep}")
    for number, cells in sheet.rows():
        subject, clip = subject_name(cells["subject"], "sub{:04d}"), cell_text(cells["clip"])
        rate = float(cells["fps"]) if as_int(cells["fps"]) is not None else None
        clips.add(ClipRow(number, subject, clip, emotion_name(cells["emotion"], SPELLINGS), as_int(cells["onset"]),
                          as_int(cells["apex"]), as_int(cells["offset"]), {"fps": rate}),
                  folders=(("Subject", subject), ("Filename", clip)))
    for row in clips.clips():
        clip_dir, folder_fps = find_clip(index, folders, bases, row)
        if clip_dir is None:
            many = len(index.get(row.clip.lower(), [])) > 1
            clips.skip(row, f"Filename '{row.clip}' names several clip folders" if many else
                       f"no clip folder named '{row.clip}' in {root}")
            continue
        row.onset, row.apex, row.offset = _span(clips.table, clip_dir, row.onset, row.apex, row.offset)
        rate = fps if fps is not None else (row.extra["fps"] or folder_fps)
        if not rate:
            clips.table.count("fps_unknown")
        clips.read(row, clip_dir, EMOTIONS, fps=rate or 0.0)
    return clips.table


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
