"""Faults in real-layout datasets the readers must catch: a clip on two sheet rows, sheet paths that
lead out of the subject's folder, and file names that are not valid UTF-8."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mer_lightning.data.readers import read_casme2, read_composite, read_samm, read_smic
from mer_lightning.data.samples import check_sample_ids
from mer_lightning.data.synthetic import SyntheticSpec
from mer_lightning.data.synthetic.writers import (
    write_casme2_like,
    write_samm_like,
    write_smic_like,
)
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.io import write_json
from tests.conftest import run_cli

SMALL = dict(subjects=2, clips_per_class=1, min_frames=4, max_frames=5, frame_size=(320, 240), seed=1)
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """One small tree per layout (2 subjects x 3 clips), written once; tests copy before damaging one."""
    base = tmp_path_factory.mktemp("faults")
    return {
        "casme2": write_casme2_like(base / "CASME2", SyntheticSpec(
            **SMALL, emotions=("happiness", "surprise", "disgust"), cropped=True)),
        "samm": write_samm_like(base / "SAMM", SyntheticSpec(
            **SMALL, emotions=("Anger", "Happiness", "Surprise"), layout="samm")),
        "smic": write_smic_like(base / "SMIC", SyntheticSpec(**SMALL, layout="smic")),
    }


def _copy(trees, name, tmp_path) -> Path:
    return Path(shutil.copytree(trees[name], tmp_path / name))


def _edit_sheet(path: Path, edit) -> None:
    """Apply `edit` to the sheet as its cells stand (header=None: iloc row i is Excel row i + 1)."""
    raw = pd.read_excel(path, header=None)
    raw = edit(raw)
    raw.to_excel(path, header=False, index=False)


def _append_rows(raw: pd.DataFrame, rows: list[pd.Series]) -> pd.DataFrame:
    return pd.concat([raw, pd.DataFrame(rows)], ignore_index=True)


def _casme2_rows(root: Path):
    """The CASME II sheet's columns -> position, and its data rows (iloc 1.. = Excel rows 2..)."""
    raw = pd.read_excel(root / CASME2_SHEET, header=None)
    return {name: i for i, name in enumerate(raw.iloc[0]) if isinstance(name, str)}, raw


# -- a clip listed on two rows -------------------------------------------------------------------
def _duplicate_casme2(root: Path) -> tuple[str, str]:
    """Copy Excel row 2 (emotion respelled: still identical) and row 4 with another emotion; returns their ids."""
    col, raw = _casme2_rows(root)
    same, other = raw.iloc[1].copy(), raw.iloc[3].copy()
    same.iloc[col["Estimated Emotion"]] = f" {str(same.iloc[col['Estimated Emotion']]).upper()} "
    first_emotion = other.iloc[col["Estimated Emotion"]]
    other.iloc[col["Estimated Emotion"]] = "disgust" if first_emotion != "disgust" else "happiness"
    _edit_sheet(root / CASME2_SHEET, lambda r: _append_rows(r, [same, other]))  # Excel rows 8 and 9
    ids = [f"casme2/sub{int(r.iloc[col['Subject']]):02d}/{r.iloc[col['Filename']]}" for r in (same, other)]
    return ids[0], ids[1]


def test_identical_rows_are_read_once_and_conflicting_rows_leave_the_clip_out(trees, tmp_path, caplog):
    root = _copy(trees, "casme2", tmp_path)
    merged, conflicting = _duplicate_casme2(root)
    with caplog.at_level(logging.WARNING):
        table = read_casme2(root)
    ids = [s.id for s in table]
    assert len(ids) == len(set(ids)) == 6 - 1  # each clip once; the conflicting clip left out
    assert merged in ids and conflicting not in ids
    assert table.notes["duplicate_rows_merged"] == 1
    (skip,) = table.skipped
    assert skip.sample == conflicting
    clip = conflicting.split("/", 1)[1]
    assert f"{CASME2_SHEET} rows 4 and 9 list {clip} with different emotion (" in skip.reason
    assert f"{CASME2_SHEET} rows 2 and 8 list {merged.split('/', 1)[1]}" in caplog.text
    assert f"Skipped {conflicting}: {CASME2_SHEET} rows 4 and 9" in caplog.text


