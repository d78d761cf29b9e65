"""Helpers shared by the readers: finding the root, listing frames in numeric order, checks."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mer_lightning.data.clips import truncated_jpeg
from mer_lightning.data.samples import Sample, SampleTable
from mer_lightning.utils.errors import MERError

_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z]+$)")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def require_root(root: str | Path | None, dataset: str, request_from: str) -> Path:
    """The dataset root, or a MERError that says where we looked and how to fix it."""
    path = Path(str(root)).expanduser() if root else None
    if path is None or not path.is_dir():
        raise MERError(
            f"{dataset} not found: looked in '{path}'. Point the loader at your copy with "
            f"`data.root=/path/to/{dataset}` (or set `paths.data_dir`). "
            f"The dataset is licensed and not downloaded by this tool; request it from {request_from}."
        )
    return path


def numbered_frames(clip_dir: Path) -> list[tuple[int, Path]]:
    """(frame number, path) for each image in `clip_dir`, ordered by number (img46 before img100)."""
    frames = []
    for path in clip_dir.iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            match = _NUMBER.search(path.name)
            if match:
                frames.append((int(match.group(1)), path))
    frames.sort(key=lambda item: item[0])
    return frames


def clip_span(frames: list[tuple[int, Path]], onset: int, offset: int) -> tuple[list[tuple[int, Path]], str]:
    """The frames from onset to offset, or an empty list and the reason they cannot be used."""
    if not frames:
        return [], "no image files in the clip folder"
    numbers = [n for n, _ in frames]
    if offset < onset:
        return [], f"offset {offset} is before onset {onset}"
    if onset < numbers[0] or offset > numbers[-1]:
        return [], f"annotated frames {onset}-{offset} are outside the files on disk ({numbers[0]}-{numbers[-1]})"
    span = [(n, p) for n, p in frames if onset <= n <= offset]
    missing = sorted(set(range(onset, offset + 1)) - {n for n, _ in span})
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        return [], f"{len(missing)} frame(s) missing between onset {onset} and offset {offset}: {shown}"
    return span, ""


def check_frame_files(span: list[tuple[int, Path]]) -> str:
    """'' when every frame file of the span looks whole, else the reason naming the first bad one.

    No decoding (reading a whole dataset stays fast): an empty file, or a JPEG whose last two bytes
    are not the end-of-image marker (OpenCV silently decodes truncated JPEGs into grey garbage).
    """
    for _, path in span:
        try:
            with open(path, "rb") as f:
                head = f.read(2)
                f.seek(0, 2)
                if f.tell() < 4:
                    return f"frame file {path} is empty"
                f.seek(-2, 2)
                tail = f.read(2)
        except OSError as err:
            return f"cannot read frame {path} ({err.strerror or err})"
        if truncated_jpeg(head, tail):
            return f"truncated JPEG {path} (no end-of-image marker)"
    return ""


def find_header(raw: pd.DataFrame, required: list[str], path: Path, max_rows: int = 40) -> pd.DataFrame:
    """The table below the first row that holds every required column name (free text above it is skipped).

    `raw` is the sheet read with `header=None`. The result's index is each row's number as the
    spreadsheet shows it (1-based), for messages that name the row. Raises a MERError naming the
    file when no row within the first `max_rows` looks like the header.
    """
    for row in range(min(max_rows, len(raw))):
        names = [str(c).strip() for c in raw.iloc[row].tolist()]
        if all(name in names for name in required):
            table = raw.iloc[row + 1:].copy()
            table.columns = [n if n not in ("", "nan") else f"Unnamed: {i}" for i, n in enumerate(names)]
            table.index = table.index + 1
            return table.dropna(how="all")
    first = [str(c).strip() for c in raw.iloc[0].tolist()] if len(raw) else []
    raise MERError(f"{path}: no header row with the columns {required} in its first {max_rows} rows "
                   f"(first row: {[c for c in first if c != 'nan'][:12]})")


def read_sheet(path: Path, header_row: int | None = 0) -> pd.DataFrame:
    """An annotation sheet (.xlsx/.xls, or .csv), all cells as read; `header_row=None`: no header."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, header=header_row)
        return pd.read_excel(path, header=header_row)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file, say which
        raise MERError(f"cannot read the annotation sheet {path}: {type(err).__name__}: {err}") from None


def find_file(root: Path, names: tuple[str, ...], patterns: tuple[str, ...] = ()) -> Path | None:
    """The first of `names` in `root` or one folder below, then the first match of `patterns`."""
    for name in names:
        for path in (root / name, *sorted(root.glob(f"*/{name}"))):
            if path.is_file():
                return path
    for pattern in patterns:
        for path in (*sorted(root.glob(pattern)), *sorted(root.glob(f"*/{pattern}"))):
            if path.is_file() and not path.name.startswith("~$"):  # not Excel's lock files
                return path
    return None


