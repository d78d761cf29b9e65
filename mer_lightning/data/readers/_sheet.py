"""Annotation sheets for the readers: find the file and the sheet by the columns it holds, read cells,
and apply a reader's table of documented label corrections (each counted in `table.notes`).

One way for every reader: `Columns` says which columns a reader needs and how each may be spelled;
`find_sheet` tries the candidate files (by name, then any .xlsx/.xls/.csv, up to `depth` folders
below the root; clip folders are not walked) and each sheet of a workbook until one has a header row
(within its first 40 rows, below any free text) holding the `keys` columns. Names are compared as
written (`exact`, CASME II and SAMM) or case-, space- and underscore-insensitively (the others).
A header with the keys but without a required column is an unknown version of the sheet: a MERError
lists the columns missing, found and expected. The table's index is each row's number as the
spreadsheet shows it, for messages that name the row.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from mer_lightning.data.readers._folders import frames_folder
from mer_lightning.data.registry import dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")
MAX_HEADER_ROW = 40


@dataclass(frozen=True)
class Columns:
    """The columns a reader reads: canonical name (subject, clip, onset, ...) -> its spellings, the
    likeliest first (one spelling may be given as a string).

    `required` (default: all) must be in the header row, `keys` (default: the required ones) find it;
    the others are optional (None where absent). `exact`: compare names as written (else case-, space-
    and underscore-insensitively)."""

    spellings: dict[str, tuple[str, ...]]
    required: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    exact: bool = False

    def __post_init__(self):
        object.__setattr__(self, "spellings", {c: (s,) if isinstance(s, str) else tuple(s)
                                               for c, s in self.spellings.items()})

    @property
    def needed(self) -> tuple[str, ...]:
        return self.required or tuple(self.spellings)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.keys or self.needed

    def key(self, name) -> str:
        """A header cell as it is compared."""
        text = str(name).strip()
        return text if self.exact else " ".join(text.replace("_", " ").split()).lower()

    def label(self, name: str) -> str:
        """How the sheet spells column `name` (its first spelling), for messages."""
        return self.spellings[name][0]

    def expected(self) -> list[str]:
        """The required columns with their spellings, for messages."""
        return [f"{c} ({' / '.join(self.spellings[c])})" for c in self.needed]


@dataclass
class Sheet:
    """The table of an annotation sheet: `table` has the columns of `columns` (canonical names), and
    its index is each row's number as the spreadsheet shows it."""

    path: Path
    name: str
    columns: Columns
    table: pd.DataFrame = field(repr=False)

    def rows(self) -> Iterator[tuple[int, dict]]:
        """(row number as the spreadsheet shows it, {column: cell}) for each row."""
        names = list(self.table.columns)
        for number, row in zip(self.table.index, self.table.itertuples(index=False)):
            yield number, dict(zip(names, row))


def find_header(raw: pd.DataFrame, columns: Columns) -> pd.DataFrame | None:
    """The table below the first row naming every key column, its columns renamed to the canonical
    names (required, then optional ones; None where absent); None when no row within the first
    `MAX_HEADER_ROW` does. A MERError (the caller adds the file) when that row lacks a required column."""
    for row in range(min(MAX_HEADER_ROW, len(raw))):
        cells = [columns.key(c) for c in raw.iloc[row].tolist()]
        where = {}
        for canonical, spellings in columns.spellings.items():
            hit = next((cells.index(columns.key(s)) for s in spellings if columns.key(s) in cells), None)
            if hit is not None:
                where[canonical] = hit
        if not all(c in where for c in columns.key_columns):
            continue
        missing = [columns.key(columns.label(c)) for c in columns.needed if c not in where]
        if missing:
            found = [c for c in cells if c not in ("", "nan")]
            case = "" if columns.exact else " (compared case-insensitively)"
            raise MERError(f"missing column(s) {missing}; found columns {found}; expected {columns.expected()}{case}")
        table = raw.iloc[row + 1:, list(where.values())].copy()
        table.columns = list(where)
        table.index = table.index + 1
        for name in columns.spellings:
            if name not in table.columns:
                table[name] = None
        return table.dropna(how="all")
    return None


def read_workbook(path: Path) -> Iterator[tuple[str, pd.DataFrame]]:
    """(sheet name, cells as read with no header) for each sheet of a workbook, read one at a time (a .csv
    is one sheet); a file that cannot be read is a MERError naming it."""
    try:
        if path.suffix.lower() == ".csv":
            yield path.stem, pd.read_csv(path, header=None)
            return
        book = pd.ExcelFile(path)
        names = book.sheet_names
    except ImportError as err:
        raise MERError(f"cannot read {path}: {err}. An .xls workbook needs `pip install xlrd`; "
                       "or save it as .xlsx / .csv and name it with `data.reader.annotation_file=...`") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file, say which
        raise MERError(f"cannot read the annotation sheet {path}: {type(err).__name__}: {err}") from None
    with book:
        for name in names:
            try:
                raw = book.parse(name, header=None)
            except Exception as err:  # noqa: BLE001
                raise MERError(f"cannot read the annotation sheet {path} (sheet '{name}'): "
                               f"{type(err).__name__}: {err}") from None
            yield str(name), raw