def test_samm_rows_that_differ_in_frames_name_the_rows_below_the_free_text(trees, tmp_path):
    root = _copy(trees, "samm", tmp_path)
    raw = pd.read_excel(root / SAMM_SHEET, header=None)
    col = {name: i for i, name in enumerate(raw.iloc[13]) if isinstance(name, str)}  # header: Excel row 14
    row = raw.iloc[14].copy()  # Excel row 15, the first clip
    row.iloc[col["Onset Frame"]] = int(row.iloc[col["Onset Frame"]]) + 1
    _edit_sheet(root / SAMM_SHEET, lambda r: _append_rows(r, [row]))  # Excel row 21
    table = read_samm(root)
    (skip,) = table.skipped
    assert skip.sample == f"samm/{int(row.iloc[col['Subject']]):03d}/{row.iloc[col['Filename']]}"
    onset = int(row.iloc[col["Onset Frame"]])
    assert f"{SAMM_SHEET} rows 15 and 21 list" in skip.reason and f"onset ({onset - 1} vs {onset})" in skip.reason
    assert len(table) == 5


def test_composite_counts_merged_rows_per_source(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    _, conflicting = _duplicate_casme2(root)
    table = read_composite(casme2_root=root, samm_root=trees["samm"])
    assert table.notes["casme2/duplicate_rows_merged"] == 1
    assert [s.sample for s in table.skipped] == [conflicting]
    assert len({s.id for s in table}) == len(table) == 5 + 6


def test_inspect_reports_duplicate_rows_in_summary_and_log(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    merged, conflicting = _duplicate_casme2(root)
    out = tmp_path / "inspect"
    proc = run_cli("mer_lightning.inspect_data", "data=casme2", f"data.root={root}", "data.classes=all",
                   "data.max_skipped_fraction=0.5", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 5 and summary["notes"]["duplicate_rows_merged"] == 1
    assert [s["sample"] for s in summary["skipped"]] == [conflicting]
    run_log = (out / "inspect.log").read_text()
    assert f"rows 2 and 8 list {merged.split('/', 1)[1]}" in run_log and f"Skipped {conflicting}" in run_log


# -- sheet paths that lead out of the subject's folder ---------------------------------------------
def test_sheet_paths_must_stay_inside_the_subject_folder(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    col, raw = _casme2_rows(root)
    other_clip = raw.iloc[4, col["Filename"]]  # a clip of sub02 (rows 2-4: sub01, 5-7: sub02)
    assert raw.iloc[4, col["Subject"]] == 2 and raw.iloc[1, col["Subject"]] == 1
    cells = {  # Excel row -> (column, value): each would read frames from outside sub01/
        2: ("Filename", f"../sub02/{other_clip}"),
        3: ("Filename", str(root / "Cropped" / "sub02" / other_clip)),
        4: ("Subject", f"sub01/../sub02/{other_clip}"),
        6: ("Filename", "."),
    }

    def edit(r):
        for row, (name, value) in cells.items():
            r.iloc[row - 1, col[name]] = value
        return r

    _edit_sheet(root / CASME2_SHEET, edit)
    table = read_casme2(root)
    assert len(table) == 6 - len(cells) and {s.subject for s in table} == {"sub02"}
    assert all(s.frames[0].parent.parent.name == s.subject for s in table)
    reasons = [s.reason for s in table.skipped]
    assert len(reasons) == len(cells)
    for (row, (name, value)), reason in zip(sorted(cells.items()), reasons):
        assert reason.startswith(f"{CASME2_SHEET} row {row}: {name} cell '{value}'"), reason
        assert f"must stay inside {root / 'Cropped'}/<subject>/" in reason
    assert "'..' component" in reasons[0] and "absolute path" in reasons[1] and "single folder name" in reasons[2]


def test_symlinked_frames_are_still_read(trees, tmp_path):
    """The check is lexical: a dataset (or a clip folder) reached through a symlink is fine."""
    root = _copy(trees, "casme2", tmp_path)
    elsewhere = tmp_path / "disk2" / "Cropped"
    elsewhere.parent.mkdir()
    (root / "Cropped").rename(elsewhere)
    (root / "Cropped").symlink_to(elsewhere)
    clip = next((elsewhere / "sub01").iterdir())
    clip.rename(tmp_path / "disk2" / clip.name)
    clip.symlink_to(tmp_path / "disk2" / clip.name)
    table = read_casme2(root)
    assert len(table) == 6 and not table.skipped


# -- names that are not valid UTF-8 -------------------------------------------------------------------
def _rename_bytes(path: Path, new_name: bytes) -> Path:
    """Rename `path` to a raw (non-UTF-8) name in the same folder; Python sees it with surrogate escapes."""
    target = os.fsencode(str(path.parent)) + b"/" + new_name
    os.rename(os.fsencode(str(path)), target)
    return Path(os.fsdecode(target))


def test_non_utf8_names_are_skipped_before_training(trees, tmp_path):
    root = _copy(trees, "smic", tmp_path)
    negative = root / "HS" / "s1" / "micro" / "negative"
    _rename_bytes(next(negative.iterdir()), b"s1_ne_\xe9")
    empty = os.fsencode(str(root / "HS" / "s2" / "micro" / "positive")) + b"/s2_po_\xe9"
    os.mkdir(empty)  # no frames: skipped by the reader, with the name in its reason
    subject = _rename_bytes(root / "HS" / "s2", b"s\xe92")
    assert "\udce9" in str(subject)
    table = check_sample_ids(read_smic(root))
    assert {s.subject for s in table} == {"s1"} and len(table) == 2
    reasons = {s.sample: s.reason for s in table.skipped}
    assert "smic/s1/s1_ne_\\xe9" in reasons and "smic/s\\xe92/s2_po_\\xe9" in reasons
    assert "s1/micro/negative/s1_ne_\\xe9" in reasons["smic/s1/s1_ne_\\xe9"]
    assert "not valid UTF-8" in reasons["smic/s1/s1_ne_\\xe9"] and "rename it" in reasons["smic/s1/s1_ne_\\xe9"]
    assert sum("not valid UTF-8" in r for r in reasons.values()) == 1 + 3  # s1_ne_\xe9 and s2's three clips
    assert "s\\xe92/micro/positive/s2_po_\\xe9: no image files" in reasons["smic/s\\xe92/s2_po_\\xe9"]
    write_json(tmp_path / "summary.json", table.summary())  # logged and written: all of it is UTF-8
    json.dumps(table.summary(), ensure_ascii=False).encode("utf-8")


def test_non_utf8_frame_file_is_skipped_in_a_sheet_dataset(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    sample = read_casme2(root)[0]
    _rename_bytes(sample.frames[1], b"reg_\xe9" + sample.frames[1].name[4:].encode())
    table = check_sample_ids(read_casme2(root))
    assert len(table) == 5
    (skip,) = table.skipped
    assert skip.sample == sample.id and f"{sample.frames[1].parent}/reg_\\xe9img" in skip.reason


def test_two_samples_with_one_id_are_an_error(trees, tmp_path):
    root = _copy(trees, "smic", tmp_path)
    clip = next((root / "HS" / "s1" / "micro" / "negative").iterdir())
    shutil.copytree(clip, root / "HS" / "s1" / "micro" / "positive" / clip.name)  # one clip under two classes
    with pytest.raises(MERError, match=f"'smic/s1/{clip.name}' .*negative/{clip.name}.*positive/{clip.name}"):
        check_sample_ids(read_smic(root))
