"""CAS(ME)^2 (spotting; "CASME_sq"), 30 fps long videos: `rawpic/s15/15_0101disgustingteeth/img001.jpg`
(full frames) or `cropped/s15/15_0101disgustingteeth/img_1.jpg` (face crops), plus the code file
`CAS(ME)^2code_final.xlsx` (also distributed as `code_final.xlsx`).

The code file has three sheets and no header row: `CASFEcode_final` (subject id, `anger1_1`-style
video and interval index, onset, apex, offset, AUs, emotion, type `macro-expression` /
`micro-expression`, self-report), `naming rule1` (folder number, subject folder, subject id:
`15 | s15 | 1`) and `naming rule2` (video code, video: `0101 | disgust1`, the code sometimes stored
as the number 101). A row's video folder is found from the two rules: subject id 1 -> `s15`, video
`disgust1` -> code `0101` -> the folder whose name starts with `15_0101` (matched by that prefix: one
real folder is spelt `15_0503unnyfarting`).

Quirks handled here: frame numbers are 1-based and are the numbers in the file names; an offset 0
(44 macro rows) means the offset is the apex (as MEAN reads it; counted `offset_zero`); an apex 0
(s17 anger1_1), or one outside onset..offset (offset before apex: s11 disgust1_5, s14 happy2_1,
s15 anger1_12), becomes the interval's middle frame (`apex_missing`); emotions lower case. What
`_videos.VideoRows` checks for every long-video reader (onset after offset, intervals outside the
video, missing folders) is skipped or clipped there, one line per row. Videos without any annotated
interval are not read (counted `videos_without_intervals`), as in the MEGC protocols.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mer_lightning.data.readers._folders import Folders, frames_folder, layout_folder, require_root
from mer_lightning.data.readers._rows import emotion_name
from mer_lightning.data.readers._sheet import (
    annotation_path,
    as_int,
    cell_text,
    read_workbook,
    sheet_files,
)
from mer_lightning.data.readers._videos import IntervalRow, VideoRows, frame_number, interval_type
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.videos import VideoTable
from mer_lightning.utils.errors import MERError

FPS = 30.0
SHEET_PATTERNS = ("cas(me)^2code_final*", "*code_final*", "cas(me)*2*")
CODES, RULE1, RULE2 = "casfecode_final", "naming rule1", "naming rule2"
LAYOUTS = ("rawpic", "cropped")
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e3 (CAS(ME)^2 licence agreement)"
_CLIP = re.compile(r"^(.*?)_(\d+)$")


def read_code_file(path: Path) -> dict[str, pd.DataFrame]:
    """The code file's sheets by lower-case name, cells as read (no header)."""
    return {name.strip().lower(): raw for name, raw in read_workbook(path)}


def naming_rules(sheets: dict[str, pd.DataFrame], path: Path) -> tuple[dict[int, tuple[str, int]], dict[str, str]]:
    """(subject id -> (subject folder, folder number), video -> four-digit code) from the naming sheets."""
    missing = [name for name in (RULE1, RULE2) if name not in sheets]
    if missing:
        raise MERError(f"{path} has no sheet(s) {missing} (found {sorted(sheets)}): CAS(ME)^2's code file names the "
                       "video folders through its `naming rule1` and `naming rule2` sheets; use the release's file "
                       "(data.reader.annotation_file=...)")
    subjects = {}
    for cells in sheets[RULE1].itertuples(index=False):
        number, folder, subject = as_int(cells[0]), cell_text(cells[1]), as_int(cells[2]) if len(cells) > 2 else None
        if number is not None and folder and subject is not None:
            subjects[subject] = (folder, number)
    videos = {}
    for cells in sheets[RULE2].itertuples(index=False):
        code, video = cell_text(cells[0]), cell_text(cells[1]).lower() if len(cells) > 1 else ""
        if code.isdigit() and video:
            videos[video] = code.zfill(4)
    return subjects, videos


