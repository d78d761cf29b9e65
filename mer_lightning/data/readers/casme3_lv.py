"""CAS(ME)^3 part A as long videos (spotting), 30 fps: every video `spNO.1/a/color/*.jpg` of the full
release with all its intervals, macro- and micro-expressions, from `CAS(ME)3_part_A_v2.xls` (sheet
`AU+Emotion`: Subject, Filename, Onset, Apex, Offset, AU, Expression type, Objective class; 3,346
macro + 860 micro intervals, 98 subjects). Frames are the release's jpg numbers, absolute within the
video, from 1, with gaps (dropped frames): an interval is placed by number, never by position.

The sheet has no emotion column (when a version has one, `emotion`, it is read): micro rows get
theirs from the part A micro-expression sheet (`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, found by
name as `data=casme3` finds it, or `data.reader.emotion_file`) by subject, video and the nearest
onset within 3 frames (counted `emotion_from_me_sheet`; micro rows left without one:
`emotion_missing`). The label scheme's `casme3:` aliases apply (the videos' source is `casme3`).

Quirks handled here: video folders matched case-insensitively (`J` / `j`), subjects spelt `spNO.1`,
`spNo.1` or 1; `Others` / `others`; an onset 0 (2 rows; frames start at 1) is clipped to the first
frame (`clipped_to_video`, and `onset_zero`); an apex 0 becomes the middle frame (`apex_missing`); a
micro-expression longer than one second (one is 3,456 frames) is kept as labelled and counted
(`micro_longer_than_1s`). `.xls` sheets need `xlrd` (or save the sheet as .xlsx).
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers._folders import Folders, require_root
from mer_lightning.data.readers._rows import emotion_name
from mer_lightning.data.readers._sheet import Columns, as_int, cell_text, find_sheet
from mer_lightning.data.readers._videos import IntervalRow, VideoRows, frame_number, interval_type
from mer_lightning.data.readers.casme3 import _SUBJECT, SPELLINGS, find_frames_dir, subject_name
from mer_lightning.data.readers.casme3 import COLUMNS as ME_COLUMNS
from mer_lightning.data.readers.casme3 import SHEET_PATTERNS as ME_PATTERNS
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.videos import VideoTable
from mer_lightning.utils.errors import MERError

FPS = 30.0
SHEET_PATTERNS = ("cas(me)3_part_a_v2*", "*part_a_v2*", "*part_a_v*")
COLUMNS = Columns({"subject": "subject", "clip": "filename", "onset": "onset", "apex": "apex", "offset": "offset",
                   "type": ("expression type", "type"), "emotion": ("emotion", "expression")},
                  required=("subject", "clip", "onset", "apex", "offset", "type"), keys=("subject", "clip", "type"))
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e4 (CAS(ME)^3 licence agreement, Institute of Psychology, CAS)"
NEAREST_ONSET = 3


def me_emotions(root: Path, emotion_file: str | None) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """(subject, video) in lower case -> [(onset, emotion)] from the part A ME sheet; {} when there is none."""
    try:
        sheet = find_sheet(root, ME_COLUMNS, "casme3_lv", "micro-expression sheet",
                           patterns=tuple(p for p in ME_PATTERNS if "jpgindex" in p), depth=3,
                           annotation_file=emotion_file, option="emotion_file",
                           expected="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    except MERError:
        if emotion_file:
            raise
        return {}
    found: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for _, cells in sheet.rows():
        onset = as_int(cells["onset"])
        key = (subject_name(cells["subject"]).lower(), cell_text(cells["clip"]).lower())
        found.setdefault(key, []).append((onset if onset is not None else -10**9, emotion_name(cells["emotion"],
                                                                                                SPELLINGS)))
    return found


@register_dataset("casme3_lv", title="CAS(ME)^3 long videos", folder="CASME3", fps=(FPS,), classes="megc_3",
                  protocol="loso", request_from=REQUEST_FROM, videos=True)
def read_casme3_lv(root, annotation_file: str | None = None, emotion_file: str | None = None) -> VideoTable:
    """Read CAS(ME)^3 part A's long videos with every macro- and micro-expression interval."""
    root = require_root(root, "casme3_lv")
    sheet = find_sheet(root, COLUMNS, "casme3_lv", "part A sheet", patterns=SHEET_PATTERNS, depth=3,
                       annotation_file=annotation_file, expected="part_A/annotation/CAS(ME)3_part_A_v2.xls")
    frames_dir = find_frames_dir(root, _SUBJECT, "part A")
    emotions = me_emotions(root, emotion_file)
    table = VideoTable([])
    rows = VideoRows("casme3_lv", sheet.path.name, frames_dir, FPS, table)
    for number, cells in sheet.rows():
        subject, video = subject_name(cells["subject"]), cell_text(cells["clip"])
        onset, apex, offset = (frame_number(cells[k]) for k in ("onset", "apex", "offset"))
        kind = interval_type(cells["type"])
        emotion = emotion_name(cells.get("emotion"), SPELLINGS)
        if kind == "micro" and not emotion:
            near = [c for c in emotions.get((subject.lower(), video.lower()), [])
                    if onset is not None and abs(c[0] - onset) <= NEAREST_ONSET]
            if near:
                emotion = min(near, key=lambda c: abs(c[0] - onset))[1]
                table.count("emotion_from_me_sheet")
            else:
                table.count("emotion_missing")
        if onset == 0:
            table.count("onset_zero")
        if kind == "micro" and onset is not None and offset is not None and offset - onset + 1 > FPS:
            table.count("micro_longer_than_1s")
        rows.add(IntervalRow(number, subject, video.lower(), onset, apex or None, offset, kind, emotion,
                             cell_text(cells["type"])), folders=(("Subject", subject), ("Filename", video)))
    folders = Folders()

    def locate(subject: str, video: str) -> Path | None:
        found = folders.child(folders.child(frames_dir, subject), video)
        return folders.child(found, "color") or found  # `color/`, or the images directly

    return rows.build(locate, source="casme3")
