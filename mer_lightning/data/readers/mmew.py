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

FPS = 90.0
COLUMNS = ["subject", "filename", "onsetframe", "apexframe", "offsetframe", "estimated emotion"]
EMOTIONS = ("anger", "disgust", "fear", "happiness", "others", "sadness", "surprise")
SPELLINGS = {"other": "others", "repression": "others", "happy": "happiness", "sad": "sadness", "angry": "anger"}
FOLDER_OF = {"others": "repression"}  # the sheet's emotion -> the folder the release uses
REQUEST_FROM = ("http://www.dpailab.com/database.html (MMEW: signed licence agreement, scanned copy to "
                "benxianyeye@163.com)")
CORRECTIONS: dict[str, tuple[Correction, ...]] = {"MMEW_Micro_Exp.xlsx": ()}  # none with documented values


def find_frames_dir(root: Path) -> tuple[Path, bool]:
    """(frames folder, whether it has a subject level: `S03/<emotion>/<Filename>`)."""
    folders = ChildFolders()
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


def read_mmew(root, annotation_file: str | None = None) -> SampleTable:
    """Read an MMEW copy into a SampleTable (emotions lower case, labels not yet assigned, `fps` 90)."""
    root = require_root(root, "MMEW", REQUEST_FROM)
    paths = [annotation_path(root, annotation_file)] if annotation_file else sheet_candidates(root, ("mmew_micro", ""))
    frames_dir, by_subject = find_frames_dir(root)
    sheet_path, _, sheet = find_table(paths, COLUMNS[:2], COLUMNS, "MMEW micro-expression")
    table = SampleTable([])
    records = []
    for row_number, (subject, filename, onset, apex, offset, emotion) in zip(sheet.index, sheet.itertuples(index=False)):
        number, emotion = as_int(subject), str(emotion).strip().lower()
        records.append({"row": row_number, "subject": f"S{number:02d}" if number is not None else str(subject).strip(),
                        "filename": str(filename).strip(), "onset": as_int(onset), "apex": as_int(apex),
                        "offset": as_int(offset), "emotion": SPELLINGS.get(emotion, emotion)})
    for fixes in CORRECTIONS.values():
        apply_corrections(records, fixes, table, sheet_path.name)
    listed: dict[tuple[str, str], list] = {}
    for r in records:
        listed.setdefault((r["subject"], r["filename"]), []).append(
            (r["row"], (r["emotion"], r["onset"], r["apex"], r["offset"])))
    folders = ChildFolders()
    for (subject, filename), rows in listed.items():
        sample_id = f"mmew/{subject}/{filename}"
        if len(rows) > 1 and not same_clip_rows(table, rows, sample_id, sheet_path.name):
            continue
        row_number, (emotion, onset, apex, offset) = rows[0]
        base = (*(subject,) * by_subject,)
        clip_dir, problem = clip_folder(folders, frames_dir, *base, emotion, filename)
        if not problem and not clip_dir.is_dir() and emotion in FOLDER_OF:
            moved, problem = clip_folder(folders, frames_dir, *base, FOLDER_OF[emotion], filename)
            if moved.is_dir():
                clip_dir = moved
                table.count(f"{emotion}_in_{FOLDER_OF[emotion]}_folder")
        if problem:
            table.skip(sample_id, f"{sheet_path.name} row {row_number}: {problem}")
            continue
        add_clip(table, dataset="mmew", subject=subject, clip=filename, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=clip_dir, where=f"{sheet_path.name} row {row_number}", emotions=EMOTIONS)
    table.samples = [s.with_(fps=FPS, cropped=not by_subject) for s in table.samples]
    return table