def annotation_path(root: Path, annotation_file: str | None) -> Path | None:
    """`data.annotation_file` made absolute (relative to the root), checked to exist; None if not given."""
    if not annotation_file:
        return None
    path = Path(str(annotation_file)).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise MERError(f"annotation sheet not found: {path} (from data.annotation_file)")
    return path


def unknown_emotion(emotion: str, known: tuple[str, ...]) -> str:
    """'' for a known emotion string, else the reason to skip the sample."""
    if emotion in known:
        return ""
    return f"unknown emotion '{emotion}' (expected one of {', '.join(known)})"


def pick_columns(sheet: pd.DataFrame, required: list[str], path: Path) -> pd.DataFrame:
    """Select columns by name (never by position), naming the file and the columns found."""
    sheet = sheet.rename(columns=lambda c: str(c).strip())
    missing = [c for c in required if c not in sheet.columns]
    if missing:
        found = [c for c in sheet.columns if not str(c).startswith("Unnamed")]
        raise MERError(f"{path}: missing column(s) {missing}; found columns {found}")
    return sheet[required]


def sheet_rows(sheet: pd.DataFrame):
    """(row number as the spreadsheet shows it, row tuple) for a table from `find_header`."""
    return zip(sheet.index, sheet.itertuples(index=False))


def as_int(value) -> int | None:
    """An integer frame number from a sheet cell, or None for '/', blanks and text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def add_clip(table: SampleTable, *, dataset: str, subject: str, clip: str, emotion: str, onset, apex, offset,
             clip_dir: Path, where: str, emotions: tuple[str, ...]) -> None:
    """Append one annotated clip to `table`, or record why it is skipped (`where`: file and row).

    Checks, in order: the emotion is one of the dataset's `emotions`; onset and offset are numbers;
    the clip folder exists; every frame from onset to offset is on disk and whole. An apex that is
    missing ('/') or outside onset..offset becomes the middle frame, counted as `apex_missing`.
    """
    sample_id = f"{dataset}/{subject}/{clip}"
    onset, apex, offset = as_int(onset), as_int(apex), as_int(offset)
    problem = unknown_emotion(emotion, emotions)
    if not problem and (onset is None or offset is None):
        problem = "onset/offset not numbers"
    if not problem and not clip_dir.is_dir():
        problem = f"clip folder {clip_dir} does not exist"
    span = []
    if not problem:
        span, problem = clip_span(numbered_frames(clip_dir), onset, offset)
        problem = problem or check_frame_files(span)
    if problem:
        table.skip(sample_id, f"{where}: {problem}")
        return
    if apex is None or not onset <= apex <= offset:
        apex = (onset + offset) // 2
        table.count("apex_missing")
    table.samples.append(Sample(
        dataset=dataset, subject=subject, clip=clip, emotion=emotion,
        frames=tuple(p for _, p in span), frame_numbers=tuple(n for n, _ in span),
        onset=onset, apex=apex, offset=offset,
    ))


def read_sheet_clips(sheet_path: Path, frames_dir: Path, *, dataset: str, columns: list[str], subject_folder: str,
                     emotions: tuple[str, ...], spellings: dict[str, str] | None = None) -> SampleTable:
    """The clips listed in a coding sheet, checked against the frames under `frames_dir/<subject>/<clip>`.

    `columns` name, in this order, the sheet's subject, clip folder, onset, apex, offset and emotion
    columns (picked by name; the header row is found by the first two, below any free text).
    Integer subjects become folders by `subject_folder` (`sub{:02d}`: 1 -> sub01); emotions are lower
    case, with `spellings` mapping variants to one name.
    """
    sheet = find_header(read_sheet(sheet_path, header_row=None), columns[:2], sheet_path)
    sheet = pick_columns(sheet, columns, sheet_path)
    table = SampleTable([])
    for row_number, (subject_cell, clip, onset, apex, offset, emotion) in sheet_rows(sheet):
        subject_no = as_int(subject_cell)
        subject = subject_folder.format(subject_no) if subject_no is not None else str(subject_cell).strip()
        clip = str(clip).strip()
        emotion = str(emotion).strip().lower()
        emotion = (spellings or {}).get(emotion, emotion)
        add_clip(table, dataset=dataset, subject=subject, clip=clip, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=frames_dir / subject / clip, where=f"{sheet_path.name} row {row_number}",
                 emotions=emotions)
    return table
