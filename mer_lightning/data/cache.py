"""Storage of preprocessed clips: built once, memory-mapped ever after (what is computed per clip
lives in `preprocessing.py`).

A cache entry is a folder `<paths.cache_dir>/<dataset>-<key>/` holding

- `clips.npy`: every usable clip, (N, T, C, H, W), opened memory-mapped (the OS page cache, not
  the Python heap, holds it; DataLoader workers share it). uint8 for `input=frames`, float16 in
  [0, 1] for the motion inputs (`diff*`: 0.5 = no change; `flow*`: u, v, strain scaled per clip);
- `manifest.json`, written last: the key, the options, the ids of the clips in row order, the
  clips that were skipped and why, and the build statistics.

The key is a SHA-256 over the dataset root, the sample list (ids, frame paths with their sizes and
modification times, onset / apex / offset, whether the frames are face crops; a stored input's file
with its size and time, shape and scale) and every option that
changes the arrays (input, face and its settings, frame selection, number of frames, image size,
flow size, channels, flow method and scaling) plus the code versions of the cache, preprocessing,
faces and flow. Change any of them and a new entry is built; nothing stale is ever served.

Writes are atomic: an entry is built in a hidden temporary folder in the cache directory (the
array's blocks allocated up front, so a full disk fails there and not with a SIGBUS mid-build),
the array and then the manifest are written and fsynced, and the folder is renamed into place with
one `os.replace`. A build that crashes leaves at most a temporary folder, which is never read (and
is removed by the next build once it is a day old); an entry without a valid manifest is never
trusted. Any OSError while writing (disk full, quota, read-only or unwritable, I/O error, a failed
fsync) removes the temporary folder, publishes nothing and is a MERError that names the entry, the
reason and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_lightning.data.clips import BadFrame
from mer_lightning.data.preprocessing import Preprocessing
from mer_lightning.data.samples import Sample, Skip
from mer_lightning.utils.errors import MERError
from mer_lightning.vision.face import FaceNotFound

log = logging.getLogger(__name__)

# bump when the layout of an entry changes (what is computed per clip has its own version)
CACHE_VERSION = 1
MANIFEST = "manifest.json"
ARRAY = "clips.npy"
STALE_BUILD_SECONDS = 24 * 3600
WHERE_HINT = ("choose another place with `paths.cache_dir=/other/dir` "
              "(or `data.cache_dir=...`; `data.cache_dir=null` keeps the arrays in memory)")


# -- results -------------------------------------------------------------------------------------
@dataclass
class CacheReport:
    """What a build did (or, when an entry was reused, what its build did)."""

    path: str | None
    built: bool
    clips: int
    kept: int
    faces_found: int | None  # clips whose face was found with dlib (None: no face detection at all)
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    nbytes: int = 0

    def summary(self) -> str:
        where = self.path or "memory (no cache_dir)"
        verb = "built" if self.built else "reused"
        faces = (f", {self.faces_found} face(s) found with dlib" if self.faces_found is not None
                 else ", whole frames (no face detection)")
        lines = [f"preprocessing cache {verb}: {where}",
                 f"  {self.clips} clip(s) processed{faces}, {self.kept} kept, {len(self.skipped)} skipped, "
                 f"{self.seconds:.1f} s to build ({self.clips / max(self.seconds, 1e-9):.1f} clips/s), "
                 f"{self.nbytes / 2**20:.1f} MiB"]
        lines += [f"  skipped {s['sample']}: {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


@dataclass
class Prepared:
    """The arrays of the kept samples, which samples they are, and what was skipped."""

    clips: np.ndarray  # (len(kept), T, C, H, W), memory-mapped when it came from disk
    kept: list[int]  # positions in the sample list given, in row order
    skipped: list[Skip]
    report: CacheReport


# -- the cache -----------------------------------------------------------------------------------
class ClipCache:
    """Preprocessed arrays of one dataset under `cache_dir` (None: built in memory every run)."""

    def __init__(self, cache_dir: str | Path | None, prep: Preprocessing, root: str | Path, dataset: str = "data",
                 progress: bool = True):
        self.cache_dir = Path(str(cache_dir)).expanduser() if cache_dir not in (None, "") else None
        self.prep, self.root, self.dataset, self.progress = prep, Path(str(root)).expanduser(), dataset, progress

    def key(self, samples: Sequence[Sample]) -> str:
        h = hashlib.sha256()
        head = {"cache_version": CACHE_VERSION, "root": str(self.root.resolve()), "options": self.prep.options()}
        h.update(json.dumps(head, sort_keys=True).encode())
        for s in samples:
            h.update(json.dumps([s.id, s.onset, s.apex, s.offset, list(s.frame_numbers),
                                 [str(p) for p in s.frames], s.cropped]).encode())
            for path in s.frames:
                try:
                    st = os.stat(path)
                    h.update(f"{st.st_size}:{st.st_mtime_ns};".encode())
                except OSError:
                    h.update(b"missing;")
            if s.image is not None:
                h.update(f"{s.image.shape}{s.image.dtype}".encode())
                h.update(np.ascontiguousarray(s.image).tobytes())
            if s.stored is not None:  # a stored input (data=precomputed): its file, shape and scale
                h.update(json.dumps([str(s.stored.path), list(s.stored.shape), s.stored.scale]).encode())
                try:
                    st = os.stat(s.stored.path)
                    h.update(f"{st.st_size}:{st.st_mtime_ns};".encode())
                except OSError:
                    h.update(b"missing;")
        return h.hexdigest()

    def entry(self, key: str) -> Path:
        return self.cache_dir / f"{self.dataset}-{key[:24]}"

    # -- reading ---------------------------------------------------------------------------------
    def load(self, samples: Sequence[Sample], key: str | None = None) -> Prepared | None:
        """The entry for these samples and options, if a complete one exists; else None."""
        if self.cache_dir is None:
            return None
        key = key or self.key(samples)
        path = self.entry(key)
        if not path.exists():
            return None
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            if manifest.get("key") != key or manifest.get("cache_version") != CACHE_VERSION:
                raise ValueError("manifest of another key or version")
            clips = np.load(path / ARRAY, mmap_mode="r")
            rows = int(manifest["rows"])
            if list(clips.shape) != manifest["shape"] or str(clips.dtype) != manifest["dtype"] or rows > len(clips):
                raise ValueError(f"array {clips.shape} {clips.dtype} does not match the manifest")
            position = {s.id: i for i, s in enumerate(samples)}
            kept = [position[i] for i in manifest["ids"]]
            if len(kept) != rows:
                raise ValueError("row count differs from the ids")
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("Ignoring the incomplete or damaged cache entry %s (%s); rebuilding it", path, err)
            self._discard(path)
            return None
        report = CacheReport(**{**manifest["report"], "path": str(path), "built": False})
        skipped = [Skip(s["sample"], s["reason"]) for s in manifest["skipped"]]
        return Prepared(clips[:rows], kept, skipped, report)

    def get(self, samples: Sequence[Sample]) -> Prepared:
        """The cached arrays for these samples, built first when needed."""
        key = self.key(samples) if self.cache_dir is not None else ""
        return self.load(samples, key) or self.build(samples, key)

    # -- building --------------------------------------------------------------------------------
    def build(self, samples: Sequence[Sample], key: str | None = None) -> Prepared:
        """Process every sample; write the entry atomically (or keep it in memory without cache_dir)."""
        if self.cache_dir is None:
            return self._process(samples, np.empty((max(len(samples), 1), *self.prep.shape), self.prep.dtype), None)
        key = key or self.key(samples)
        final = self.entry(key)
        tmp = self._make_tmp(final.name)
        try:
            with _writing(final):
                target = np.lib.format.open_memmap(tmp / ARRAY, mode="w+", dtype=self.prep.dtype,
                                                   shape=(max(len(samples), 1), *self.prep.shape))
                _reserve(tmp / ARRAY)
            prepared = self._process(samples, target, final)
            with _writing(final):
                target.flush()
                del target
                _fsync(tmp / ARRAY)
            manifest = {"key": key, "cache_version": CACHE_VERSION, "dataset": self.dataset, "root": str(self.root),
                        "options": self.prep.options(), "shape": [max(len(samples), 1), *self.prep.shape],
                        "dtype": str(self.prep.dtype), "rows": len(prepared.kept),
                        "ids": [samples[i].id for i in prepared.kept],
                        "skipped": [s.as_dict() for s in prepared.skipped],
                        "report": {k: v for k, v in asdict(prepared.report).items() if k not in ("path", "built")},
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with _writing(final):
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: marks the entry complete
                _fsync(tmp / MANIFEST)
                os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared cache is readable by all
                self._publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        loaded = self.load(samples, key)
        if loaded is None:
            raise MERError(f"the cache entry {final} could not be read back after it was written")
        loaded.report.built = True
        return loaded

    def _make_tmp(self, name: str) -> Path:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_builds()
            return Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=self.cache_dir))
        except OSError as err:
            raise MERError(f"cache directory {self.cache_dir} is not writable ({err.strerror or err}); "
                           f"{WHERE_HINT}") from None

    def _remove_stale_builds(self) -> None:
        """Temporary folders of builds that crashed a day or more ago (never read, only in the way)."""
        now = time.time()
        for path in self.cache_dir.glob(".build-*"):
            try:
                if now - path.stat().st_mtime > STALE_BUILD_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass

    def _publish(self, tmp: Path, final: Path) -> None:
        try:
            os.replace(tmp, final)
        except OSError:
            # another process published the same key meanwhile (e.g. DDP ranks): keep theirs if complete
            if (final / MANIFEST).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return
            self._discard(final)
            os.replace(tmp, final)

    @staticmethod
    def _discard(path: Path) -> None:
        """Move an untrusted entry out of the way, then delete it."""
        if not path.exists():
            return
        aside = path.with_name(f".discard-{path.name}-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(path, aside)
        except OSError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    def _process(self, samples: Sequence[Sample], target: np.ndarray, path: Path | None) -> Prepared:
        start = time.perf_counter()
        aligner = self.prep.make_aligner(samples)
        kept, skipped, faces = [], [], 0
        with _progress(len(samples), f"preprocessing {self.dataset}", self.progress) as advance:
            for i, sample in enumerate(samples):
                try:
                    target[len(kept)] = self.prep.process(sample, aligner)
                    kept.append(i)
                    faces += aligner is not None and self.prep.wants_face(sample)
                except (BadFrame, FaceNotFound) as err:
                    reason = f"no face found on the onset frame ({err})" if isinstance(err, FaceNotFound) else str(err)
                    skipped.append(Skip(sample.id, reason))
                advance()
        report = CacheReport(path=str(path) if path else None, built=True, clips=len(samples), kept=len(kept),
                             faces_found=faces if aligner is not None else None,
                             skipped=[s.as_dict() for s in skipped], seconds=time.perf_counter() - start,
                             nbytes=int(np.prod(target.shape)) * target.dtype.itemsize)
        return Prepared(target[: len(kept)], kept, skipped, report)


@contextlib.contextmanager
def _writing(entry: Path):
    """An OSError while writing `entry` (disk full, quota, read-only, I/O error) becomes a MERError."""
    try:
        yield
    except OSError as err:
        raise MERError(f"could not write the cache entry {entry} ({err.strerror or err}); nothing was "
                       f"saved; free some disk space there, or {WHERE_HINT}") from err


def _reserve(path: Path) -> None:
    """Allocate the file's blocks now: on a full disk this raises an OSError here instead of killing
    the process with SIGBUS when a page of the memory map is first written."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):  # not supported here: skip
            raise
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    """Flush a file to the disk; a failure is raised (the data may never have been written)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _progress:
    """A rich progress bar on stderr (plain log lines when stderr is not a terminal)."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        self.total, self.description, self.enabled = total, description, enabled and total > 0
        self.progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        if not sys.stderr.isatty():
            log.info("%s: %d clip(s) ...", self.description, self.total)
            return lambda: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.progress.start()
        task = self.progress.add_task(self.description, total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
