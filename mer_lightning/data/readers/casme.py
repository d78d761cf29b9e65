"""CASME (the first version, 2013): `CASME_raw_selected/sub01/EP01_5/EP01_5-045.jpg` (full colour
frames, 60 fps) or `Cropped/sub01/EP01_5/reg_EP01_5-45.jpg`, plus the coding sheet.

Quirks handled here: the sheet has no fixed name (meb's copy is `casme.xlsx`): any .xlsx/.xls/.csv
in the root or up to three folders below whose header row holds `Subject` and `Filename` is used
(columns compared case-insensitively, blank-headed columns ignored); `Subject` is an integer while
folders are `sub01`; there are two apex columns, `ApexF1` and `ApexF2`: the apex is ApexF1 (as meb),
ApexF2 where ApexF1 is blank or outside onset..offset (counted as `apex_from_apexf2`), else the
middle frame (`apex_missing`); frame numbers are absolute and the file names zero-pad them to three
digits in some clips only (we read the last number of the name, so both work); folders matched
case-insensitively; the label errors of `CORRECTIONS` are fixed, each counted as `corrected/<why>`.

Assumed where docs/formats/more_datasets.md marks a fact UNVERIFIED: the official sheet name (any
name, found by its columns); the column order (columns are picked by name); emotion spellings:
`EMOTIONS` as the CASME paper names them (amusement, contempt, disgust, fear, repression, sadness,
surprise, tense) plus `happiness`, `others`, with `SPELLINGS` for variants; anything else is skipped
and reported per row.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers._folders import Folders, require_root
from mer_lightning.data.readers._rows import ClipRow, SheetClips, sheet_records, subject_name
from mer_lightning.data.readers._sheet import (
    Columns,
    Correction,
    apply_corrections,
    as_int,
    find_sheet,
)
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

FPS = 60.0
COLUMNS = Columns({"subject": "subject", "clip": "filename", "onset": "onsetf", "apex": "apexf1",
                   "offset": "offsetf", "emotion": "emotion", "apex2": "apexf2"},
                  required=("subject", "clip", "onset", "apex", "offset", "emotion"), keys=("subject", "clip"))
EMOTIONS = ("amusement", "contempt", "disgust", "fear", "happiness", "others", "repression", "sadness",
            "surprise", "tense")
SPELLINGS = {"tension": "tense", "sad": "sadness", "happy": "happiness", "other": "others",
             "repressed": "repression", "amused": "amusement"}
LAYOUTS = ("Cropped", "CASME_raw_selected")  # face crops first, as CASME II's reader
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e1 (CASME application form + signed licence)"
MEB_ROWS = 189  # data rows of the sheet version meb fixed

# Label errors of meb's 189-row `casme.xlsx` (tvaranka/meb datasets.py L91-94): known only by row,
# not by value, so applied only to a sheet of exactly that many rows ("row" = 0-based data row,
# the spreadsheet's row + 2). Onsets and offsets fixed "based on the image folders", apexes set to
# the middle frame.
_ROW_FIXES = {40: (100, 120, 149), 42: (101, 110, 119), 43: (57, 65, 74), 54: (None, None, 40),
              140: (None, None, 142)}
CORRECTIONS: dict[str, tuple[Correction, ...]] = {
    "meb casme.xlsx (189 rows)": tuple(
        Correction(why, field, value, row=row, version_rows=MEB_ROWS, source=f"meb row {row}")
        for row, values in _ROW_FIXES.items()
        for why, field, value in zip(("onset_outside_frames", "apex_middle_frame", "offset_outside_frames"),
                                     ("onset", "apex", "offset"), values)
        if value is not None),
}


def find_frames_dir(root: Path, layout: str | None) -> tuple[Path, bool]:
    """(frames folder, whether it holds face crops)."""
    folders = Folders()
    for name in ((layout,) if layout else LAYOUTS):
        for base in (root, folders.child(root, "CASME")):
            found = folders.child(base, name)
            if found is not None:
                return found, found.name.lower() == "cropped"
    if layout:
        raise MERError(f"CASME frames folder {root / layout} does not exist (data.reader.layout={layout}); "
                       f"known layouts: {list(LAYOUTS)}")
    if folders.child(root, "sub01") is not None:
        return root, False
    raise MERError(f"no CASME frames folder in {root}: expected one of {list(LAYOUTS)} holding sub01/, sub02/, ...")


@register_dataset("casme", title="CASME", folder="CASME", fps=(FPS,), classes="casme_4", protocol="loso",
                  request_from=REQUEST_FROM)
def read_casme(root, annotation_file: str | None = None, layout: str | None = None) -> SampleTable:
    """Read a CASME copy into a SampleTable (emotions lower case, labels not yet assigned, `fps` 60)."""
    root = require_root(root, "casme")
    sheet = find_sheet(root, COLUMNS, "casme", "coding sheet", patterns=("*casme*", "*"), depth=3,
                       annotation_file=annotation_file)
    frames_dir, cropped = find_frames_dir(root, layout)
    clips = SheetClips("casme", sheet.path.name, frames_dir)
    records = sheet_records(sheet, lambda cell: subject_name(cell, "sub{:02d}"), SPELLINGS)
    for fixes in CORRECTIONS.values():
        apply_corrections(records, fixes, clips.table, sheet.path.name)
    for r in records:
        clips.add(ClipRow.from_record(r, apex2=as_int(r["apex2"])),
                  folders=(("Subject", r["subject"]), ("Filename", r["filename"])))
    folders = Folders()
    for row in clips.clips():
        onset, apex, offset, second = row.onset, row.apex, row.offset, row.extra["apex2"]
        if None not in (onset, offset, second) and not (apex is not None and onset <= apex <= offset) \
                and onset <= second <= offset:  # ApexF1 blank or outside the clip: ApexF2
            row.apex = second
            clips.table.count("apex_from_apexf2")
        clips.read(row, folders.find(frames_dir, row.subject, row.clip), EMOTIONS)
    clips.table.samples = [s.with_(fps=FPS, cropped=cropped) for s in clips.table.samples]
    return clips.table
