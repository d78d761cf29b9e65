"""CASME II: `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` or `Cropped/sub01/EP02_01f/reg_img46.jpg`.

Quirks handled here: the coding sheet exists under several names; some versions carry unnamed
extra columns (columns are picked by name); `Subject` is an integer while folders are `sub01`;
frame numbers are absolute; some `ApexFrame` cells hold `/` (we use the middle frame between onset
and offset and count it as `apex_missing`). A clip on two sheet rows, and Subject / Filename cells
that lead out of the subject's folder, are handled in `_rows` (as for every sheet-based reader).
"""

from __future__ import annotations

from mer_lightning.data.readers._folders import layout_folder, require_root
from mer_lightning.data.readers._rows import read_sheet_clips
from mer_lightning.data.readers._sheet import Columns, find_sheet
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable

SHEETS = ("CASME2-coding-20140508.xlsx", "CASME2-coding-updated.xlsx", "CASME2-coding-20190701.xlsx")
LAYOUTS = {  # folder -> frame file prefix
    "Cropped": "reg_img",
    "Cropped-updated/Cropped": "reg_img",
    "CASME2_RAW_selected": "img",
}
COLUMNS = Columns({"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
                   "offset": "OffsetFrame", "emotion": "Estimated Emotion"}, keys=("subject", "clip"), exact=True)
EMOTIONS = ("happiness", "disgust", "repression", "surprise", "others", "fear", "sadness")
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e2 (CASME II licence agreement)"
FPS = 200.0


@register_dataset("casme2", title="CASME II", folder="CASME2", fps=(FPS,), classes="casme2_5", protocol="loso",
                  request_from=REQUEST_FROM)
def read_casme2(root, annotation_file: str | None = None, layout: str | None = None) -> SampleTable:
    """Read a CASME II copy into a SampleTable (emotions lower case, labels not yet assigned)."""
    root = require_root(root, "casme2")
    sheet = find_sheet(root, COLUMNS, "casme2", "coding sheet", patterns=(*SHEETS, "CASME2-coding*.xlsx"),
                       annotation_file=annotation_file, expected=f"one of {list(SHEETS)}")
    frames_dir = layout_folder(root, layout, LAYOUTS, "CASME II", f"one of {list(LAYOUTS)}")
    table = read_sheet_clips(sheet, frames_dir, dataset="casme2", subject_folder="sub{:02d}", emotions=EMOTIONS,
                             fps=FPS)
    if frames_dir.name == "Cropped":  # face crops (Cropped, Cropped-updated/Cropped); the raw release is full frames
        table.samples = [s.with_(cropped=True) for s in table.samples]
    return table
