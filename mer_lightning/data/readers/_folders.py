"""Folders and frame files for the readers: the dataset root, frames listed in numeric order and checked,
child folders looked up case-insensitively, and the path guards on names taken from sheet cells (single
folder names: `unsafe_cells`; relative paths of several parts: `unsafe_path`).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Iterable

from mer_lightning.data.clips import truncated_jpeg
from mer_lightning.data.registry import dataset
from mer_lightning.utils.errors import MERError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z]+$)")


def require_root(root: str | Path | None, name: str, part: str = "") -> Path:
    """The root of the registered dataset `name` (or of its `part`), or a MERError that says where we
    looked, how to fix it and where the licence is requested."""
    path = Path(str(root)).expanduser() if root else None
    if path is None or not path.is_dir():
        entry = dataset(name)
        title = f"{entry.title} {part}".strip()
        raise MERError(
            f"{title} not found: looked in '{path}'. Point the loader at your copy with "
            f"`data.root=/path/to/{title}` (or set `paths.data_dir`). "
            f"The dataset is licensed and not downloaded by this tool; request it from {entry.request_from}."
        )
    return path


def layout_folder(root: Path, layout: str | None, layouts, title: str, expected: str,
                  known_only: bool = False) -> Path:
    """A release's frames folder under `root`: `layout` when given (`data.reader.layout`; with `known_only`
    it must be one of `layouts`), else the first of `layouts` that exists; a missing one is one line."""
    if layout:
        if (known_only and layout not in layouts) or not (root / layout).is_dir():
            raise MERError(f"{title} frames folder {root / layout} does not exist (data.reader.layout={layout}); "
                           f"known layouts: {list(layouts)}")
        return root / layout
    for folder in layouts:
        if (root / folder).is_dir():
            return root / folder
    raise MERError(f"no {title} frames folder in {root}: expected {expected}")


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


def frames_folder(path: Path) -> bool:
    """Whether `path` is a clip or video folder (its first entry is an image), or cannot be listed."""
    try:
        first = next(iter(path.iterdir()), None)
    except OSError:
        return True
    return first is not None and first.suffix.lower() in IMAGE_SUFFIXES


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


class Folders:
    """Child folders looked up by name: the exact spelling first, else case-insensitively (`S13` for
    `s13`, the sheet's `J` for folder `j`), each folder listed once. Only folders that exist are
    returned, so a name can never lead out of its parent."""

    def __init__(self) -> None:
        self._listed: dict[Path, tuple[dict[str, Path], dict[str, Path]]] = {}

    def child(self, folder: Path | None, name: str) -> Path | None:
        """`folder/<name>` as it exists on disk, or None (also for a `folder` of None)."""
        if folder is None:
            return None
        if folder not in self._listed:
            exact: dict[str, Path] = {}
            folded: dict[str, Path] = {}
            if folder.is_dir():
                for path in sorted(p for p in folder.iterdir() if p.is_dir()):
                    exact[path.name] = path
                    folded.setdefault(path.name.lower(), path)
            self._listed[folder] = exact, folded
        exact, folded = self._listed[folder]
        name = str(name).strip()
        return exact.get(name) or folded.get(name.lower())

    def find(self, folder: Path, *names: str) -> Path:
        """`folder/<names...>`, each matched as `child` does; when one is not there, the path as written
        (whoever reads it reports it missing). Names are single folder names (see `unsafe_cells`)."""
        found: Path | None = folder
        for name in names:
            found = self.child(found, name)
        return found if found is not None else folder.joinpath(*names)


def unsafe_cells(cells: Iterable[tuple[str, str]], inside: str | Path) -> str:
    """The path guard: '' when every `(column, cell)` is a single folder name, else why not, naming the
    first bad cell. Without it a Filename `../sub02/EP05` reads another subject's frames (a leak no split
    check can see) and `/etc` reads outside the dataset. `inside`: where sheet paths must stay (for the
    message). The check is lexical, so datasets reached through symlinks still work."""
    for column, value in cells:
        parts = re.split(r"[\\/]", value)  # both separators: sheets are often written on Windows
        if value not in ("", ".", "..") and len(parts) == 1:
            continue
        why = ("it is blank" if not value else
               "it is an absolute path" if os.path.isabs(value) or value.startswith("\\") else
               "it has a '..' component" if ".." in parts else "")
        return (f"{column} cell '{value}' is not a single folder name{f' ({why})' if why else ''}: sheet paths "
                f"must stay inside {inside}; write the subject and clip folder names only")
    return ""


def unsafe_path(column: str, value: str, inside: str | Path) -> str:
    """The path guard for a sheet cell holding a relative path of one or more parts (`sub01/clip.png`,
    data=precomputed's `path` column): '' when it stays inside `inside` once `a/../b` is resolved, else
    why not. Both separators are read (sheets are often written on Windows); absolute paths and drive
    letters are refused. Lexical, as `unsafe_cells`: a symlink inside the root may still lead elsewhere."""
    text = str(value).strip().replace("\\", "/")
    why = ("it is blank" if not text else
           "it is an absolute path" if text.startswith("/") or os.path.isabs(text) or re.match(r"^[A-Za-z]:", text) else
           "it leads out of the folder" if posixpath.normpath(text).split("/")[0] in ("..", ".") else "")
    if not why:
        return ""
    return (f"{column} cell '{value}' is not a path inside {inside} ({why}): write paths relative to "
            "data.root, without '..' leading out of it")
