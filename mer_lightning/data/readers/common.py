"""Helpers shared by the readers: finding the root, listing frames in numeric order, checks.

Quirks handled here, for every sheet-based reader (CASME II, SAMM, the composite): a clip listed on
two or more rows (identical rows are read once and counted as `duplicate_rows_merged`; rows that
disagree on emotion or frames leave the clip out, naming the rows); Subject / Filename cells that
would lead out of `<frames_dir>/<subject>/` (absolute, `..`) are refused. For every reader
(`check_sample_ids`): names that are not valid UTF-8 are skipped before anything trains, and two
samples with one id are an error.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from mer_lightning.data.clips import truncated_jpeg
from mer_lightning.data.samples import Sample, SampleTable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

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
    """`data.reader.annotation_file` made absolute (relative to the root), checked to exist; None if not given."""
    if not annotation_file:
        return None
    path = Path(str(annotation_file)).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise MERError(f"annotation sheet not found: {path} (from data.reader.annotation_file)")
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
             clip_dir: Path, where: str, emotions: tuple[str, ...], fps: float = 0.0) -> None:
    """Append one annotated clip to `table`, or record why it is skipped (`where`: file and row).

    Checks, in order: the emotion is one of the dataset's `emotions`; onset and offset are numbers;
    the clip folder exists; every frame from onset to offset is on disk and whole. An apex that is
    missing ('/') or outside onset..offset becomes the middle frame, counted as `apex_missing`.
    `fps`: the recording's frame rate, kept on the sample (0: unknown).
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
        onset=onset, apex=apex, offset=offset, fps=float(fps),
    ))


def read_sheet_clips(sheet_path: Path, frames_dir: Path, *, dataset: str, columns: list[str], subject_folder: str,
                     emotions: tuple[str, ...], spellings: dict[str, str] | None = None,
                     fps: float = 0.0) -> SampleTable:
    """The clips listed in a coding sheet, checked against the frames under `frames_dir/<subject>/<clip>`.

    `columns` name, in this order, the sheet's subject, clip folder, onset, apex, offset and emotion
    columns (picked by name; the header row is found by the first two, below any free text).
    Integer subjects become folders by `subject_folder` (`sub{:02d}`: 1 -> sub01); emotions are lower
    case, with `spellings` mapping variants to one name. A row whose Subject / clip cell leads out of
    `frames_dir/<subject>/` is skipped; a clip on several rows is read once when the rows agree and
    left out when they do not (`same_clip_rows`).
    """
    sheet = find_header(read_sheet(sheet_path, header_row=None), columns[:2], sheet_path)
    sheet = pick_columns(sheet, columns, sheet_path)
    table = SampleTable([])
    listed: dict[tuple[str, str], list[tuple[int, tuple]]] = {}  # (subject, clip) -> [(row, annotation)]
    for row_number, (subject_cell, clip, onset, apex, offset, emotion) in sheet_rows(sheet):
        subject_no = as_int(subject_cell)
        subject = subject_folder.format(subject_no) if subject_no is not None else str(subject_cell).strip()
        clip = str(clip).strip()
        problem = outside_subject_folder(subject, clip, frames_dir, columns[:2])
        if problem:
            table.skip(f"{dataset}/{subject}/{clip}", f"{sheet_path.name} row {row_number}: {problem}")
            continue
        emotion = str(emotion).strip().lower()
        emotion = (spellings or {}).get(emotion, emotion)
        listed.setdefault((subject, clip), []).append((row_number, (emotion, as_int(onset), as_int(apex),
                                                                    as_int(offset))))
    for (subject, clip), rows in listed.items():
        if len(rows) > 1 and not same_clip_rows(table, rows, f"{dataset}/{subject}/{clip}", sheet_path.name):
            continue
        row_number, (emotion, onset, apex, offset) = rows[0]
        add_clip(table, dataset=dataset, subject=subject, clip=clip, emotion=emotion, onset=onset, apex=apex,
                 offset=offset, clip_dir=frames_dir / subject / clip, where=f"{sheet_path.name} row {row_number}",
                 emotions=emotions, fps=fps)
    return table


