"""CASME II: `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` or `Cropped/sub01/EP02_01f/reg_img46.jpg`.

Quirks handled here: the coding sheet exists under several names; some versions carry unnamed
extra columns (columns are picked by name); `Subject` is an integer while folders are `sub01`;
frame numbers are absolute; some `ApexFrame` cells hold `/` (we use the middle frame between onset
and offset and count it as `apex_missing`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mer_lightning.data.readers.common import as_int, clip_span, numbered_frames, pick_columns, require_root
from mer_lightning.data.samples import Sample, SampleTable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

SHEETS = ("CASME2-coding-20140508.xlsx", "CASME2-coding-updated.xlsx", "CASME2-coding-20190701.xlsx")
LAYOUTS = {  # folder -> frame file prefix
    "Cropped": "reg_img",
    "Cropped-updated/Cropped": "reg_img",
    "CASME2_RAW_selected": "img",
}
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e2 (CASME II licence agreement)"


def find_sheet(root: Path, annotation_file: str | None) -> Path:
    if annotation_file:
        path = Path(annotation_file)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise MERError(f"CASME II coding sheet not found: {path} (from data.annotation_file)")
        return path
    for name in SHEETS:
        for path in (root / name, *root.glob(f"*/{name}")):
            if path.is_file():
                return path
    raise MERError(f"CASME II coding sheet not found in {root}: expected one of {list(SHEETS)}; "
                   "or name yours with `data.annotation_file=...`")


def find_frames_dir(root: Path, layout: str | None) -> Path:
    if layout:
        if not (root / layout).is_dir():
            raise MERError(f"CASME II frames folder {root / layout} does not exist (data.layout={layout}); "
                           f"known layouts: {list(LAYOUTS)}")
        return root / layout
    for folder in LAYOUTS:
        if (root / folder).is_dir():
            return root / folder
    raise MERError(f"no CASME II frames folder in {root}: expected one of {list(LAYOUTS)}")


def read_casme2(root, annotation_file: str | None = None, layout: str | None = None, **_) -> SampleTable:
    """Read a CASME II copy into a SampleTable (emotions lower case, labels not yet assigned)."""
    root = require_root(root, "CASME II", REQUEST_FROM)
    sheet_path = find_sheet(root, annotation_file)
    frames_dir = find_frames_dir(root, layout)
    sheet = pick_columns(pd.read_excel(sheet_path), COLUMNS, sheet_path)
    table = SampleTable([])
    for row_number, row in enumerate(sheet.itertuples(index=False), start=2):
        subject_cell, clip, onset, apex, offset, emotion = row
        subject_no = as_int(subject_cell)
        subject = f"sub{subject_no:02d}" if subject_no is not None else str(subject_cell).strip()
        clip = str(clip).strip()
        sample_id = f"casme2/{subject}/{clip}"
        onset, apex, offset = as_int(onset), as_int(apex), as_int(offset)
        if onset is None or offset is None:
            table.skip(sample_id, f"{sheet_path.name} row {row_number}: onset/offset not numbers")
            continue
        clip_dir = frames_dir / subject / clip
        if not clip_dir.is_dir():
            table.skip(sample_id, f"{sheet_path.name} row {row_number}: clip folder {clip_dir} does not exist")
            continue
        span, problem = clip_span(numbered_frames(clip_dir), onset, offset)
        if problem:
            table.skip(sample_id, problem)
            continue
        if apex is None or not onset <= apex <= offset:
            apex = (onset + offset) // 2
            table.count("apex_missing")
        table.samples.append(Sample(
            dataset="casme2", subject=subject, clip=clip, emotion=str(emotion).strip().lower(),
            frames=tuple(p for _, p in span), frame_numbers=tuple(n for n, _ in span),
            onset=onset, apex=apex, offset=offset,
        ))
    return table
