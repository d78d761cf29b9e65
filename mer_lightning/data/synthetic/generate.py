"""Generating a synthetic dataset once, safely shared by concurrent jobs, and reading it back.

`ensure_synthetic` writes a dataset in its layout (the layout's writer, `layouts.py`) unless an
identical one is already there, in a temporary folder published with one rename once complete (the
`synthetic.json` marker, written last, holds the spec's fingerprint). `read_synthetic` is the reader
of `data=synthetic`: it generates on first use, then reads the files through the reader of the real
dataset the layout imitates (`mer_lightning.data.readers`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

from mer_lightning.data.readers import dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.data.synthetic import writers  # noqa: F401 - imports every writer, so every layout is registered
from mer_lightning.data.synthetic.clips import SyntheticSpec
from mer_lightning.data.synthetic.layouts import layout as find_layout
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

SYNTHETIC_MARKER = "synthetic.json"  # written last: its presence marks a complete dataset


def ensure_synthetic(root: str | Path, spec: SyntheticSpec | None = None, write=None) -> Path:
    """Generate a synthetic dataset under `root` (in `spec.layout`) unless an identical one is there.

    `spec`: a `SyntheticSpec` (clips), or any spec with `layout`, `seed` and `fingerprint()` together with
    its `write(root, spec)` (the long videos' `VideoSpec` and its layout's writer).

    Safe when several jobs (a sweep, DDP ranks) call it at once for the same root: each generates in
    its own temporary folder next to `root`, writes the `synthetic.json` marker last and renames
    the folder into place; a job that finds the same dataset published meanwhile discards its copy.
    No folder another job is writing is ever deleted, nor a folder without a synthetic marker.
    """
    root = Path(root)
    spec = spec or SyntheticSpec()
    write = write or find_layout(spec.layout).write
    if _synthetic_fingerprint(root) == spec.fingerprint():
        return root
    if root.is_dir() and _synthetic_fingerprint(root) is None and any(root.iterdir()):
        raise MERError(f"data.root={root} holds files that are not a synthetic dataset (no readable "
                       f"{SYNTHETIC_MARKER}); they are left alone: choose a new or empty folder with `data.root=...`")
    log.info("Generating the synthetic %s-like dataset in %s (seed %d) ...", spec.layout, root, spec.seed)
    tmp = None
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
        write(tmp, spec)
        (tmp / SYNTHETIC_MARKER).write_text(json.dumps(spec.fingerprint()))  # last: marks it complete
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _publish_synthetic(tmp, root, spec)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise MERError(f"could not write the synthetic dataset to {root} ({err.strerror or err}); free some "
                           "disk space there or choose a writable folder with `data.root=/some/dir`") from err
        raise
    return root


def read_synthetic(root, layout: str = "casme2", subjects: int = 10, clips_per_class: int = 3,
                   emotions: Sequence[str] = (), min_frames: int = 10, max_frames: int = 18,
                   motion: Sequence[float] = (1.0, 3.0), frame_size: Sequence[int] = (), cropped: bool = False,
                   seed: int = 0, photos: Sequence[str] = ()) -> SampleTable:
    """The reader of `data=synthetic`: generate the dataset on first use (`SyntheticSpec`: the same
    options) in its own folder `root/<layout>-<spec hash>` (so layouts and sweeps over the spec never
    replace each other's data; `root` itself when it holds exactly this dataset), then read it through
    the reader of the real dataset whose `layout` it imitates; its samples are marked `dataset="synthetic"`."""
    spec = SyntheticSpec(subjects=subjects, clips_per_class=clips_per_class, emotions=tuple(emotions),
                         min_frames=min_frames, max_frames=max_frames, motion=tuple(motion),
                         frame_size=tuple(frame_size), cropped=cropped, seed=seed, layout=layout,
                         photos=tuple(photos))
    root = Path(root)
    if _synthetic_fingerprint(root) != spec.fingerprint():  # `root` itself, when it is this very dataset
        root = root / spec.folder_name()
    ensure_synthetic(root, spec)
    table = dataset(layout, "data.reader.layout").reader(root)
    table.samples = [s.with_(dataset="synthetic") for s in table.samples]
    return table


def _synthetic_fingerprint(root: Path) -> dict | None:
    """The spec fingerprint a complete synthetic dataset at `root` was generated from (else None)."""
    try:
        return json.loads((root / SYNTHETIC_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _publish_synthetic(tmp: Path, root: Path, spec: SyntheticSpec) -> None:
    """Rename the complete `tmp` to `root`. Another spec's dataset there is first moved aside with one
    rename (deleted once ours is in); the same spec published by another job meanwhile wins."""
    if _synthetic_fingerprint(root) == spec.fingerprint():
        shutil.rmtree(tmp, ignore_errors=True)  # another job won: use theirs
        return
    aside = None
    if _synthetic_fingerprint(root) is not None:
        aside = root.with_name(f".{root.name}.old-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(root, aside)
        except FileNotFoundError:  # moved aside by another job
            aside = None
    try:
        os.replace(tmp, root)  # fails when `root` is not empty: another job published first
    except OSError:
        if _synthetic_fingerprint(root) != spec.fingerprint():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