def sheet_files(root: Path, patterns: tuple[str, ...], depth: int = 1, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Annotation files (.xlsx/.xls/.csv) in `root` and up to `depth` folders below whose name matches one
    of `patterns` (shell patterns, compared in lower case), ordered by the first pattern they match, then
    by folder level and path. Clip folders are not walked; lock files (`~$`), hidden files and names
    holding one of `exclude` are left out."""
    folders, level = [root], [root]
    for _ in range(depth):
        level = [p for folder in level for p in sorted(folder.iterdir()) if p.is_dir() and not frames_folder(p)]
        folders += level
    files = [p for folder in folders for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in SHEET_SUFFIXES and not p.name.startswith(("~$", "."))
             and not any(x in p.name.lower() for x in exclude)]
    ranked: list[Path] = []
    for pattern in patterns:
        ranked += [p for p in files if fnmatch.fnmatchcase(p.name.lower(), pattern.lower()) and p not in ranked]
    return ranked


def annotation_path(root: Path, annotation_file: str | Path | None) -> Path | None:
    """`data.reader.annotation_file` made absolute (relative to the root), checked to exist; None if not given."""
    if not annotation_file:
        return None
    path = Path(str(annotation_file)).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise MERError(f"annotation sheet not found: {path} (from data.reader.annotation_file)")
    return path


def first_with_header(candidates: Iterable[Path], columns: Columns, where: Callable[[Path, str], str], *,
                      pass_over_unreadable: bool = False, shown: int = 14) -> tuple[Sheet | None, list[str], list[str]]:
    """The first sheet among `candidates`' sheets whose header `columns` describe, else None; with the
    first row of every sheet looked at (`seen`, `shown` cells each, for the message) and the files that
    could not be read (`pass_over_unreadable`: logged and passed over; else the error stands). A header
    `find_header` refuses is one line, prefixed with `where(path, sheet name)`."""
    seen, unreadable = [], []
    for path in candidates:
        sheets = read_workbook(path)
        while True:
            try:
                sheet_name, raw = next(sheets)
            except StopIteration:
                break
            except MERError as err:
                if not pass_over_unreadable:
                    raise
                log.warning("Passed over %s: %s", path, err)
                unreadable.append(str(err))
                break
            try:
                table = find_header(raw, columns)
            except MERError as err:
                raise MERError(f"{where(path, sheet_name)}: {err}") from None
            if table is not None:
                return Sheet(path, sheet_name, columns, table), seen, unreadable
            first = [str(c).strip() for c in raw.iloc[0].tolist()] if len(raw) else []
            seen.append(f"{path.name}[{sheet_name}]: {[c for c in first if c not in ('', 'nan')][:shown]}")
    return None, seen, unreadable


def find_sheet(root: Path, columns: Columns, name: str, kind: str = "annotation sheet", *,
               patterns: tuple[str, ...] = ("*",), depth: int = 1, exclude: tuple[str, ...] = (),
               annotation_file: str | Path | None = None, expected: str = "",
               option: str = "annotation_file") -> Sheet:
    """The first sheet with the header `columns` describe (see the module doc): in `annotation_file`
    alone when given (relative to the root), else among `sheet_files(root, patterns, depth, exclude)`
    (a file that cannot be read is then passed over, and named if no sheet is found).

    Messages name the registered dataset `name` (by its title), the `kind` of sheet ("coding sheet"), the
    files `expected` (when no candidate is found) and the reader `option` that names the file."""
    title = dataset(name).title
    what = f"{title} {kind}"
    given = annotation_path(root, annotation_file)
    candidates = [given] if given is not None else sheet_files(root, patterns, depth, exclude)
    fix = f"name yours with `data.reader.{option}=...`"
    if not candidates:
        if expected:
            raise MERError(f"{what} not found in {root}: expected {expected}; or {fix}")
        raise MERError(f"no {what} found in {root} (nor up to {depth} folders below): expected a .xlsx/.xls/.csv "
                       f"with the columns {columns.expected()}; {fix}")
    found, seen, unreadable = first_with_header(
        candidates, columns, lambda path, sheet: f"{path} (sheet '{sheet}'): an unknown version of the {what}",
        pass_over_unreadable=given is None, shown=14)
    if found is not None:
        return found
    also = f" ({'; '.join(unreadable)})" if unreadable else ""
    raise MERError(f"{title}: no sheet with a known header (an unknown sheet version?). Expected the columns "
                   f"{columns.expected()}; found: {'; '.join(seen) or 'no readable sheet'}{also}. Rename the "
                   f"columns or {fix}")


def as_int(value) -> int | None:
    """An integer frame number from a sheet cell, or None for '/', blanks and text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def cell_text(value) -> str:
    """A sheet cell as stripped text ('' for blanks; 6.0 -> '6')."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


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
