"""Our own per-clip inputs written in data=precomputed's format: a file per clip and a manifest.

    python -m mer_lightning.preprocess data.num_frames=1 export=flow_png       # onset -> apex flow, one PNG per clip
    python -m mer_lightning.train data=precomputed data.root=flow_png model=cnn  # trained on them (the command is printed)

What is written is each kept clip's array as the model gets it (before `data.mean` / `data.std`), at
`data.image_size`:

- `<subject>/<sample>.png` for one time step of 1 or 3 channels (`export_format=auto` or `png`): 8-bit,
  R, G, B = channels 0, 1, 2 (u, v and strain for flow, as STSTNet-style pipelines publish them). Frames
  (uint8) are written exactly; inputs in [0, 1] (flow, differences) are rounded to the nearest of 256
  levels (at most 1/510 off). `auto` writes a `.npy` instead when values fall outside [0, 1]
  (`data.flow_scaling=pixels`), which 8 bits would clip.
- `<subject>/<sample>.npy` (T, C, H, W) otherwise (`export_format=npy` for every clip): in full precision,
  the cache's own values (float16 for motion; frames as float32 in [0, 1], i.e. / 255), so reading them
  back gives the very tensors the model got.
- `manifest.csv`: dataset (the clip's source), subject, sample, label (the emotion as the dataset names
  it, so the same `data.classes` scheme applies), path; what `data=precomputed` reads by default.
- `export.json`: what the files hold (data and preprocessing options, shape, classes, counts) and the
  command that reads them back.

The folder is written in a temporary sibling and renamed into place once complete; an existing
folder is replaced only when it holds an earlier export (its `export.json`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mer_lightning.utils.errors import MERError

FORMATS = ("auto", "png", "npy")
MANIFEST = "manifest.csv"
MARKER = "export.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\- ]")


def export_inputs(datamodule, folder: str | Path, fmt: str = "auto", classes: Any = None) -> dict:
    """Write the loaded `datamodule`'s inputs to `folder` (see the module doc); returns the summary."""
    fmt = str(fmt or "auto").lower()
    if fmt not in FORMATS:
        raise MERError(f"export_format={fmt}: choose one of {FORMATS} (auto: PNG for one step of 1 or 3 channels "
                       "within [0, 1], .npy otherwise)")
    table, clips = datamodule.load(), datamodule.clips
    prep = datamodule.preprocessing
    steps, channels, size = prep.shape[:3]
    if fmt == "png" and (steps != 1 or channels not in (1, 3)):
        raise MERError(f"export_format=png writes one image per clip, and these inputs are T={steps} x C={channels}: "
                       "use export_format=npy (or auto), or one step of 1 or 3 channels (data.num_frames=1)")
    nameless = [s.id for s in table if not s.subject]
    if nameless:
        raise MERError(f"{len(nameless)} sample(s) have no subject (e.g. {nameless[0]}); the precomputed format is "
                       "per subject (LOSO): nothing exported")
    target = Path(str(folder)).expanduser().resolve()
    check_target(target)
    started = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as err:
        raise MERError(f"cannot write the export folder {target} ({err.strerror or err}); choose a writable "
                       "place with export=<folder>") from None
    try:
        rows, used, kinds = [], set(), Counter()
        for i, sample in enumerate(table):
            array = np.asarray(clips[i])
            kind = "png" if fmt == "png" or (fmt == "auto" and fits_png(array)) else "npy"
            relative = unique_path(sample, kind, used)
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            write_clip(tmp / relative, array, kind)
            kinds[kind] += 1
            source = sample.origin
            subject = sample.subject[len(source) + 1:] if sample.subject.startswith(f"{source}/") else sample.subject
            rows.append({"dataset": source, "subject": subject, "sample": sample.clip, "label": sample.emotion,
                         "path": relative})
        pd.DataFrame(rows, columns=["dataset", "subject", "sample", "label", "path"]).to_csv(tmp / MANIFEST,
                                                                                            index=False)
        summary = {"folder": str(target), "clips": len(rows), "files": dict(kinds), "shape": [steps, channels, size, size],
                   "dataset": datamodule.name, "root": str(datamodule.root), "classes": list(table.classes),
                   "data_classes": classes_option(classes), "preprocessing": prep.options(),
                   "skipped": [s.as_dict() for s in table.skipped],
                   "read_back": read_back_command(target, steps, channels, size, classes),
                   "seconds": round(time.perf_counter() - started, 3),
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / MARKER).write_text(json.dumps(summary, indent=1))  # last: marks the export complete
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        publish(tmp, target)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MERError(f"could not write the export {target} ({err.strerror or err}); nothing was published; free "
                       "some disk space there or choose another folder with export=<folder>") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def fits_png(array: np.ndarray) -> bool:
    """One time step of 1 or 3 channels whose values 8 bits hold: uint8, or within [0, 1]."""
    if array.ndim != 4 or array.shape[0] != 1 or array.shape[1] not in (1, 3):
        return False
    if array.dtype == np.uint8:
        return True
    return bool(np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1)


def write_clip(path: Path, array: np.ndarray, kind: str) -> None:
    """One clip's (T, C, H, W) array as a PNG (8 bits, RGB) or a .npy (full precision, values in [0, 1] as served)."""
    if kind == "npy":
        values = array.astype(np.float32) / np.float32(255) if array.dtype == np.uint8 else array
        np.save(path, np.ascontiguousarray(values), allow_pickle=False)
        return
    plane = array[0]
    pixels = plane if plane.dtype == np.uint8 else np.clip(np.rint(plane.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    image = pixels[0] if pixels.shape[0] == 1 else cv2.cvtColor(np.ascontiguousarray(pixels.transpose(1, 2, 0)),
                                                                cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    path.write_bytes(encoded.tobytes())


def safe_part(text: str) -> str:
    part = _UNSAFE.sub("_", str(text)).strip() or "_"
    return "_" if part in (".", "..") else part


def unique_path(sample, kind: str, used: set[str]) -> str:
    """`<subject>/<sample>.<kind>` (each part made safe for a file name; `/` inside names become folders),
    numbered when two clips would share it."""
    folders = [safe_part(p) for p in str(sample.subject).split("/")]
    names = [safe_part(p) for p in str(sample.clip).split("/")]
    stem = "/".join([*folders, *names])
    relative, n = f"{stem}.{kind}", 1
    while relative.lower() in used:
        n += 1
        relative = f"{stem}-{n}.{kind}"
    used.add(relative.lower())
    return relative


def classes_option(classes: Any) -> Any:
    if classes is None or isinstance(classes, str):
        return classes
    return [str(c) for c in classes]


def read_back_command(target: Path, steps: int, channels: int, size: int, classes: Any) -> str:
    option = classes_option(classes)
    shown = f"[{','.join(option)}]" if isinstance(option, list) else option
    command = (f"python -m mer_lightning.train data=precomputed data.root={target} data.reader.channels={channels} "
               f"data.num_frames={steps} data.image_size={size}")
    return command + (f" 'data.classes={shown}'" if shown and shown != "all" else "")


def check_target(target: Path) -> None:
    """Refuse a folder that holds anything but an earlier export."""
    if target.exists() and not target.is_dir():
        raise MERError(f"export={target} is a file: name a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise MERError(f"export={target} holds files that are not an earlier export (no {MARKER}); they are left "
                       "alone: choose a new or empty folder")


def publish(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`, an earlier export there first moved aside (then deleted)."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(target, aside)
    try:
        os.replace(tmp, target)
    except OSError:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
