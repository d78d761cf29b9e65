"""MMEW: `MMEW_Final/Micro_Expression/<emotion>/<Filename>/1.jpg` + `MMEW_Final/MMEW_Micro_Exp.xlsx`
(Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion, remarks).

Quirks handled here: the sheet's emotion `others` lives in the folder `repression` (the folder
is looked up under the sheet's emotion first, then `repression`; each clip found that way is counted
as `others_in_repression_folder`); both known layouts are read: meb's `Micro_Expression/<emotion>/
<Filename>/` (no subject level) and the official description's `S03/<emotion>/S03-01-002/`; the root
may be `MMEW_Final`, the folder holding it, or the folder holding `Micro_Expression`; the sheet is
found by name (`MMEW_Micro_Exp*`) or else by its columns, compared case-insensitively; folders
matched case-insensitively; frame files `1.jpg`, `2.jpg`, ... ordered by number.

Assumed where docs/formats/more_datasets.md marks a fact UNVERIFIED or gives no source: 90 fps
(`FPS`, third-party code only); the sheet's frame numbers are the file numbers (`1.jpg` is frame
1); an integer `Subject` cell means folder `S01`-style names (`S{:02d}`), text cells are kept as
written; the emotion spellings `SPELLINGS`. meb re-estimates apex and offset of 16 rows from optical
flow; the formats file names the rows but not the values, so `CORRECTIONS` is empty and those
rows are read as annotated.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers._folders import Folders, require_root
from mer_lightning.data.readers._rows import ClipRow, SheetClips, sheet_records, subject_name
from mer_lightning.data.readers._sheet import (
    Columns,
    Correction,
    apply_corrections,
    find_sheet,
)
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

FPS = 90.0
COLUMNS = Columns({"subject": "subject", "clip": "filename", "onset": "onsetframe", "apex": "apexframe",
                   "offset": "offsetframe", "emotion": "estimated emotion"}, keys=("subject", "clip"))
EMOTIONS = ("anger", "disgust", "fear", "happiness", "others", "sadness", "surprise")
SPELLINGS = {"other": "others", "repression": "others", "happy": "happiness", "sad": "sadness", "angry": "anger"}
FOLDER_OF = {"others": "repression"}  # the sheet's emotion -> the folder the release uses
REQUEST_FROM = ("http://www.dpailab.com/database.html (MMEW: signed licence agreement, scanned copy to "
                "benxianyeye@163.com)")
CORRECTIONS: dict[str, tuple[Correction, ...]] = {"MMEW_Micro_Exp.xlsx": ()}  # none with documented values


def find_frames_dir(root: Path) -> tuple[Path, bool]:
    """(frames folder, whether it has a subject level: `S03/<emotion>/<Filename>`)."""
    folders = Folders()
    for base in (root, folders.child(root, "MMEW_Final"), folders.child(root, "MMEW")):
        found = folders.child(base, "Micro_Expression")
        if found is not None:
            return found, False
    for base in (root, folders.child(root, "MMEW_Final")):
        if base is not None and any(folders.child(base, e) for e in (*EMOTIONS, "repression")):
            return base, False
    for base in (root, folders.child(root, "MMEW_Final")):
        if base is not None and any(p.is_dir() and p.name[:1] in "sS" and p.name[1:].isdigit() for p in base.iterdir()):
            return base, True
    raise MERError(f"no MMEW frames in {root}: expected {root / 'MMEW_Final/Micro_Expression/happiness'} "
                   "(or subject folders S01/happiness/...)")


@register_dataset("mmew", title="MMEW", folder="MMEW", fps=(FPS,), classes="mmew_7", protocol="loso",
                  request_from=REQUEST_FROM)
def read_mmew(root, annotation_file: str | None = None) -> SampleTable:
    """Read an MMEW copy into a SampleTable (emotions lower case, labels not yet assigned, `fps` 90)."""
    root = require_root(root, "mmew")
    sheet = find_sheet(root, COLUMNS, "mmew", "micro-expression sheet", patterns=("*mmew_micro*", "*"), depth=3,
                       annotation_file=annotation_file)
    frames_dir, by_subject = find_frames_dir(root)
    clips = SheetClips("mmew", sheet.path.name, frames_dir)
    records = sheet_records(sheet, lambda cell: subject_name(cell, "S{:02d}"), SPELLINGS)
    for fixes in CORRECTIONS.values():
        apply_corrections(records, fixes, clips.table, sheet.path.name)
    for r in records:
        clips.add(ClipRow.from_record(r), folders=(("Subject", r["subject"]),) * by_subject + (("Filename", r["filename"]),))
    folders = Folders()
    for row in clips.clips():
        base = (row.subject,) * by_subject
        clip_dir = folders.find(frames_dir, *base, row.emotion, row.clip)
        if not clip_dir.is_dir() and row.emotion in FOLDER_OF:
            moved = folders.find(frames_dir, *base, FOLDER_OF[row.emotion], row.clip)
            if moved.is_dir():
                clip_dir = moved
                clips.table.count(f"{row.emotion}_in_{FOLDER_OF[row.emotion]}_folder")
        clips.read(row, clip_dir, EMOTIONS)
    clips.table.samples = [s.with_(fps=FPS, cropped=not by_subject) for s in clips.table.samples]
    return clips.table
