"""Storage faults: a full or unwritable disk is a clear MERError that leaves nothing half-written,
and concurrent jobs generating the same synthetic dataset never destroy each other's data."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_lightning.data.cache import ClipCache
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.preprocessing import Preprocessing
from mer_lightning.data.readers import read_casme2
from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.io import write_csv, write_json
from tests.conftest import ROOT

SMALL = {"subjects": 3, "clips_per_class": 1, "min_frames": 4, "max_frames": 5, "frame_size": (160, 120),
         "cropped": True}
not_as_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                             reason="root writes into read-only folders: chmod cannot make one unwritable")


@contextlib.contextmanager
def read_only(folder: Path):
    """A new folder nobody but root can write into, for the length of the block."""
    folder.mkdir()
    folder.chmod(0o500)
    try:
        yield folder
    finally:
        folder.chmod(0o700)


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _files(root: Path) -> dict[str, str]:
    """Relative path -> content digest of every file (sheets compared by their cells: xlsx zips
    carry a creation time)."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = (pd.read_excel(path, header=None).to_csv().encode() if path.suffix == ".xlsx"
                else path.read_bytes())
        out[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


# -- the preprocessing cache ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["open_memmap", "posix_fallocate", "fsync", "manifest"])
def test_full_disk_while_building_the_cache_is_a_clear_error(tiny_root, tmp_path, monkeypatch, where):
    cache_dir = tmp_path / "cache"
    samples = apply_scheme(read_casme2(tiny_root), "all").samples[:3]
    prep = Preprocessing(num_frames=2, image_size=16)
    cache = ClipCache(cache_dir, prep, tiny_root, progress=False)
    entry = cache.entry(cache.key(samples))
    target = {"open_memmap": (np.lib.format, "open_memmap"), "posix_fallocate": (os, "posix_fallocate"),
              "fsync": (os, "fsync"), "manifest": (Path, "write_text")}[where]
    if not hasattr(*target):
        pytest.skip(f"no {where} on this platform")
    with monkeypatch.context() as patch:
        patch.setattr(*target, _full)
        with pytest.raises(MERError) as caught:
            cache.get(samples)
    message = str(caught.value)
    assert "\n" not in message and str(entry) in message and "No space left on device" in message
    assert "paths.cache_dir=" in message and "data.cache_dir=null" in message and "disk space" in message
    assert not entry.exists() and list(cache_dir.iterdir()) == [], "no half entry, no temporary folder"
    built = ClipCache(cache_dir, prep, tiny_root, progress=False).get(samples)
    assert built.report.built and built.report.path == str(entry) and len(built.kept) == 3


# -- results files -------------------------------------------------------------------------------
def test_results_files_are_written_whole(tmp_path):
    write_json(tmp_path / "fold.json", {"a": np.int64(3), "b": np.arange(2)})
    frame = pd.DataFrame({"y_true": [0, 1], "name": ["x,y", "é"]})
    write_csv(tmp_path / "predictions.csv", frame)
    assert json.loads((tmp_path / "fold.json").read_text()) == {"a": 3, "b": [0, 1]}
    assert pd.read_csv(tmp_path / "predictions.csv").equals(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold.json", "predictions.csv"]


@pytest.mark.parametrize("writer", ["json", "csv"])
def test_full_disk_writing_results_keeps_the_old_file(tmp_path, monkeypatch, writer):
    path = tmp_path / f"results.{writer}"
    path.write_text("finished fold")
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(MERError) as caught:
        if writer == "json":
            write_json(path, {"uf1": 0.5})
        else:
            write_csv(path, pd.DataFrame({"y": [1]}))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "No space left on device" in message
    assert "kept" in message and "finished folds" in message
    assert path.read_text() == "finished fold" and [p.name for p in tmp_path.iterdir()] == [path.name]


@not_as_root
def test_unwritable_results_folder_is_a_clear_error(tmp_path):
    with read_only(tmp_path / "run") as folder:
        with pytest.raises(MERError, match=r"could not write .*run/results\.json \(Permission denied\).*kept"):
            write_json(folder / "results.json", {"uf1": 0.5})
        assert list(folder.iterdir()) == []


# -- synthetic data ------------------------------------------------------------------------------
WORKER = """
import sys, time
from pathlib import Path
from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic
root, ready, go = sys.argv[1:4]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
ensure_synthetic(root, SyntheticSpec(**{spec}))
"""


def test_concurrent_jobs_generate_one_complete_dataset(tmp_path):
    reference = ensure_synthetic(tmp_path / "reference" / "synthetic", SyntheticSpec(**SMALL))
    shared = tmp_path / "shared"
    shared.mkdir()
    root, go = shared / "synthetic", tmp_path / "go"
    code = WORKER.format(spec=repr(SMALL))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    jobs = [subprocess.Popen([sys.executable, "-c", code, str(root), str(tmp_path / f"ready{i}"), str(go)],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(3)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(3)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()  # all three start generating at the same moment
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], outputs
    assert _files(root) == _files(reference), "one complete dataset, identical to a single job's"
    assert json.loads((root / "synthetic.json").read_text()) == SyntheticSpec(**SMALL).fingerprint()
    assert _hidden(shared) == [], "no .partial (or set-aside) folder left"


def test_another_spec_is_replaced(tmp_path):
    reference = ensure_synthetic(tmp_path / "reference" / "synthetic", SyntheticSpec(**SMALL))
    root = tmp_path / "shared" / "synthetic"
    ensure_synthetic(root, SyntheticSpec(**SMALL, seed=1))
    ensure_synthetic(root, SyntheticSpec(**SMALL))  # moved aside with one rename, ours renamed in
    assert _files(root) == _files(reference) and _hidden(root.parent) == []


@pytest.mark.parametrize("when", ["while generating", "while renaming"])
def test_a_twin_published_meanwhile_is_used(tmp_path, monkeypatch, when):
    """Another job publishes the same spec before ours is renamed in: theirs is kept, ours discarded."""
    import dataclasses

    from mer_lightning.data.synthetic import layouts

    twin = ensure_synthetic(tmp_path / "twin", SyntheticSpec(**SMALL))
    root = tmp_path / "shared" / "synthetic"
    marker = (twin / "synthetic.json").stat().st_ino
    real_writer, real_replace = layouts.LAYOUTS["casme2"].write, os.replace

    def writer(tmp, spec):
        real_writer(tmp, spec)
        if when == "while generating":
            real_replace(twin, root)

    def replace(src, dst):
        if when == "while renaming" and Path(dst) == root and twin.exists():
            real_replace(twin, root)  # between the check and the rename
        return real_replace(src, dst)

    monkeypatch.setitem(layouts.LAYOUTS, "casme2", dataclasses.replace(layouts.LAYOUTS["casme2"], write=writer))
    monkeypatch.setattr(os, "replace", replace)
    ensure_synthetic(root, SyntheticSpec(**SMALL))
    assert (root / "synthetic.json").stat().st_ino == marker, "the twin already published is used"
    assert _hidden(root.parent) == [] and not twin.exists()


def test_full_disk_while_generating_is_a_clear_error(tmp_path, monkeypatch):
    root = tmp_path / "data" / "synthetic"
    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", _full)
        with pytest.raises(MERError) as caught:
            ensure_synthetic(root, SyntheticSpec(**SMALL))
    message = str(caught.value)
    assert "\n" not in message and str(root) in message and "No space left on device" in message
    assert "data.root=" in message
    assert not root.exists() and list(root.parent.iterdir()) == [], "the temporary folder is removed"
    ensure_synthetic(root, SyntheticSpec(**SMALL))
    assert (root / "synthetic.json").is_file()


def test_other_files_at_the_root_are_never_deleted(tmp_path):
    root = tmp_path / "CASME2"
    root.mkdir()
    (root / "CASME2-coding-20140508.xlsx").write_text("a real dataset")
    with pytest.raises(MERError, match=r"not a synthetic dataset.*data\.root="):
        ensure_synthetic(root, SyntheticSpec(**SMALL))
    assert [p.name for p in root.iterdir()] == ["CASME2-coding-20140508.xlsx"] and _hidden(tmp_path) == []


@not_as_root
def test_unwritable_parent_is_a_clear_error(tmp_path):
    with read_only(tmp_path / "data") as parent:
        with pytest.raises(MERError, match=r"synthetic dataset to .*data/synthetic \(Permission denied\).*data\.root="):
            ensure_synthetic(parent / "synthetic", SyntheticSpec(**SMALL))
        assert list(parent.iterdir()) == []
