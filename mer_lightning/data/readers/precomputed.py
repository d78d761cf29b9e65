"""Preprocessed inputs from any pipeline (`data=precomputed`): a manifest of clips beside their files.

    python -m mer_lightning.train data=precomputed data.root=/data/flow28 data.reader.manifest=labels.csv \\
        data.reader.pattern='{subject}_{sample}.png' model=ststnet data.image_size=28

The manifest (CSV or XLSX: `data.reader.manifest`, relative to `data.root` or absolute; by default
`manifest.csv` / `manifest.xlsx` in the root, else the sheet there with these columns) has one row per
clip. Its columns are found by name, case-insensitively: `subject` (or `sub`), `sample` (the clip id; or
`clip`, `filename`), `label` (an emotion name, or an integer into `data.reader.label_names`; or
`emotion`), and optionally `dataset` (the clip's source; or `source`), `path` (its file or folder,
relative to `data.root`; or `file`) and `onset` / `apex` / `offset` (frame numbers, for folders of
frames). Other columns are ignored (HTNet's published CSV, `dataset, sub, filename_o, label, ...`, reads
as it is). Without a path, the
file is found by `data.reader.pattern` (placeholders `{subject}`, `{sample}`, `{dataset}`), matched
tolerantly: as written first, else ignoring case, spaces before the extension, `.png` / `.jpg` /
`.jpeg` / `.bmp` for one another and leading zeros of numbers (`s1_EP2` finds `S01_ep02 .PNG`).

A path is
- an image (PNG / JPG / BMP, 1 or 3 channels) or a `.npy` array (C, H, W) or (T, C, H, W): a stored
  input (`Sample.stored`; its shape read from the file's header, nothing decoded here), served with
  `data.input=stored` (the config's default) as it is, only resized to `data.image_size` and scaled
  into [0, 1] by `data.reader.scale` (`preprocessing.read_stored`). Its channels must be
  `data.reader.channels` (what the model's `in_chans` follows); its time steps `data.num_frames`
  (checked by the DataModule, which names the fix);
- a folder of frames: a clip (frames numbered by their file names; onset / offset the first / last
  frame unless the manifest says, apex the middle one, counted as `apex_missing`), preprocessed as every
  dataset's clips are (`data.input=flow_seq`, faces, flow); `data.reader.cropped` says the frames are
  face crops (the default: `data.face=auto` then looks for no face).

Not a registered dataset (as `synthetic` and `composite` are not): a format that holds other datasets'
inputs, with no licence, frame rate or folder of its own. Samples are `precomputed/<subject>/<sample>`;
with a `dataset` column each keeps its source (`Sample.source`: the report's per-source breakdown,
`protocol=cross_dataset`'s train_on / test_on, `megc_3`'s per-source emotions), and a manifest of more
than one dataset prefixes subjects with it (`samm/006`), as the composite does, for LOSO over them all.

Bad input, each named by file and row: no manifest or a missing column is a MERError, and so are labels
that are all numbers without `label_names` and files none of which has `data.reader.channels`; a row
with a blank cell, an unknown label, a path leading out of `data.root`, no file (or several) matching
the pattern, a file that cannot be read or has the wrong shape, or other channels than the rest, is
skipped with the reason (counted against `data.max_skipped_fraction`); a clip on two rows is read once
when the rows agree and left out when they differ (label, frames or path: `_rows.SheetClips`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import string
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_lightning.data.readers._folders import (
    IMAGE_SUFFIXES,
    check_frame_files,
    numbered_frames,
    unsafe_path,
)
from mer_lightning.data.readers._rows import ClipRow, SheetClips, add_clip
from mer_lightning.data.readers._sheet import (
    Columns,
    Sheet,
    as_int,
    cell_text,
    first_with_header,
    sheet_files,
)
from mer_lightning.data.samples import Sample, SampleTable, Stored
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

NAME = "precomputed"
# spellings compared case-, space- and underscore-insensitively; `sub` / `filename_o` are those of the CSV
# published with HTNet's STSTNet-style flow images (combined_3_class2_for_optical_flow.csv)
COLUMNS = Columns({"subject": ("subject", "sub"), "sample": ("sample", "clip", "filename", "filename_o"),
                   "label": ("label", "emotion"), "dataset": ("dataset", "source", "database"),
                   "path": ("path", "file"), "onset": ("onset",), "apex": ("apex",), "offset": ("offset",)},
                  required=("subject", "sample", "label"), keys=("sample",))
ARRAY_SUFFIX = ".npy"
STORED_SUFFIXES = (*IMAGE_SUFFIXES, ARRAY_SUFFIX)
MANIFESTS = ("manifest.csv", "manifest.xlsx")  # what `preprocess export=` writes first
PLACEHOLDERS = ("subject", "sample", "dataset")
SCALES = ("auto", "minmax")
INTEGER = re.compile(r"[+-]?\d+")
_SUFFIX = re.compile(r"^(.*?)\s*(\.(?:png|jpe?g|bmp|npy))\s*$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
# image modes (Pillow's) -> the channels OpenCV decodes them to; others (alpha, CMYK) are refused
MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "RGB": 3, "P": 3, "YCbCr": 3,
                 "LA": 2, "PA": 2, "RGBA": 4, "CMYK": 4}


def read_precomputed(root, manifest: str | None = None, pattern: str | None = None,
                     label_names: Sequence[str] | None = None, channels: int = 3, scale: str | float = "auto",
                     cropped: bool = True) -> SampleTable:
    """Read a manifest of preprocessed inputs into a SampleTable (see the module doc for the keys)."""
    root = require_root(root)
    scale, channels, names = check_scale(scale), check_channels(channels), check_label_names(label_names)
    sheet = find_manifest(root, manifest)
    rows = list(sheet.rows())
    where = sheet.path.name
    if pattern:
        check_pattern(pattern)
    elif rows and not any(cell_text(cells["path"]) for _, cells in rows):
        raise MERError(f"{sheet.path} has no path column, so the clips' files are found by data.reader.pattern, "
                       "which is not set: e.g. data.reader.pattern='{subject}_{sample}.png' (placeholders {subject}, "
                       "{sample}, {dataset}; matched ignoring case, spaces before the extension, .png/.jpg and "
                       "leading zeros)")
    labels = [(n, cell_text(cells["label"])) for n, cells in rows]
    if not names and any(text for _, text in labels) and all(INTEGER.fullmatch(t) for _, t in labels if t):
        number, text = next((n, t) for n, t in labels if t)
        raise MERError(f"{sheet.path}: the label column holds numbers (row {number}: '{text}'); name the classes in "
                       "their order with data.reader.label_names=[happiness,surprise,...] (the first is 0)")
    sources = sorted({cell_text(cells["dataset"]) for _, cells in rows} - {""})
    prefix = len(sources) > 1
    clips = SheetClips(NAME, where, root, compare=("path",))
    for number, cells in rows:
        subject, sample, source = cell_text(cells["subject"]), cell_text(cells["sample"]), cell_text(cells["dataset"])
        emotion, problem = label_of(cells["label"], names)
        path = cell_text(cells["path"]).replace("\\", "/")
        row = ClipRow(number, f"{source}/{subject}" if prefix and source else subject, sample, emotion,
                      as_int(cells["onset"]), as_int(cells["apex"]), as_int(cells["offset"]),
                      {"path": posixpath.normpath(path) if path else None, "source": source, "subject_cell": subject})
        if not subject or not sample:
            problem = f"the {'subject' if not subject else 'sample'} cell is blank"
        elif prefix and not source:
            problem = f"the dataset cell is blank (the manifest holds {len(sources)} datasets: {', '.join(sources)})"
        elif not problem and path:
            problem = unsafe_path(COLUMNS.label("path"), path, root)
        if problem:
            clips.skip(row, problem)
        else:
            clips.add(row)
    files = Files(root)
    stored: list[tuple[Sample, ClipRow]] = []
    listed = list(clips.clips())  # one row per clip (once: it also skips the clips whose rows disagree)
    for row in listed:
        found, problem = locate(files, row, pattern)
        if problem:
            clips.skip(row, problem)
            continue
        source = row.extra["source"]
        if found.is_dir():
            add_folder(clips, row, found, source, bool(cropped))
        elif found.suffix.lower() in STORED_SUFFIXES:
            shape, problem = probe(found)
            if problem:
                clips.skip(row, problem)
                continue
            stored.append((Sample(dataset=NAME, subject=row.subject, clip=row.clip, emotion=row.emotion,
                                  source=source, cropped=True, stored=Stored(found, shape, scale)), row))
        else:
            clips.skip(row, f"{found} is not an image ({', '.join(IMAGE_SUFFIXES)}), a {ARRAY_SUFFIX} array or a "
                            "folder of frames")
    keep_channels(clips, stored, channels, sheet.path)
    if files.tolerant:
        clips.table.count("path_matched_tolerantly", files.tolerant)
    table = clips.table
    order = {(r.subject, r.clip): i for i, r in enumerate(listed)}
    table.samples.sort(key=lambda s: order[s.subject, s.clip])  # manifest order, folders and files alike
    return table


# -- options ---------------------------------------------------------------------------------------
def require_root(root) -> Path:
    path = Path(str(root)).expanduser() if root else None
    if path is None or not path.is_dir():
        raise MERError(f"precomputed inputs not found: data.root='{path}' is not a folder. Point data.root at the "
                       "folder holding the inputs and their manifest (data.reader.manifest=<file>), e.g. one "
                       "written by `python -m mer_lightning.preprocess export=<folder>`")
    return path


def check_scale(scale) -> str | float:
    """`data.reader.scale`: auto, minmax or a positive number (the stored values are divided by it)."""
    text = str(scale).strip().lower() if scale is not None else "auto"
    if text in SCALES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        raise MERError(f"data.reader.scale={scale}: choose auto (images / 255, arrays as stored), minmax (each "
                       "channel of a clip scaled to [0, 1]) or a positive number the values are divided by (e.g. 255)")
    return value


def check_channels(channels) -> int:
    try:
        value = int(channels)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise MERError(f"data.reader.channels={channels}: give the channels the stored inputs hold: 3 (flow u, v, "
                       "strain, or RGB images), 1 (grayscale) or the C of (C, H, W) arrays")
    return value


def check_label_names(label_names) -> list[str]:
    if label_names is None:
        return []
    if isinstance(label_names, (str, bytes, Mapping)):
        raise MERError(f"data.reader.label_names={label_names!r}: give the class names in the order of the "
                       "integer labels, e.g. data.reader.label_names=[negative,positive,surprise]")
    names = [str(name).strip().lower() for name in label_names]
    twice = sorted(name for name, n in Counter(names).items() if n > 1)
    if twice or "" in names:
        raise MERError(f"data.reader.label_names={list(label_names)}: each name once and none blank "
                       f"({'repeated: ' + ', '.join(twice) if twice else 'a blank name'})")
    return names


def check_pattern(pattern: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as err:
        raise MERError(f"data.reader.pattern='{pattern}' is not a pattern ({err}): write it as "
                       "'{subject}_{sample}.png'") from None
    unknown = [name for name in fields if name not in PLACEHOLDERS]
    if unknown or not fields:
        raise MERError(f"data.reader.pattern='{pattern}' names {', '.join('{' + n + '}' for n in unknown) or 'no column'}; "
                       "its placeholders are {subject}, {sample} and {dataset}, e.g. '{subject}/{sample}.png'")
    if pattern.startswith(("/", "\\")) or os.path.isabs(pattern):
        raise MERError(f"data.reader.pattern='{pattern}' is an absolute path: write it relative to data.root")


def label_of(cell, names: list[str]) -> tuple[str, str]:
    """(emotion name, '') for a label cell, or ('', why the row is skipped)."""
    text = cell_text(cell)
    if not text:
        return "", "the label cell is blank"
    if INTEGER.fullmatch(text):
        if not names:
            return "", (f"label '{text}' is a number: name the classes with data.reader.label_names=[...] "
                        "(the first is 0)")
        if 0 <= int(text) < len(names):
            return names[int(text)], ""
        return "", f"unknown label {text}: data.reader.label_names has {len(names)} names (0-{len(names) - 1})"
    if names and text.lower() not in names:
        return "", f"unknown label '{text}' (data.reader.label_names: {', '.join(names)})"
    return text.lower(), ""


# -- the manifest ----------------------------------------------------------------------------------
def find_manifest(root: Path, manifest: str | None) -> Sheet:
    """The manifest's table: `manifest` (relative to the root or absolute), else the first of
    `MANIFESTS` in the root, else the first sheet in the root whose header has the columns."""
    if manifest:
        path = Path(str(manifest)).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise MERError(f"manifest not found: {path} (data.reader.manifest={manifest}; a relative path is "
                           f"under data.root={root})")
        candidates = [path]
    else:
        candidates = [root / name for name in MANIFESTS if (root / name).is_file()] or \
            sheet_files(root, ("*manifest*", "*"), depth=0)
    if not candidates:
        raise MERError(f"no manifest in {root}: name it with data.reader.manifest=<file> (a CSV or XLSX with the "
                       f"columns {COLUMNS.expected()[:3]} and optionally dataset, path)")
    found, seen, _ = first_with_header(candidates, COLUMNS, lambda path, sheet: f"manifest {path} (sheet '{sheet}')",
                                       shown=12)
    if found is not None:
        return found
    raise MERError(f"no manifest header in {', '.join(str(p) for p in candidates[:3])}: expected the columns "
                   f"{COLUMNS.expected()[:3]} (case-insensitive; optional dataset, path, onset, apex, offset); "
                   f"found {'; '.join(seen) or 'empty sheets'}")


# -- files -----------------------------------------------------------------------------------------
def split_name(name: str) -> tuple[str, str]:
    """(stem, kind) of a file or folder name: kind `img` for any image suffix, `npy`, or '' (a folder,
    or a suffix this reader does not read); spaces before the suffix are dropped."""
    match = _SUFFIX.match(name)
    if not match:
        return name.strip(), ""
    return match.group(1).strip(), "npy" if match.group(2).lower() == ARRAY_SUFFIX else "img"


def tolerant_key(relative: str) -> tuple[tuple[str, ...], str]:
    """How a relative path is compared when it is not found as written: each part in lower case with
    leading zeros of numbers dropped, the last part's suffix reduced to its kind (`split_name`)."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return (), ""
    stem, kind = split_name(parts[-1])
    return tuple(fold(p) for p in (*parts[:-1], stem)), kind


