"""CASME II: `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` or `Cropped/sub01/EP02_01f/reg_img46.jpg`.

Quirks handled here: the coding sheet exists under several names; some versions carry unnamed
extra columns (columns are picked by name); `Subject` is an integer while folders are `sub01`;
frame numbers are absolute; some `ApexFrame` cells hold `/` (we use the middle frame between onset
and offset and count it as `apex_missing`). A clip on two sheet rows, and Subject / Filename cells
that lead out of the subject's folder, are handled in `common.read_sheet_clips` (shared with SAMM).
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers.common import (
    annotation_path,
    find_file,
    read_sheet_clips,
    require_root,
)
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

SHEETS = ("CASME2-coding-20140508.xlsx", "CASME2-coding-updated.xlsx", "CASME2-coding-20190701.xlsx")
LAYOUTS = {  # folder -> frame file prefix
    "Cropped": "reg_img",
    "Cropped-updated/Cropped": "reg_img",
    "CASME2_RAW_selected": "img",
}
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]
EMOTIONS = ("happiness", "disgust", "repression", "surprise", "others", "fear", "sadness")
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e2 (CASME II licence agreement)"
FPS = 200.0


def find_sheet(root: Path, annotation_file: str | None) -> Path:
    path = annotation_path(root, annotation_file) or find_file(root, SHEETS, ("CASME2-coding*.xlsx",))
    if path is None:
        raise MERError(f"CASME II coding sheet not found in {root}: expected one of {list(SHEETS)}; "
                       "or name yours with `data.reader.annotation_file=...`")
    return path


def find_frames_dir(root: Path, layout: str | None) -> Path:
    if layout:
        if not (root / layout).is_dir():
            raise MERError(f"CASME II frames folder {root / layout} does not exist (data.reader.layout={layout}); "
                           f"known layouts: {list(LAYOUTS)}")
        return root / layout
    for folder in LAYOUTS:
        if (root / folder).is_dir():
            return root / folder
    raise MERError(f"no CASME II frames folder in {root}: expected one of {list(LAYOUTS)}")


def read_casme2(root, annotation_file: str | None = None, layout: str | None = None) -> SampleTable:
    """Read a CASME II copy into a SampleTable (emotions lower case, labels not yet assigned)."""
    root = require_root(root, "CASME II", REQUEST_FROM)
    sheet_path = find_sheet(root, annotation_file)
    frames_dir = find_frames_dir(root, layout)
    table = read_sheet_clips(sheet_path, frames_dir, dataset="casme2", columns=COLUMNS, subject_folder="sub{:02d}",
                             emotions=EMOTIONS, fps=FPS)
    if frames_dir.name == "Cropped":  # face crops (Cropped, Cropped-updated/Cropped); the raw release is full frames
        table.samples = [s.with_(cropped=True) for s in table.samples]
    return table