@register_dataset("cas2", title="CAS(ME)^2", folder="CASME_sq", fps=(FPS,), classes="megc_3", protocol="loso",
                  request_from=REQUEST_FROM, videos=True)
def read_cas2(root, annotation_file: str | None = None, layout: str | None = None) -> VideoTable:
    """Read CAS(ME)^2's long videos and their intervals (`layout`: rawpic or cropped; null: rawpic if there)."""
    root = require_root(root, "cas2")
    path = annotation_path(root, annotation_file)
    if path is None:
        found = sheet_files(root, SHEET_PATTERNS, depth=1)
        if not found:
            raise MERError(f"CAS(ME)^2 code file not found in {root}: expected CAS(ME)^2code_final.xlsx (or "
                           "code_final.xlsx); or name yours with `data.reader.annotation_file=...`")
        path = found[0]
    sheets = read_code_file(path)
    codes = sheets.get(CODES)
    if codes is None:
        candidates = [name for name in sheets if name not in (RULE1, RULE2)]
        if not candidates:
            raise MERError(f"{path} has no `CASFEcode_final` sheet (found {sorted(sheets)})")
        codes = sheets[candidates[0]]
    subjects, video_codes = naming_rules(sheets, path)
    frames_dir = layout_folder(root, layout, LAYOUTS, "CAS(ME)^2",
                               f"{root / 'rawpic'} (full frames, rawpic/s15/15_0101disgustingteeth/img001.jpg) or "
                               f"{root / 'cropped'}", known_only=True)
    table = VideoTable([])
    rows = VideoRows("cas2", path.name, frames_dir, FPS, table)
    for i, cells in enumerate(codes.itertuples(index=False)):
        cells = list(cells) + [None] * (8 - len(cells))
        subject_id, clip = as_int(cells[0]), cell_text(cells[1])
        if subject_id is None and not clip:
            continue  # a blank line
        match = _CLIP.match(clip)
        video = (match.group(1) if match else clip).lower()
        folder = subjects.get(subject_id, (f"id{cell_text(cells[0])}", None))[0]
        onset, apex, offset = (frame_number(c) for c in cells[2:5])
        if offset == 0 and apex:
            offset = apex
            table.count("offset_zero")
        row = IntervalRow(i + 1, folder, video, onset, apex or None, offset, interval_type(cells[7]),
                          emotion_name(cells[6]), cell_text(cells[7]))
        if subject_id not in subjects:
            rows.skip(row, f"subject id {cell_text(cells[0])} is not in the `naming rule1` sheet")
            continue
        if video not in video_codes:
            rows.skip(row, f"video '{video}' (from '{clip}') is not in the `naming rule2` sheet")
            continue
        rows.add(row, folders=(("subject", folder),))

    listed = Folders()
    located: dict[tuple[str, str], Path | None] = {}

    def locate(subject: str, video: str) -> Path | None:
        if (subject, video) not in located:
            subject_dir = listed.child(frames_dir, subject)
            number = next(n for f, n in subjects.values() if f == subject)
            prefix = f"{number}_{video_codes[video]}"
            found = None
            if subject_dir is not None:
                found = next((p for p in sorted(subject_dir.iterdir()) if p.is_dir() and p.name.startswith(prefix)),
                             None)
            located[(subject, video)] = found if found is not None else (subject_dir or frames_dir / subject) / prefix
        return located[(subject, video)]

    rows.build(locate, cropped=frames_dir.name == "cropped", name=lambda s, v: locate(s, v).name)
    annotated = {v.folder for v in table.videos}
    on_disk = [p for s in frames_dir.iterdir() if s.is_dir() for p in s.iterdir() if p.is_dir() and frames_folder(p)]
    unannotated = sum(p not in annotated for p in on_disk)
    if unannotated:
        table.count("videos_without_intervals", unannotated)
    return table