def fold(part: str) -> str:
    """One part of a path as `tolerant_key` compares it: lower case, leading zeros of numbers dropped."""
    return _DIGITS.sub(lambda m: str(int(m.group())), part.strip().lower())


class Files:
    """Files and folders under the root, found by a relative path as written, else tolerantly
    (`tolerant_key`), listing each depth of the tree once (and no deeper than asked)."""

    def __init__(self, root: Path):
        self.root = root
        self._levels: dict[int, dict[tuple, list[str]]] = {}
        self.tolerant = 0  # paths found only tolerantly

    def find(self, relative: str) -> tuple[Path | None, str]:
        """(the path, '') or (None, why not)."""
        relative = posixpath.normpath(relative.replace("\\", "/"))
        exact = self.root / relative
        if exact.exists():
            return exact, ""
        key, kind = tolerant_key(relative)
        level = self._level(len(key) - 1)
        kinds = (kind,) if kind else ("", "img", "npy")
        hits = sorted({path for k in kinds for path in level.get((key, k), [])})
        if len(hits) > 1:
            return None, f"'{relative}' matches several files ({', '.join(hits[:4])}): keep one, or give a path column"
        if not hits:
            return None, (f"no file matches '{relative}' in {self.root} (compared ignoring case, spaces before the "
                          "extension, .png/.jpg and leading zeros)")
        self.tolerant += 1
        if self.tolerant == 1:
            log.info("Matched '%s' to %s (tolerantly; the count is in the notes as path_matched_tolerantly)",
                     relative, hits[0])
        return self.root / hits[0], ""

    def _level(self, depth: int) -> dict[tuple, list[str]]:
        """(tolerant key, kind) -> relative paths of the files (of kinds this reader reads) and folders
        `depth` levels below the root (0: in it)."""
        if depth not in self._levels:
            index: dict[tuple, list[str]] = {}
            base = len(self.root.parts)
            for folder, dirs, names in os.walk(self.root) if depth >= 0 else ():
                level = len(Path(folder).parts) - base
                visible = sorted(d for d in dirs if not d.startswith("."))
                dirs[:] = visible if level < depth else []
                if level != depth:
                    continue
                relative = Path(folder).relative_to(self.root)
                for name in visible:
                    key, _ = tolerant_key((relative / name).as_posix())
                    key = (*key[:-1], fold(name))  # a folder's name has no suffix to drop (spNO.1)
                    index.setdefault((key, ""), []).append((relative / name).as_posix())
                for name in sorted(names):
                    key, kind = tolerant_key((relative / name).as_posix())
                    if kind and not name.startswith("."):
                        index.setdefault((key, kind), []).append((relative / name).as_posix())
            self._levels[depth] = index
        return self._levels[depth]


