"""Atomic writes of the files a run leaves: a crash never leaves half a file that a resume would trust."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mer_lightning.utils.errors import MERError


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a crash never leaves a half-written file that a resume would trust."""
    write_text(path, json.dumps(data, indent=2, default=_jsonable))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write atomically, as `write_json`."""
    write_text(path, frame.to_csv(index=False))


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: into a temporary file next to it (unique per process and
    call, so concurrent writers never share one), fsynced, then renamed over `path`; readers see
    the old file or the new one, never half of one. An OSError (disk full, unwritable folder, a
    failed fsync) removes the temporary file and is a MERError; files written before are kept."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise MERError(f"could not write {path} ({err.strerror or err}); the files already written (finished "
                       f"folds) are kept; free some disk space or make {path.parent} writable (or run elsewhere "
                       "with `paths.log_dir=/other/dir`), then rerun the same command") from err


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
