"""CAS(ME)^3 part A (and part C when `part_c_root` is given), 30 fps, full RGB frames.

Part A, full release: `part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet `label`:
Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion) and the long videos'
frames `part_A/data/part_A_split/part_A/spNO.1/a/color/355.jpg` (absolute frame numbers from 1,
no zero padding). A micro-expression is the span onset..offset of its video, so one video folder
holds several clips: a sample is `casme3/spNO.1/a_355` (Filename_Onset). Part C:
`CAS(ME)3_part_C_ME.xlsx` (sheet `mockCrimeME`: sub, count, onset, offset, au, emotion; no apex)
and `ME_C/01/1/color/*.jpg`; its subjects become `C01`, `C02`, ... (other people than part A).

Quirks handled here: the annotation file is found by name (`*JpgIndex_v2*`, then `*JpgIndex*`,
then any `*part_A*` workbook, up to three folders below the root) and its sheet by its columns
(`label` in v2, `Sheet1` in v1, whose two extra unnamed columns are ignored), with column names
compared case-insensitively; emotions lower-cased (`Others` 3 times in v2); clip folders matched
case-insensitively (the sheet's `J` for spNO.14, the release's `spNo` spelling); several MEs
sharing one Filename get distinct ids by their onset (counted as `corrected/shared_filename`, one
per extra ME); the label errors in `CORRECTIONS` are fixed, each counted as `corrected/<why>`;
part C has no apex: the middle frame, counted as `apex_missing` (as an apex outside onset..offset).
A clip (part A: Filename_Onset; part C: sub and count) on two rows is read once when they agree and
left out when they do not, naming the rows (`_rows.SheetClips`, as for every sheet-based reader).

Assumed where docs/formats/more_datasets.md marks a fact UNVERIFIED: part C's frames lie in
`ME_C/<sub zero-padded to 2>/<count>/color/` as meb expects (a `<count>` folder holding the images
directly, and unpadded subject folders, are accepted too); the third-party per-ME release
`Part_A_ME_clip/frame/spNO.1_a_355/` (either spelling) is accepted and its file names are assumed
to carry the long video's absolute frame numbers, as the full release's do. `.xls` sheets (v1,
part C's `organize`) need `xlrd`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_lightning.data.readers._folders import Folders, require_root
from mer_lightning.data.readers._rows import ClipRow, SheetClips, emotion_name, sheet_records
from mer_lightning.data.readers._sheet import (
    Columns,
    Correction,
    apply_corrections,
    as_int,
    cell_text,
    find_sheet,
)
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

FPS = 30.0
COLUMNS = Columns({"subject": "subject", "clip": "filename", "onset": "onset", "apex": "apex", "offset": "offset",
                   "emotion": "emotion"}, keys=("subject", "clip"))
EMOTIONS = ("anger", "disgust", "fear", "happy", "sad", "surprise", "others")
SPELLINGS = {"other": "others", "happiness": "happy", "sadness": "sad"}
SHEET_PATTERNS = ("*jpgindex_v2*", "*jpgindex*", "*part_a_me*", "*part_a*")
PART_C_COLUMNS = Columns({"subject": "sub", "clip": "count", "onset": "onset", "offset": "offset",
                          "emotion": "emotion"}, keys=("subject", "clip"))
PART_C_EMOTIONS = ("negative", "positive", "surprise", "others")
PART_C_PATTERNS = ("*part_c_me*", "*part_c*")
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e4 (CAS(ME)^3 licence agreement, Institute of Psychology, CAS)"
_SUBJECT = re.compile(r"^sp\s*no\.?\s*(\d+)$", re.IGNORECASE)
_ME_CLIP = re.compile(r"^spno\.(\d+)_([a-z]+)_(\d+)$", re.IGNORECASE)

# Label errors of the part A sheets (v1 and v2 JpgIndex files), fixed as meb does (tvaranka/meb
# datasets.py L471-499 at f731b0a; rows 128, 749, 796, 798 also in C3's
# `CAS(ME)3_part_A_wrongly_labeled_me_in_V1.xlsx`). Matched by content (subject, filename, the wrong
# value), never by row position, so a version that already fixed a row is left alone. "meb row" is
# meb's 0-based data row (the spreadsheet's row + 2).
CORRECTIONS: dict[str, tuple[Correction, ...]] = {
    "part_A": (
        # meb row 128: apex 83 before onset 112
        Correction("apex_before_onset", "apex", 123, old=83, subject="spNO.149", filename="d",
                   where=(("onset", 112),), source="meb row 128"),
        # meb row 749: onset typo
        Correction("onset_typo", "onset", 2647, old=3647, subject="spNO.216", filename="d", source="meb row 749"),
        # meb row 708: offset typo
        Correction("offset_typo", "offset", 34, old=3460, subject="spNO.214", filename="c", source="meb row 708"),
        # meb rows 796 / 798: offset 0 (the first such row in sheet order gets 1845, the second 2403)
        Correction("offset_zero", "offset", 1845, old=0, subject="spNO.40", filename="e", source="meb row 796"),
        Correction("offset_zero", "offset", 2403, old=0, subject="spNO.40", filename="e", source="meb row 798"),
        # meb row 750: onset and apex 0 (frames start at 1)
        Correction("onset_zero", "onset", 1, old=0, subject="spNO.216", filename="e", source="meb row 750"),
        Correction("apex_zero", "apex", 1, old=0, subject="spNO.216", filename="e", source="meb row 750"),
    ),
    "part_C": (),  # none documented (its Chinese comma in an AU cell does not concern the labels)
}


def find_frames_dir(root: Path, pattern: re.Pattern, what: str, depth: int = 5) -> Path:
    """The first folder (breadth first, up to `depth` below `root`) with a child folder matching `pattern`."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            children = [p for p in sorted(folder.iterdir()) if p.is_dir()]
            if any(pattern.match(p.name) for p in children):
                return folder
        level = [p for folder in level for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    raise MERError(f"no CAS(ME)^3 {what} frames found in {root}: expected folders like "
                   f"{root / 'part_A/data/part_A_split/part_A/spNO.1/a/color'} (or point data.root at them)")


def subject_name(cell) -> str:
    """`spNO.1` from `spNO.1`, `spNo.1`, `sp NO. 1` or 1."""
    number = as_int(cell)
    match = _SUBJECT.match(str(cell).strip())
    if match:
        number = int(match.group(1))
    return f"spNO.{number}" if number is not None else str(cell).strip()


def read_part_a(root: Path, annotation_file: str | None, table: SampleTable) -> None:
    sheet = find_sheet(root, COLUMNS, "casme3", "part A annotation", patterns=SHEET_PATTERNS, depth=3,
                       annotation_file=annotation_file,
                       expected="part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    records = sheet_records(sheet, subject_name, SPELLINGS)
    apply_corrections(records, CORRECTIONS["part_A"], table, sheet.path.name)
    per_video: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r["subject"].lower(), r["filename"].lower())
        per_video[key] = per_video.get(key, 0) + 1
    shared = sum(n - 1 for n in per_video.values())
    if shared:
        table.count("corrected/shared_filename", shared)

    long_videos = True
    try:
        frames_dir = find_frames_dir(root, _SUBJECT, "part A")
    except MERError:
        frames_dir, long_videos = find_frames_dir(root, _ME_CLIP, "part A"), False
    clips = SheetClips("casme3", sheet.path.name, frames_dir, table)
    for r in records:
        clip = f"{r['filename'].lower()}_{r['onset'] if r['onset'] is not None else r['row']}"
        clips.add(ClipRow.from_record(r, clip, filename=r["filename"]),
                  folders=(("Subject", r["subject"]), ("Filename", r["filename"])))
    folders = Folders()
    for row in clips.clips():
        if long_videos:
            video = folders.find(frames_dir, row.subject, row.extra["filename"])
            clip_dir = folders.child(video, "color") or video  # `color/`, or the images directly
        else:
            clip_dir = folders.find(frames_dir, f"{row.subject}_{row.extra['filename']}_{row.onset}")
        clips.read(row, clip_dir, EMOTIONS)


def read_part_c(root: Path, annotation_file: str | None, table: SampleTable) -> None:
    sheet = find_sheet(root, PART_C_COLUMNS, "casme3", "part C annotation", patterns=PART_C_PATTERNS, depth=3,
                       annotation_file=annotation_file, expected="CAS(ME)3_part_C_ME.xlsx",
                       option="part_c_annotation_file")
    frames_dir = find_frames_dir(root, re.compile(r"^\d+$"), "part C", depth=3)
    clips = SheetClips("casme3", sheet.path.name, frames_dir, table)
    folders = Folders()
    for number, cells in sheet.rows():
        sub, count = as_int(cells["subject"]), as_int(cells["clip"])
        count = str(count) if count is not None else cell_text(cells["clip"])
        name = f"{sub:02d}" if sub is not None else cell_text(cells["subject"])
        folder = name if sub is None or folders.child(frames_dir, name) else str(sub)  # `01`, else `1`
        clips.add(ClipRow(number, f"C{name}", count, emotion_name(cells["emotion"]), as_int(cells["onset"]), None,
                          as_int(cells["offset"]), {"folder": folder}), folders=(("sub", folder), ("count", count)))
    for row in clips.clips():
        clip_dir = folders.find(frames_dir, row.extra["folder"], row.clip)
        clips.read(row, folders.child(clip_dir, "color") or clip_dir, PART_C_EMOTIONS)


@register_dataset("casme3", title="CAS(ME)^3", folder="CASME3", fps=(FPS,), classes="casme3_7", protocol="loso",
                  request_from=REQUEST_FROM)
def read_casme3(root, annotation_file: str | None = None, part_c_root: str | None = None,
                part_c_annotation_file: str | None = None) -> SampleTable:
    """Read CAS(ME)^3 part A (plus part C when `part_c_root` is given) into a SampleTable (emotions
    lower case, labels not yet assigned, `fps` 30)."""
    root = require_root(root, "casme3")
    table = SampleTable([])
    read_part_a(root, annotation_file, table)
    if part_c_root:
        read_part_c(require_root(part_c_root, "casme3", "part C"), part_c_annotation_file, table)
    table.samples = [s.with_(fps=FPS) for s in table.samples]
    return table
