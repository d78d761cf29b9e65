"""CASME (the first version, 2013): `CASME_raw_selected/sub01/EP01_5/EP01_5-045.jpg` (full colour
frames, 60 fps) or `Cropped/sub01/EP01_5/reg_EP01_5-45.jpg`, plus the coding sheet.

Quirks handled here: the sheet has no fixed name (meb's copy is `casme.xlsx`): any .xlsx/.xls/.csv
in the root or up to three folders below whose header row holds `Subject` and `Filename` is used
(columns compared case-insensitively, blank-headed columns ignored); `Subject` is an integer while
folders are `sub01`; there are two apex columns, `ApexF1` and `ApexF2`: the apex is ApexF1 (as meb),
ApexF2 where ApexF1 is blank or outside onset..offset (counted as `apex_from_apexf2`), else the
middle frame (`apex_missing`); frame numbers are absolute and the file names zero-pad them to three
digits in some clips only (we read the last number of the name, so both work); folders matched
case-insensitively; the label errors of `CORRECTIONS` are fixed, each counted as `corrected/<why>`.

Assumed where docs/formats/more_datasets.md marks a fact UNVERIFIED: the official sheet name (any
name, found by its columns); the column order (columns are picked by name); emotion spellings:
`EMOTIONS` as the CASME paper names them (amusement, contempt, disgust, fear, repression, sadness,
surprise, tense) plus `happiness`, `others`, with `SPELLINGS` for variants; anything else is skipped
and reported per row.
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

FPS = 60.0
COLUMNS = ["subject", "filename", "onsetf", "apexf1", "offsetf", "emotion"]
OPTIONAL = ("apexf2",)
EMOTIONS = ("amusement", "contempt", "disgust", "fear", "happiness", "others", "repression", "sadness",
            "surprise", "tense")
SPELLINGS = {"tension": "tense", "sad": "sadness", "happy": "happiness", "other": "others",
             "repressed": "repression", "amused": "amusement"}
LAYOUTS = ("Cropped", "CASME_raw_selected")  # face crops first, as CASME II's reader
REQUEST_FROM = "http://casme.psych.ac.cn/casme/e1 (CASME application form + signed licence)"
MEB_ROWS = 189  # data rows of the sheet version meb fixed

# Label errors of meb's 189-row `casme.xlsx` (tvaranka/meb datasets.py L91-94): known only by row,
# not by value, so applied only to a sheet of exactly that many rows ("row" = 0-based data row,
# the spreadsheet's row + 2). Onsets and offsets fixed "based on the image folders", apexes set to
# the middle frame.
_ROW_FIXES = {40: (100, 120, 149), 42: (101, 110, 119), 43: (57, 65, 74), 54: (None, None, 40),
              140: (None, None, 142)}
CORRECTIONS: dict[str, tuple[Correction, ...]] = {
    "meb casme.xlsx (189 rows)": tuple(
        Correction(why, field, value, row=row, version_rows=MEB_ROWS, source=f"meb row {row}")
        for row, values in _ROW_FIXES.items()
        for why, field, value in zip(("onset_outside_frames", "apex_middle_frame", "offset_outside_frames"),
                                     ("onset", "apex", "offset"), values)
        if value is not None),
}


def find_frames_dir(root: Path, layout: str | None) -> tuple[Path, bool]:
    """(frames folder, whether it holds face crops)."""
    folders = ChildFolders()
    for name in ((layout,) if layout else LAYOUTS):
        for base in (root, folders.child(root, "CASME")):
            found = folders.child(base, name)
            if found is not None:
                return found, found.name.lower() == "cropped"
    if layout:
        raise MERError(f"CASME frames folder {root / layout} does not exist (data.reader.layout={layout}); "
                       f"known layouts: {list(LAYOUTS)}")
    if folders.child(root, "sub01") is not None:
        return root, False
    raise MERError(f"no CASME frames folder in {root}: expected one of {list(LAYOUTS)} holding sub01/, sub02/, ...")


def read_casme(root, annotation_file: str | None = None, layout: str | None = None) -> SampleTable:
    """Read a CASME copy into a SampleTable (emotions lower case, labels not yet assigned, `fps` 60)."""
    root = require_root(root, "CASME", REQUEST_FROM)
    paths = [annotation_path(root, annotation_file)] if annotation_file else sheet_candidates(root, ("casme", ""))
    frames_dir, cropped = find_frames_dir(root, layout)
    sheet_path, _, sheet = find_table(paths, COLUMNS[:2], COLUMNS, "CASME coding", optional=OPTIONAL)
    table = SampleTable([])
    records = []
    for row_number, (subject, filename, onset, apex, offset, emotion, apex2) in zip(
            sheet.index, sheet.itertuples(index=False)):
        number, emotion = as_int(subject), str(emotion).strip().lower()
        records.append({"row": row_number, "subject": f"sub{number:02d}" if number is not None else str(subject).strip(),
                        "filename": str(filename).strip(), "onset": as_int(onset), "apex": as_int(apex),
                        "apex2": as_int(apex2), "offset": as_int(offset), "emotion": SPELLINGS.get(emotion, emotion)})
    for fixes in CORRECTIONS.values():
        apply_corrections(records, fixes, table, sheet_path.name)
    folders = ChildFolders()
    listed: dict[tuple[str, str], list] = {}
    apex2 = {}
    for r in records:
        listed.setdefault((r["subject"], r["filename"]), []).append(
            (r["row"], (r["emotion"], r["onset"], r["apex"], r["offset"])))
        apex2[r["row"]] = r["apex2"]
    for (subject, filename), rows in listed.items():
        if len(rows) > 1 and not same_clip_rows(table, rows, f"casme/{subject}/{filename}", sheet_path.name):
            continue
        row_number, (emotion, onset, apex, offset) = rows[0]
        second = apex2[row_number]
        if None not in (onset, offset, second) and not (apex is not None and onset <= apex <= offset) \
                and onset <= second <= offset:
            apex = second
            table.count("apex_from_apexf2")
        clip_dir, problem = clip_folder(folders, frames_dir, subject, filename)
        if problem:
            table.skip(f"casme/{subject}/{filename}", f"{sheet_path.name} row {row_number}: {problem}")
            continue
        add_clip(table, dataset="casme", subject=subject, clip=filename, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=clip_dir, where=f"{sheet_path.name} row {row_number}", emotions=EMOTIONS)
    table.samples = [s.with_(fps=FPS, cropped=cropped) for s in table.samples]
    return table
