"""SAMM: `SAMM/006/006_1_2/006_05562.jpg` plus the sheet `SAMM_Micro_FACS_Codes_v2.xlsx`.

Quirks handled here: the sheet starts with free text and its header is on Excel row 14 (we look
for the header row by its column names, so other versions with more or fewer text rows work too);
`Subject` may be read as an integer (6) while folders are `006`; frame files are
`<subject>_<frame:05d>.jpg` with absolute frame numbers; the emotion `Other` is sometimes spelled
`others` (both become `other`); an apex outside onset..offset (or not a number) becomes the middle
frame and is counted as `apex_missing`. The root may be the folder holding `SAMM/` or `SAMM/` itself.
A clip on two sheet rows, and Subject / Filename cells that lead out of the subject's folder, are
handled in `_rows` (as for every sheet-based reader).
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers._folders import require_root
from mer_lightning.data.readers._rows import read_sheet_clips
from mer_lightning.data.readers._sheet import Columns, find_sheet
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

SHEETS = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM_Micro_FACS_Codes_v3.xlsx", "SAMM_Micro_FACS_Codes.xlsx")
COLUMNS = Columns({"subject": "Subject", "clip": "Filename", "onset": "Onset Frame", "apex": "Apex Frame",
                   "offset": "Offset Frame", "emotion": "Estimated Emotion"}, keys=("subject", "clip"), exact=True)
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other")
SPELLINGS = {"others": "other"}
REQUEST_FROM = "http://www2.docm.mmu.ac.uk/STAFF/m.yap/dataset.php (SAMM licence agreement)"
FPS = 200.0


def find_frames_dir(root: Path) -> Path:
    """`root/SAMM` when it exists, else the root itself if it holds subject folders (`006`)."""
    for folder in (root / "SAMM", root):
        if folder.is_dir() and any(p.is_dir() and p.name.isdigit() for p in folder.iterdir()):
            return folder
    raise MERError(f"no SAMM frames in {root}: expected subject folders like {root / 'SAMM' / '006'} "
                   "(or point data.root at the SAMM folder itself)")


@register_dataset("samm", title="SAMM", folder="SAMM", fps=(FPS,), classes="samm_5", protocol="loso",
                  request_from=REQUEST_FROM)
def read_samm(root, annotation_file: str | None = None) -> SampleTable:
    """Read a SAMM copy into a SampleTable (emotions lower case, labels not yet assigned)."""
    root = require_root(root, "samm")
    sheet = find_sheet(root, COLUMNS, "samm", "sheet", patterns=(*SHEETS, "SAMM_Micro_FACS_Codes*.xlsx"),
                       annotation_file=annotation_file, expected=f"one of {list(SHEETS)}")
    frames_dir = find_frames_dir(root)
    return read_sheet_clips(sheet, frames_dir, dataset="samm", subject_folder="{:03d}", emotions=EMOTIONS,
                            spellings=SPELLINGS, fps=FPS)
