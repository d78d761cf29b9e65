"""Helpers for readers of datasets whose sheet names, column spellings and folder case are not known
for sure (4DME, DFME: `docs/formats/more_datasets.md` marks them UNVERIFIED).

- `find_sheet_by_columns`: the annotation sheet is the first candidate file (by name, then any
  .xlsx/.xls/.csv in the root or one folder below) with a header row that holds one spelling of
  every required column, compared case- and space-insensitively; a file that matches no known
  version is a MERError listing the columns found and the columns expected.
- `child_dir`: a folder looked up case-insensitively (`S13` vs `s13`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mer_lightning.data.readers.common import read_sheet
from mer_lightning.utils.errors import MERError

SHEET_SUFFIXES = (".xlsx", ".xls", ".csv")


def _key(name) -> str:
    return " ".join(str(name).replace("_", " ").split()).strip().lower()


@dataclass
class FoundSheet:
    path: Path
    table: pd.DataFrame  # columns renamed to the canonical names; index = spreadsheet row numbers (1-based)


def match_header(raw: pd.DataFrame, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
                 max_rows: int = 40) -> tuple[pd.DataFrame | None, list[str]]:
    """The table below the first row that names every required column (one of its spellings), columns
    renamed to the canonical names (optional ones where present); else None and the first row's names."""
    first: list[str] = []
    for row in range(min(max_rows, len(raw))):
        names = [str(c).strip() for c in raw.iloc[row].tolist()]
        if row == 0:
            first = [n for n in names if n not in ("", "nan")]
        keys = [_key(n) for n in names]
        where = {}
        for canonical, spellings in columns.items():
            hit = next((keys.index(_key(s)) for s in spellings if _key(s) in keys), None)
            if hit is not None:
                where[canonical] = hit
        if all(c in where for c in required):
            table = raw.iloc[row + 1:, list(where.values())].copy()
            table.columns = list(where)
            table.index = table.index + 1
            return table.dropna(how="all"), first
    return None, first


def find_sheet_by_columns(root: Path, dataset: str, names: tuple[str, ...], columns: dict[str, tuple[str, ...]],
                          required: tuple[str, ...], annotation_file: Path | None = None,
                          exclude: tuple[str, ...] = ()) -> FoundSheet:
    """The annotation sheet of `root` (or `annotation_file`), found by its columns (see the module doc).

    `names`: file names tried first (case-insensitive, root and one folder below); `exclude`: lower-case
    fragments of file names that are never the annotation sheet (4DME's `extras` file).
    """
    if annotation_file is not None:
        candidates = [annotation_file]
    else:
        files = [p for p in (*sorted(root.iterdir()), *sorted(root.glob("*/*")))
                 if p.is_file() and p.suffix.lower() in SHEET_SUFFIXES and not p.name.startswith("~$")]
        wanted = [n.lower() for n in names]
        candidates = sorted(files, key=lambda p: wanted.index(p.name.lower()) if p.name.lower() in wanted
                            else len(wanted))
        candidates = [p for p in candidates if not any(x in p.name.lower() for x in exclude)]
    expected = [f"{c} ({' / '.join(columns[c])})" for c in required]
    seen = []
    for path in candidates:
        try:
            raw = read_sheet(path, header_row=None)
        except MERError:
            if annotation_file is not None:
                raise
            continue
        table, first = match_header(raw, columns, required)
        if table is not None:
            return FoundSheet(path, table)
        seen.append(f"{path.name}: {first[:14]}")
    if not candidates:
        raise MERError(f"{dataset} annotation sheet not found in {root}: expected one of {list(names)} (or any "
                       f"sheet with the columns {expected}); name yours with `data.reader.annotation_file=...`")
    raise MERError(f"{dataset}: no sheet with a known header (an unknown sheet version?). Expected the columns "
                   f"{expected}; found: {'; '.join(seen)}. Rename the columns or name the sheet with "
                   "`data.reader.annotation_file=...`")


def child_dir(parent: Path, name: str) -> Path | None:
    """`parent/name`, matched case-insensitively (exact match first); None when there is none."""
    exact = parent / name
    if exact.is_dir():
        return exact
    if not parent.is_dir():
        return None
    lower = name.lower()
    return next((p for p in sorted(parent.iterdir()) if p.is_dir() and p.name.lower() == lower), None)


def cell_text(value) -> str:
    """A sheet cell as stripped text ('' for blanks)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
