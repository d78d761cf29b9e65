"""Sheet helpers for the readers whose annotation file's name, sheet or header spelling is not fixed
(CAS(ME)^3, CASME, MMEW): find the file and the sheet by the columns they hold, compare column names
case-insensitively, and apply a reader's table of label corrections, each counted in `table.notes`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer_lightning.data.readers.common import as_int
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")


def sheet_candidates(root: Path, keywords: tuple[str, ...], depth: int = 3) -> list[Path]:
    """Annotation files (.xlsx/.xls/.csv) in `root` and up to `depth` folders below, whose name
    contains one of `keywords` (lower case); frame folders are not listed (only folders are walked).
    Ordered by keyword (the first keyword's files first), then by path."""
    folders, level = [root], [root]
    for _ in range(depth):
        level = [p for folder in level for p in sorted(folder.iterdir()) if p.is_dir() and not _frames_folder(p)]
        folders += level
    files = [p for folder in folders for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in SHEET_SUFFIXES and not p.name.startswith(("~$", "."))]
    ranked = []
    for keyword in keywords:
        ranked += [p for p in files if keyword in p.name.lower() and p not in ranked]
    return ranked


def _frames_folder(path: Path) -> bool:
    """Folders not worth walking for a sheet: clip / video folders (their first entry is an image)."""
    try:
        first = next(iter(path.iterdir()), None)
    except OSError:
        return True
    return first is not None and first.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")


def read_sheets(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of a workbook (one for a .csv), cells as read and no header row."""
    try:
        if path.suffix.lower() == ".csv":
            return {path.stem: pd.read_csv(path, header=None)}
        return pd.read_excel(path, sheet_name=None, header=None)
    except ImportError as err:
        raise MERError(f"cannot read {path}: {err}. An .xls workbook needs `pip install xlrd`; "
                       "or save it as .xlsx / .csv and name it with `data.reader.annotation_file=...`") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file, say which
        raise MERError(f"cannot read the annotation sheet {path}: {type(err).__name__}: {err}") from None


def _header(raw: pd.DataFrame, keys: list[str], max_rows: int = 40) -> pd.DataFrame | None:
    """The table below the first row holding every `keys` name (lower case), columns lower-cased;
    index = the row number the spreadsheet shows."""
    for row in range(min(max_rows, len(raw))):
        names = [str(c).strip().lower() for c in raw.iloc[row].tolist()]
        if all(key in names for key in keys):
            table = raw.iloc[row + 1:].copy()
            table.columns = [n if n not in ("", "nan") else f"Unnamed: {i}" for i, n in enumerate(names)]
            table.index = table.index + 1
            return table.dropna(how="all")
    return None


def find_table(paths: list[Path], keys: list[str], required: list[str], what: str,
               optional: tuple[str, ...] = ()) -> tuple[Path, str, pd.DataFrame]:
    """(file, sheet name, table) of the first sheet among `paths` whose header row holds `keys`
    (case-insensitive), its `required` columns picked by name, in that order, then those of
    `optional` it has (absent ones filled with None). A sheet that has the
    keys but lacks a required column is an unknown version: a MERError lists the columns found
    and expected. No such sheet at all: a MERError naming the files and sheets looked at."""
    looked = []
    for path in paths:
        for name, raw in read_sheets(path).items():
            table = _header(raw, keys)
            if table is None:
                looked.append(f"{path.name}[{name}]")
                continue
            missing = [c for c in required if c not in table.columns]
            if missing:
                found = [c for c in table.columns if not str(c).startswith("Unnamed")]
                raise MERError(f"{path} (sheet '{name}'): an unknown version of the {what} sheet: missing "
                               f"column(s) {missing}; found columns {found}; expected {required} "
                               "(compared case-insensitively)")
            table = table[[*required, *(c for c in optional if c in table.columns)]].copy()
            for column in optional:
                if column not in table.columns:
                    table[column] = None
            return path, name, table
    raise MERError(f"no {what} sheet found: no header row with the columns {keys} in "
                   f"{', '.join(looked) or 'no annotation file'}; name the file with `data.reader.annotation_file=...`")


class ChildFolders:
    """Child folders looked up case-insensitively, each folder listed once. Only names that exist
    are returned, so a sheet cell (`..`, `/etc`) can never lead out of the folder."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, Path]] = {}

    def child(self, folder: Path | None, name: str) -> Path | None:
        if folder is None:
            return None
        if folder not in self._cache:
            self._cache[folder] = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else {}
        return self._cache[folder].get(str(name).strip().lower())


def clip_folder(folders: ChildFolders, frames_dir: Path, *names: str) -> tuple[Path, str]:
    """The folder `frames_dir/<names...>` (each matched case-insensitively) and '', or, when one is not
    there, the path as written and '' (the caller reports it missing), or a reason when a name is not
    a single folder name (`..`, `a/b`, absolute): then the row must be skipped, never followed."""
    folder: Path | None = frames_dir
    for name in names:
        folder = folders.child(folder, name)
    if folder is not None:
        return folder, ""
    for name in names:
        if name in ("", ".", "..") or re.search(r"[\\/]", name):
            return frames_dir, (f"the sheet cell '{name}' is not a single folder name: sheet paths must stay "
                                f"inside {frames_dir}; write subject and clip folder names only")
    return frames_dir.joinpath(*names), ""


@dataclass(frozen=True)
class Correction:
    """One documented label error and its fix: in the row of `subject` / `filename` (and `where`, the
    other fields it must hold) whose `field` is `old`, set `new`. `why` names the note
    (`corrected/<why>`); `source` says who documented it. `row` (optional): a 0-based data row,
    for errors known only by position (then `version_rows` must equal the sheet's row count)."""

    why: str
    field: str
    new: int
    old: int | None = None
    subject: str = ""
    filename: str = ""
    where: tuple[tuple[str, int], ...] = ()
    row: int | None = None
    version_rows: int | None = None
    source: str = ""


def apply_corrections(records: list[dict], corrections: tuple[Correction, ...], table: SampleTable,
                      sheet: str) -> None:
    """Fix `records` (dicts with subject, filename and frame fields, in sheet order) in place by
    `corrections`; each applied fix is logged and counted as `corrected/<why>` in `table.notes`.
    Content-matched corrections apply to the first matching row not corrected yet (so two rows
    with the same error take two entries in order); a version whose rows do not match is left alone."""
    done: set[tuple[int, str]] = set()
    for fix in corrections:
        if fix.row is not None:
            if fix.version_rows != len(records) or fix.row >= len(records):
                continue
            candidates = [fix.row]
        else:
            candidates = [i for i, r in enumerate(records)
                          if r["subject"].lower() == fix.subject.lower() and r["filename"].lower() == fix.filename.lower()
                          and as_int(r[fix.field]) == fix.old and (i, fix.field) not in done
                          and all(as_int(r[k]) == v for k, v in fix.where)]
        if not candidates:
            continue
        i = candidates[0]
        record = records[i]
        log.warning("%s row %s (%s %s): %s %s -> %s (%s, documented by %s)", sheet, record.get("row", i),
                    record["subject"], record["filename"], fix.field, record[fix.field], fix.new, fix.why, fix.source)
        record[fix.field] = fix.new
        done.add((i, fix.field))
        table.count(f"corrected/{fix.why}")
