"""SAMM Long Videos (SAMM-LV), 200 fps: `SAMM_longvideos/006_1/006_1_0001.jpg` (one flat folder per
video, `<subject>_<video>`, 4-digit 1-based frame index, 5 digits in the longest videos) plus
`SAMM_LongVideos_V3_Release.xlsx` (or V1 / V2).

The sheet `FACS_Movement_Only` has 9 note rows, then its header (Excel row 10): Subject, Filename
(`006_1_2`: video `006_1`, its second movement), Inducement Code, Onset, Apex, Offset, Duration, Type
(`Macro` / `Micro - 1/2`), Action Units, Notes. The header is found by its column names, so versions
with more or fewer note rows read alike. It has no emotion column: micro rows get theirs from SAMM's
micro-expression sheet (`SAMM_Micro_FACS_Codes_v2.xlsx`, found in the root or named with
`data.reader.emotion_file`) by Filename, the nearest onset when a Filename has several (as MEAN
joins them); counted as `emotion_from_micro_sheet`, and micro rows left without one as
`emotion_missing`.

Quirks handled here: fractional frames (143 macro rows, e.g. 566.4) are rounded half up, as the
organisers do (counted `fractional_frames`); an apex of -1 (not annotated) becomes the middle frame
(`apex_missing`); the 10 macro rows with onset 0 (up to 5,176 frames long) are dropped and counted
(`onset_zero_dropped`), as most papers do, or kept with `data.reader.keep_onset_zero=true` (the MEGC
2020 baseline's choice; their start is then the first frame, counted `onset_zero_kept`); offsets
past the last frame (020_6_5, 036_7_4) are clipped to it (`clipped_to_video`). The root may be the
folder holding `SAMM_longvideos/` or that folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_lightning.data.readers._folders import Folders, frames_folder, require_root
from mer_lightning.data.readers._rows import emotion_name
from mer_lightning.data.readers._sheet import Columns, as_int, cell_text, find_sheet
from mer_lightning.data.readers._videos import IntervalRow, VideoRows, frame_number, interval_type
from mer_lightning.data.readers.samm import COLUMNS as MICRO_COLUMNS
from mer_lightning.data.readers.samm import SPELLINGS
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.videos import VideoTable
from mer_lightning.utils.errors import MERError

FPS = 200.0
SHEET_PATTERNS = ("samm_longvideos_v3*", "samm_longvideos_v2*", "samm_longvideos*", "*long*video*")
MICRO_PATTERNS = ("samm_micro_facs_codes_v2*", "samm_micro_facs_codes*")
COLUMNS = Columns({"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
                   "type": "Type", "emotion": ("Estimated Emotion", "Emotion")},
                  required=("subject", "clip", "onset", "apex", "offset", "type"), keys=("subject", "clip", "type"))
FOLDERS = ("SAMM_longvideos", "SAMM_LongVideos", "SAMM_longvideo")
REQUEST_FROM = "M.Yap@mmu.ac.uk (licence form, subject \"SAMM long videos\")"
_FILENAME = re.compile(r"^(\d+_\d+)_\d+$")


def find_frames_dir(root: Path) -> Path:
    """`root/SAMM_longvideos` (any of its spellings), else the root itself when it holds video folders."""
    for folder in [*(root / f for f in FOLDERS), root]:
        if folder.is_dir() and any(p.is_dir() and re.match(r"^\d+_\d+$", p.name) and frames_folder(p)
                                   for p in folder.iterdir()):
            return folder
    raise MERError(f"no SAMM-LV frames in {root}: expected video folders like {root / 'SAMM_longvideos' / '006_1'} "
                   "(or point data.root at the SAMM_longvideos folder itself)")


def micro_emotions(root: Path, emotion_file: str | None) -> dict[str, list[tuple[int, str]]]:
    """Filename (lower case) -> [(onset, emotion)] from SAMM's micro-expression sheet; {} when there is none
    (and no `emotion_file` was named)."""
    try:
        sheet = find_sheet(root, MICRO_COLUMNS, "samm_lv", "micro-expression sheet", patterns=MICRO_PATTERNS,
                           annotation_file=emotion_file, option="emotion_file",
                           expected="SAMM_Micro_FACS_Codes_v2.xlsx")
    except MERError:
        if emotion_file:
            raise
        return {}
    found: dict[str, list[tuple[int, str]]] = {}
    for _, cells in sheet.rows():
        onset = as_int(cells["onset"])
        found.setdefault(cell_text(cells["clip"]).lower(), []).append(
            (onset if onset is not None else -1, emotion_name(cells["emotion"], SPELLINGS)))
    return found


@register_dataset("samm_lv", title="SAMM Long Videos", folder="SAMM_LV", fps=(FPS,), classes="megc_3",
                  protocol="loso", request_from=REQUEST_FROM, videos=True)
def read_samm_lv(root, annotation_file: str | None = None, emotion_file: str | None = None,
                 keep_onset_zero: bool = False) -> VideoTable:
    """Read SAMM-LV's videos and intervals (`keep_onset_zero`: keep the onset-0 macro rows)."""
    root = require_root(root, "samm_lv")
    sheet = find_sheet(root, COLUMNS, "samm_lv", "sheet", patterns=SHEET_PATTERNS, annotation_file=annotation_file,
                       expected="SAMM_LongVideos_V3_Release.xlsx (or V1 / V2)")
    frames_dir = find_frames_dir(root)
    emotions = micro_emotions(root, emotion_file)
    table = VideoTable([])
    rows = VideoRows("samm_lv", sheet.path.name, frames_dir, FPS, table)
    for number, cells in sheet.rows():
        filename = cell_text(cells["clip"])
        match = _FILENAME.match(filename)
        video = match.group(1) if match else filename
        subject = f"{as_int(cells['subject']):03d}" if as_int(cells["subject"]) is not None else cell_text(cells["subject"])
        onset, apex, offset = (frame_number(cells[k]) for k in ("onset", "apex", "offset"))
        if any(cell_text(cells[k]) and "." in cell_text(cells[k]) for k in ("onset", "apex", "offset")):
            table.count("fractional_frames")
        kind = interval_type(cells["type"])
        emotion = emotion_name(cells.get("emotion"), SPELLINGS)
        if kind == "micro" and not emotion:
            candidates = emotions.get(filename.lower(), [])
            if candidates and onset is not None:
                emotion = min(candidates, key=lambda c: abs(c[0] - onset))[1]
                table.count("emotion_from_micro_sheet")
            else:
                table.count("emotion_missing")
        row = IntervalRow(number, subject, video, onset, apex if apex is not None and apex >= 0 else None, offset,
                          kind, emotion, cell_text(cells["type"]))
        if onset == 0:
            if not keep_onset_zero:
                table.count("onset_zero_dropped")
                continue
            table.count("onset_zero_kept")
        rows.add(row, folders=(("Filename", video),))
    folders = Folders()
    return rows.build(lambda subject, video: folders.find(frames_dir, video))