def locate(files: Files, row: ClipRow, pattern: str | None) -> tuple[Path | None, str]:
    """The file or folder of a clip row: its path cell, else the pattern filled with its cells."""
    if row.extra["path"]:
        return files.find(row.extra["path"])
    if not pattern:
        return None, "the path cell is blank and data.reader.pattern is not set"
    relative = pattern.format(subject=row.extra["subject_cell"], sample=row.clip, dataset=row.extra["source"])
    problem = unsafe_path("pattern", relative, files.root)
    if problem:
        return None, f"data.reader.pattern='{pattern}' gives '{relative}': {problem.split(': ', 1)[0]}"
    found, problem = files.find(relative)
    return found, (f"data.reader.pattern='{pattern}': {problem}" if problem else "")


def probe(path: Path) -> tuple[tuple[int, int, int, int] | None, str]:
    """((T, C, H, W), '') of a stored input from its header (no decoding), or (None, why it cannot be used)."""
    if path.suffix.lower() == ARRAY_SUFFIX:
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype = tuple(int(n) for n in array.shape), array.dtype
            del array
        except (OSError, ValueError, EOFError) as err:
            return None, f"cannot read the array {path} ({err})"
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(dtype, np.complexfloating):
            return None, f"the array {path} holds {dtype} values: store real numbers"
        if len(shape) not in (3, 4) or 0 in shape:
            return None, f"the array {path} has shape {shape}: expected (C, H, W) or (T, C, H, W)"
        return ((1, *shape) if len(shape) == 3 else shape), ""
    problem = check_frame_files([(0, path)])
    if problem:
        return None, problem.replace("frame file", "file").replace("cannot read frame", "cannot read")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, (width, height), info = image.mode, image.size, dict(image.info)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        return None, f"cannot read the image {path} ({type(err).__name__}: {err})"
    channels = MODE_CHANNELS.get(mode, 0)
    if mode == "P" and "transparency" in info:
        channels = 4
    if channels not in (1, 3):
        return None, (f"the image {path} has {channels or 'an unknown number of'} channels ({mode}): store 1 "
                      "(grayscale) or 3 (RGB), e.g. without the alpha channel")
    return (1, channels, height, width), ""