def outside_subject_folder(subject: str, clip: str, frames_dir: Path, names: list[str]) -> str:
    """'' when `frames_dir/subject/clip` stays inside `frames_dir/subject/`, else which cell leads out and why.

    Without this a Filename `../sub02/EP05` reads another subject's frames (a leak no split check
    can see) and `/etc` reads outside the dataset. The check is lexical (os.path.normpath), so
    datasets reached through symlinks still work. `names`: the subject and clip column names.
    """
    def parts(cell: str) -> list[str]:
        return re.split(r"[\\/]", cell)  # both separators: sheets are often written on Windows

    subject_dir = os.path.normpath(os.path.join(frames_dir, subject))
    target = os.path.normpath(os.path.join(subject_dir, clip))
    if subject in ("", ".", "..") or len(parts(subject)) > 1:
        cell, value, why = names[0], subject, "is not a single folder name"
    elif os.path.isabs(clip):
        cell, value, why = names[1], clip, "is an absolute path"
    elif ".." in parts(clip):
        cell, value, why = names[1], clip, "has a '..' component"
    elif not target.startswith(subject_dir + os.sep):
        cell, value, why = names[1], clip, "names no folder below the subject's"
    else:
        return ""
    return (f"{cell} cell '{value}' {why}: sheet paths must stay inside {frames_dir}{os.sep}<subject>{os.sep}; "
            "write the subject and clip folder names only")


def same_clip_rows(table: SampleTable, rows: list[tuple[int, tuple]], sample_id: str, sheet: str) -> bool:
    """Whether the sheet rows that list one clip agree (then it is read once), else the clip is skipped.

    Identical rows (same emotion, onset, apex, offset once normalised) are merged and counted as
    `duplicate_rows_merged`; rows that differ leave the clip out, since we cannot know which is right
    (reading both would test the clip twice and let a cache keep either label).
    """
    numbers = [str(n) for n, _ in rows]
    where = f"{sheet} rows {', '.join(numbers[:-1])} and {numbers[-1]}"
    clip = sample_id.split("/", 1)[1]
    differ = []
    for i, field in enumerate(("emotion", "onset", "apex", "offset")):
        values = ["missing" if a[i] is None else str(a[i]) for _, a in rows]
        if len(set(values)) > 1:
            differ.append(f"{field} ({' vs '.join(values)})")
    if not differ:
        table.count("duplicate_rows_merged", len(rows) - 1)
        log.warning("%s list %s with the same emotion and frames: read once (keep one row per clip)", where, clip)
        return True
    reason = f"{where} list {clip} with different {', '.join(differ)}: clip left out; keep one row per clip"
    table.skip(sample_id, reason)
    log.warning("Skipped %s: %s", sample_id, reason)
    return False


def printable(text: str) -> str:
    """`text` safe to log and write as UTF-8: bytes of a non-UTF-8 file name are shown as `\\xe9`."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # how Linux file names in another encoding come back
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def check_sample_ids(table: SampleTable) -> SampleTable:
    """After any reader: skip samples whose names are not valid UTF-8, and refuse two samples with one id.

    A folder named in another encoding (Latin-1 `s1_ne_\\xe9`) reaches Python as surrogate escapes:
    it reads fine but crashes only when results are written, after a fold has trained, so it is
    skipped here, with the name shown safely and the advice to rename it. Skip reasons that quote
    such names are made printable too (they are logged and written to JSON). Returns `table`.
    """
    kept = []
    for sample in table.samples:
        names = [sample.id, *map(str, sample.frames)]
        bad = next((name for name in names if printable(name) != name), None)
        if bad is None:
            kept.append(sample)
            continue
        if bad == sample.id and sample.frames:
            bad = str(sample.frames[0].parent)  # the clip folder on disk: what to rename
        table.skip(printable(sample.id), f"name is not valid UTF-8: {printable(bad)}; rename it to UTF-8 "
                                         "(e.g. `convmv -f latin1 -t utf8 -r --notest <folder>`), then read again")
    table.samples = kept
    for skip in table.skipped:
        skip.sample, skip.reason = printable(skip.sample), printable(skip.reason)
    twice = [sample_id for sample_id, n in Counter(s.id for s in kept).items() if n > 1]
    if twice:
        where = [str(s.frames[0].parent) if s.frames else s.clip for s in kept if s.id == twice[0]]
        raise MERError(f"{len(twice)} sample id(s) are read more than once, e.g. '{twice[0]}' (from {', '.join(where)}): "
                       "each clip must be listed once; rename or remove the extra copies")
    return table
