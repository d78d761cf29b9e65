"""FER-2013: the CSV release (`fer2013.csv`: emotion, pixels, Usage) or the folder release
(`train/<class>/*.jpg`, `test/<class>/*.jpg`), both mapped to one canonical 7-class order.

Quirks handled here:
- The CSV's `emotion` is an index into 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise,
  6 Neutral; the folder release names classes (`angry ... surprise`), and sorting those names gives
  another order. Both are mapped *by name* to the canonical order (`fer_7` in labels.py).
- `Usage` Training / PublicTest / PrivateTest become the parts train / val / test (the usual
  protocol: select on PublicTest, report on PrivateTest). The folder release has train and test
  only; `protocol=holdout` then carves validation images out of train.
- No subject ids exist: every sample has subject '' and subject-independent protocols (LOSO,
  subject k-fold) refuse this dataset rather than invent subjects.
- Some copies hold identical images in two parts. With `dedupe` (default) a training or validation
  image whose pixels also appear in a later part (val, test) is dropped and counted as
  `duplicates_dropped`, so the evaluation parts stay exactly the official ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mer_lightning.data.readers._folders import IMAGE_SUFFIXES, require_root
from mer_lightning.data.readers._sheet import sheet_files
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import Sample, SampleTable
from mer_lightning.utils.errors import MERError

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the CSV's order
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDERS = {"train": "train", "test": "test"}
CSV_NAME = "fer2013.csv"
SIDE = 48
REQUEST_FROM = ("https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-"
                "challenge/data (fer2013.csv) or https://www.kaggle.com/datasets/msambare/fer2013 (folders)")


@register_dataset("fer2013", title="FER-2013", folder="fer2013", fps=(), classes="fer_7", protocol="holdout",
                  request_from=REQUEST_FROM, composite=False)
def read_fer2013(root, dedupe: bool = True) -> SampleTable:
    """Read FER-2013 (CSV if `fer2013.csv` is there, else the folder release) into a SampleTable."""
    root = require_root(root, "fer2013")
    csv = sheet_files(root, (CSV_NAME,))
    if csv:
        table = read_csv_release(csv[0])
    elif (root / "train").is_dir():
        table = read_folder_release(root)
    else:
        raise MERError(f"no FER-2013 data in {root}: expected {root / CSV_NAME} or the folders "
                       f"{root / 'train'}/<class>/ and {root / 'test'}/<class>/")
    return drop_duplicates(table) if dedupe else table


def read_csv_release(path: Path) -> SampleTable:
    try:
        sheet = pd.read_csv(path, dtype={"pixels": str, "Usage": str})
    except Exception as err:  # noqa: BLE001 - any parse failure: name the file
        raise MERError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    sheet = sheet.rename(columns=lambda c: str(c).strip())
    missing = [c for c in ("emotion", "pixels", "Usage") if c not in sheet.columns]
    if missing:
        found = [c for c in sheet.columns if not str(c).startswith("Unnamed")]
        raise MERError(f"{path}: missing column(s) {missing}; found columns {found}")
    sheet = sheet[["emotion", "pixels", "Usage"]]
    table = SampleTable([])
    for row_number, (code, pixels, usage) in enumerate(sheet.itertuples(index=False), start=2):
        usage = str(usage).strip()
        clip = f"{USAGE.get(usage, usage)}/{row_number - 2:05d}"
        where = f"{path.name} row {row_number}"
        label = _int(code)
        if label is None or not 0 <= label < len(CLASSES):
            table.skip(f"fer2013//{clip}", f"{where}: unknown emotion code '{code}' (expected 0-6: {', '.join(CLASSES)})")
            continue
        if usage not in USAGE:
            table.skip(f"fer2013//{clip}", f"{where}: unknown Usage '{usage}' (expected one of {list(USAGE)})")
            continue
        values = _pixels(pixels)
        if values.size != SIDE * SIDE or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            table.skip(f"fer2013//{clip}", f"{where}: pixels must be {SIDE * SIDE} integers 0-255, found {values.size} values")
            continue
        table.samples.append(Sample(dataset="fer2013", cropped=True, subject="", clip=clip, emotion=CLASSES[label],
                                    split=USAGE[usage], image=values.astype(np.uint8).reshape(SIDE, SIDE)))
    return table


def read_folder_release(root: Path) -> SampleTable:
    table = SampleTable([])
    for folder, split in FOLDERS.items():
        if not (root / folder).is_dir():
            raise MERError(f"FER-2013 folder release without {root / folder}: expected train/ and test/ with "
                           f"one folder per class ({', '.join(CLASSES)})")
        for class_dir in sorted(p for p in (root / folder).iterdir() if p.is_dir()):
            emotion = class_dir.name.strip().lower()
            images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if emotion not in CLASSES:
                for path in images:
                    table.skip(f"fer2013//{split}/{emotion}/{path.stem}",
                               f"{class_dir}: unknown class folder '{class_dir.name}' (expected {', '.join(CLASSES)})")
                continue
            for path in images:
                table.samples.append(Sample(dataset="fer2013", cropped=True, subject="", clip=f"{split}/{emotion}/{path.stem}",
                                            emotion=emotion, frames=(path,), split=split))
    return table


def drop_duplicates(table: SampleTable) -> SampleTable:
    """Drop train/val images whose exact pixels (or file bytes) also appear in a later part."""
    order = {"train": 0, "val": 1, "test": 2}
    latest: dict[str, int] = {}
    digests = [_digest(s) for s in table]
    for sample, digest in zip(table, digests):
        latest[digest] = max(latest.get(digest, -1), order[sample.split])
    kept = [s for s, d in zip(table, digests) if latest[d] == order[s.split]]
    dropped = len(table) - len(kept)
    out = SampleTable(kept, list(table.classes), list(table.skipped), dict(table.notes))
    if dropped:
        out.count("duplicates_dropped", dropped)
    return out


def _digest(sample: Sample) -> str:
    data = sample.image.tobytes() if sample.image is not None else Path(sample.frames[0]).read_bytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _pixels(cell) -> np.ndarray:
    """The space-separated pixel values of a cell (an empty array when it is not such a list)."""
    if not isinstance(cell, str):
        return np.empty(0, np.float32)
    try:
        return np.array(cell.split(), dtype=np.float32)
    except ValueError:
        return np.empty(0, np.float32)


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None