def add_folder(clips: SheetClips, row: ClipRow, folder: Path, source: str, cropped: bool) -> None:
    """A folder of frames: a clip from onset to offset (its first and last frames unless the row says)."""
    numbers = [n for n, _ in numbered_frames(folder)]
    if not numbers:
        clips.skip(row, f"no image files in the folder {folder}")
        return
    onset = row.onset if row.onset is not None else numbers[0]
    offset = row.offset if row.offset is not None else numbers[-1]
    table = clips.table
    before = len(table.samples)
    add_clip(table, dataset=NAME, subject=row.subject, clip=row.clip, emotion=row.emotion, onset=onset,
             apex=row.apex, offset=offset, clip_dir=folder, where=clips.where(row), emotions=(row.emotion,))
    if len(table.samples) > before:
        table.samples[-1] = table.samples[-1].with_(source=source, cropped=cropped)


def keep_channels(clips: SheetClips, stored: list[tuple[Sample, ClipRow]], channels: int, manifest: Path) -> None:
    """Add the stored inputs with `channels` channels; skip the others, naming each (a set of mixed
    channel counts). None with them: a MERError saying what the files hold and the key to set."""
    counts = Counter(sample.stored.channels for sample, _ in stored)
    if stored and channels not in counts:
        held = ", ".join(f"{c} ({n} file(s), e.g. {next(s.stored.path for s, _ in stored if s.stored.channels == c)})"
                         for c, n in counts.most_common(3))
        raise MERError(f"the stored inputs of {manifest} have {held} channel(s), and data.reader.channels={channels}: "
                       f"set data.reader.channels={counts.most_common(1)[0][0]}")
    for sample, row in stored:
        if sample.stored.channels == channels:
            clips.table.samples.append(sample)
        else:
            clips.skip(row, f"{sample.stored.path} has {sample.stored.channels} channel(s) and the set has {channels} "
                            "(data.reader.channels): store every input with the same channels")
