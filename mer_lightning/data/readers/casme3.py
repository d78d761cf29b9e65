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

from mer_lightning.data.readers.common import (
    add_clip,
    annotation_path,
    as_int,
    require_root,
    same_clip_rows,
)
from mer_lightning.data.readers.sheets import (
    ChildFolders,
    Correction,
    apply_corrections,
    clip_folder,
    find_table,
    sheet_candidates,
)
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

FPS = 30.0
COLUMNS = ["subject", "filename", "onset", "apex", "offset", "emotion"]
EMOTIONS = ("anger", "disgust", "fear", "happy", "sad", "surprise", "others")
SPELLINGS = {"other": "others", "happiness": "happy", "sadness": "sad"}
SHEET_KEYWORDS = ("jpgindex_v2", "jpgindex", "part_a_me", "part_a")
PART_C_COLUMNS = ["sub", "count", "onset", "offset", "emotion"]
PART_C_EMOTIONS = ("negative", "positive", "surprise", "others")
PART_C_KEYWORDS = ("part_c_me", "part_c")
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
    paths = [annotation_path(root, annotation_file)] if annotation_file else sheet_candidates(root, SHEET_KEYWORDS)
    if not paths:
        raise MERError(f"CAS(ME)^3 part A annotation not found in {root} (nor up to three folders below): expected "
                       "part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx; or name yours with "
                       "`data.reader.annotation_file=...`")
    sheet_path, _, sheet = find_table(paths, COLUMNS[:2], COLUMNS, "CAS(ME)^3 part A")
    records = []
    for row_number, (subject, filename, onset, apex, offset, emotion) in zip(sheet.index, sheet.itertuples(index=False)):
        emotion = str(emotion).strip().lower()
        records.append({"row": row_number, "subject": subject_name(subject), "filename": str(filename).strip(),
                        "onset": as_int(onset), "apex": as_int(apex), "offset": as_int(offset),
                        "emotion": SPELLINGS.get(emotion, emotion)})
    apply_corrections(records, CORRECTIONS["part_A"], table, sheet_path.name)
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
    folders = ChildFolders()
    listed: dict[tuple[str, str, str], list] = {}
    for r in records:
        clip = f"{r['filename'].lower()}_{r['onset'] if r['onset'] is not None else r['row']}"
        listed.setdefault((r["subject"], clip, r["filename"]), []).append(
            (r["row"], (r["emotion"], r["onset"], r["apex"], r["offset"])))
    for (subject, clip, filename), rows in listed.items():
        sample_id = f"casme3/{subject}/{clip}"
        if len(rows) > 1 and not same_clip_rows(table, rows, sample_id, sheet_path.name):
            continue
        row_number, (emotion, onset, apex, offset) = rows[0]
        if long_videos:
            video, problem = clip_folder(folders, frames_dir, subject, filename)
            clip_dir = folders.child(video, "color") or video  # `color/`, or the images directly
        else:
            clip_dir, problem = clip_folder(folders, frames_dir, f"{subject}_{filename}_{onset}")
        if problem:
            table.skip(sample_id, f"{sheet_path.name} row {row_number}: {problem}")
            continue
        add_clip(table, dataset="casme3", subject=subject, clip=clip, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=clip_dir, where=f"{sheet_path.name} row {row_number}", emotions=EMOTIONS)


def read_part_c(root: Path, annotation_file: str | None, table: SampleTable) -> None:
    paths = [annotation_path(root, annotation_file)] if annotation_file else sheet_candidates(root, PART_C_KEYWORDS)
    if not paths:
        raise MERError(f"CAS(ME)^3 part C annotation not found in {root}: expected CAS(ME)3_part_C_ME.xlsx; "
                       "or name yours with `data.reader.part_c_annotation_file=...`")
    sheet_path, _, sheet = find_table(paths, PART_C_COLUMNS[:2], PART_C_COLUMNS, "CAS(ME)^3 part C")
    frames_dir = find_frames_dir(root, re.compile(r"^\d+$"), "part C", depth=3)
    folders = ChildFolders()
    seen: set[str] = set()
    for row_number, (sub, count, onset, offset, emotion) in zip(sheet.index, sheet.itertuples(index=False)):
        number, clip = as_int(sub), str(as_int(count) if as_int(count) is not None else count).strip()
        subject = f"C{number:02d}" if number is not None else f"C{str(sub).strip()}"
        where = f"{sheet_path.name} row {row_number}"
        if f"{subject}/{clip}" in seen:
            table.skip(f"casme3/{subject}/{clip}", f"{where}: sub {sub} count {count} is listed twice; keep one row")
            continue
        seen.add(f"{subject}/{clip}")
        padded = f"{number:02d}" if number is not None else str(sub).strip()
        clip_dir, problem = clip_folder(folders, frames_dir, padded if folders.child(frames_dir, padded)
                                        else str(number), clip)
        if problem:
            table.skip(f"casme3/{subject}/{clip}", f"{where}: {problem}")
            continue
        clip_dir = folders.child(clip_dir, "color") or clip_dir
        add_clip(table, dataset="casme3", subject=subject, clip=clip, emotion=str(emotion).strip().lower(),
                 onset=onset, apex=None, offset=offset, clip_dir=clip_dir, where=where, emotions=PART_C_EMOTIONS)


def read_casme3(root, annotation_file: str | None = None, part_c_root: str | None = None,
                part_c_annotation_file: str | None = None) -> SampleTable:
    """Read CAS(ME)^3 part A (plus part C when `part_c_root` is given) into a SampleTable (emotions
    lower case, labels not yet assigned, `fps` 30)."""
    root = require_root(root, "CAS(ME)^3", REQUEST_FROM)
    table = SampleTable([])
    read_part_a(root, annotation_file, table)
    if part_c_root:
        read_part_c(require_root(part_c_root, "CAS(ME)^3 part C", REQUEST_FROM), part_c_annotation_file, table)
    table.samples = [s.with_(fps=FPS) for s in table.samples]
    return table
