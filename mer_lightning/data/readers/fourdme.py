"""4DME (Oulu): `4DMicro/gray_micro/<sub_ID>/<fold_name>/<frame>.jpg` + `4DME_Labelling_Micro_release v1.xlsx`.

Layouts accepted (`docs/formats/more_datasets.md` §4): the release's `4DMicro/gray_micro/<sub_ID>/<fold_name>/`
(meb's path) and the pre-release flat `gray_micro_register_final/<fold_name>/` (e.g. `S13_1st_001_01_1`);
the root may be the folder holding `4DMicro/`, `4DMicro/` itself or the frames folder itself.
Only the grey-scale 2-D micro clips are read (not the 4D/depth/RGB data, whose formats are unknown).

Multi-label clips: 4DME labels some MEs with several of its five emotions (`Surprise+Positive`).
A classifier needs one class per clip, so `multi_label` decides: `skip` (default) leaves such a clip
out and counts it in `table.notes` (`multi_label_dropped`, and `multi_label/<a+b>` per combination),
not in `skipped` (it is a labelling choice, like `outside_scheme`, not damaged data); `first` keeps the
first emotion written in the cell; `keep` keeps the combination as its own emotion string (sorted,
`positive+surprise`), which `data.classes=all` or an explicit list can make a class of.

Quirks handled here: the sheet is found by its columns (sub_ID, fold_name, Onset, Apex, Offset,
Emotion; compared case-insensitively, other spellings accepted), so the `extras` file
(`self-report emo'`, `video emo'`) and renamed copies are told apart; the sheet also carries one-hot
AU and emotion columns (ignored); onset/apex/offset may be floats (-> int); rows whose values from
`AU` onward are swapped (meb: rows 144/145) are recognised when the Emotion cell is not an emotion
and the AUs cell is (counted as `columns_swapped`); emotions are capitalised (`Positive`) and `Other`
/ `Others` both become `others`; subject and clip folders match case-insensitively; an apex out of
range becomes the middle frame (`apex_missing`). Damaged/missing frames and unknown emotions skip
the row (`_rows.add_clip`); a clip on two rows is read once if they agree (`_rows.SheetClips`).

Assumed (UNVERIFIED in the formats file): frame numbers in file names are the absolute numbers the
sheet's Onset/Offset use (the last integer of the file name); when they are not but the folder holds
exactly Offset-Onset+1 frames, the folder is taken to be the clip and the annotation is shifted to
the file numbers (counted as `frames_renumbered`). 60 fps (the long videos' rate, reported by
third-party code; override with `data.reader.fps=...`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_lightning.data.readers._folders import Folders, numbered_frames, require_root
from mer_lightning.data.readers._rows import ClipRow, SheetClips
from mer_lightning.data.readers._sheet import Columns, as_int, cell_text, find_sheet
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

SHEETS = ("4DME_Labelling_Micro_release v1.xlsx", "4DME_Labelling_Micro_release.xlsx")
COLUMNS = Columns({
    "subject": ("sub_ID", "subject", "sub ID", "sub"),
    "clip": ("fold_name", "fold name", "Filename"),
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "emotion": ("Emotion", "Emotions", "Estimated Emotion"),
    "aus": ("AUs", "AU", "Action Units"),
}, required=("subject", "clip", "onset", "apex", "offset", "emotion"))
FRAME_DIRS = ("4DMicro/gray_micro", "gray_micro", "4DMicro/gray_micro_register_final", "gray_micro_register_final")
EMOTIONS = ("positive", "negative", "surprise", "repression", "others")
SPELLINGS = {"other": "others"}
MULTI_LABEL = ("skip", "first", "keep")
_SPLIT = re.compile(r"\s*(?:\+|/|,|&|\band\b)\s*")
# the formats file names no request page (form details unverified): the group that releases it
REQUEST_FROM = "the University of Oulu's Center for Machine Vision and Signal Analysis (CMVS), 4DME's authors"
FPS = 60.0


def find_frames_dir(root: Path, layout: str | None, folders: Folders) -> Path:
    """The folder holding the clips: `layout` (relative to the root) or the first known one, matched
    case-insensitively, else the root itself when it holds subject or clip folders."""
    for option in ((layout,) if layout else FRAME_DIRS):
        folder = folders.find(root, *option.split("/"))
        if folder.is_dir():
            return folder
    if layout:
        raise MERError(f"4DME frames folder {root / layout} does not exist (data.reader.layout={layout}); "
                       f"known layouts: {list(FRAME_DIRS)}")
    if any(p.is_dir() for p in root.iterdir()):
        return root
    raise MERError(f"no 4DME frames in {root}: expected one of {[str(root / d) for d in FRAME_DIRS]}")


def clip_folder(folders: Folders, frames_dir: Path, subject: str, clip: str) -> Path:
    """`<frames>/<sub_ID>/<fold_name>` (release) or `<frames>/<fold_name>` (flat pre-release), any case."""
    nested = folders.child(folders.child(frames_dir, subject), clip)
    return nested or folders.child(frames_dir, clip) or frames_dir / subject / clip


def emotions_of(cell: str) -> list[str]:
    """The emotions a cell names, lower case, in the order written (`Surprise+Positive` -> two)."""
    names = [e.strip().lower() for e in _SPLIT.split(cell) if e.strip()]
    return [SPELLINGS.get(e, e) for e in names]


@register_dataset("4dme", title="4DME", folder="4DME", fps=(FPS,), classes="4dme_5", protocol="loso",
                  request_from=REQUEST_FROM)
def read_4dme(root, annotation_file: str | None = None, layout: str | None = None, multi_label: str = "skip",
              fps: float = FPS) -> SampleTable:
    """Read a 4DME copy (grey-scale micro clips) into a SampleTable; see the module doc for `multi_label`."""
    if multi_label not in MULTI_LABEL:
        raise MERError(f"data.reader.multi_label={multi_label}: choose one of {', '.join(MULTI_LABEL)}")
    root = require_root(root, "4dme")
    sheet = find_sheet(root, COLUMNS, "4dme", patterns=(*SHEETS, "*"), exclude=("extras",),
                       annotation_file=annotation_file,
                       expected=f"one of {list(SHEETS)} (or any sheet with the columns {COLUMNS.expected()})")
    folders = Folders()
    frames_dir = find_frames_dir(root, layout, folders)
    clips = SheetClips("4dme", sheet.path.name, f"{frames_dir}{os.sep}<subject>{os.sep}")
    for number, cells in sheet.rows():
        subject, clip = cell_text(cells["subject"]), cell_text(cells["clip"])
        row = ClipRow(number, subject, clip, "", as_int(cells["onset"]), as_int(cells["apex"]), as_int(cells["offset"]))
        if not clips.guard(row, (("sub_ID", subject), ("fold_name", clip))):
            continue
        emotions = emotions_of(cell_text(cells["emotion"]))
        if not (emotions and all(e in EMOTIONS for e in emotions)):
            swapped = emotions_of(cell_text(cells["aus"]))
            if swapped and all(e in EMOTIONS for e in swapped):
                emotions = swapped
                clips.table.count("columns_swapped")
        if len(emotions) > 1 and all(e in EMOTIONS for e in emotions):
            if multi_label == "skip":
                clips.table.count("multi_label_dropped")
                clips.table.count(f"multi_label/{'+'.join(sorted(set(emotions)))}")
                continue
            clips.table.count("multi_label_" + ("first" if multi_label == "first" else "kept"))
            emotions = emotions[:1] if multi_label == "first" else ["+".join(sorted(set(emotions)))]
        row.emotion = "+".join(emotions)
        clips.add(row)
    for row in clips.clips():
        clip_dir = clip_folder(folders, frames_dir, row.subject, row.clip)
        row.onset, row.apex, row.offset = _file_numbers(clips.table, clip_dir, row.onset, row.apex, row.offset)
        clips.read(row, clip_dir, EMOTIONS + ((row.emotion,) if "+" in row.emotion else ()), fps=fps)
    return clips.table


def _file_numbers(table: SampleTable, clip_dir: Path, onset, apex, offset):
    """The annotation in the files' numbering: unchanged when it fits the files, shifted when the folder
    holds exactly the annotated clip under other numbers (counted as `frames_renumbered`)."""
    if onset is None or offset is None or not clip_dir.is_dir():
        return onset, apex, offset
    numbers = [n for n, _ in numbered_frames(clip_dir)]
    if not numbers or (numbers[0] <= onset and offset <= numbers[-1]):
        return onset, apex, offset
    if len(numbers) == offset - onset + 1 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        shift = numbers[0] - onset
        table.count("frames_renumbered")
        return onset + shift, (apex + shift if apex is not None else None), offset + shift
    return onset, apex, offset
