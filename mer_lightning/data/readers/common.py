"""Helpers shared by the readers: finding the root, listing frames in numeric order, checks."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

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


def pick_columns(sheet: pd.DataFrame, required: list[str], path: Path) -> pd.DataFrame:
    """Select columns by name (never by position), naming the file and the columns found."""
    sheet = sheet.rename(columns=lambda c: str(c).strip())
    missing = [c for c in required if c not in sheet.columns]
    if missing:
        found = [c for c in sheet.columns if not str(c).startswith("Unnamed")]
        raise MERError(f"{path}: missing column(s) {missing}; found columns {found}")
    return sheet[required]


def as_int(value) -> int | None:
    """An integer frame number from a sheet cell, or None for '/', blanks and text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None
