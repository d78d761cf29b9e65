"""The CAS(ME)^3, CASME and MMEW readers on files written in their layouts (quirks and label errors
included), their correction tables, their bad input, `inspect` and one end-to-end training run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.readers._sheet import apply_corrections
from mer_lightning.data.readers.casme import read_casme
from mer_lightning.data.readers.casme3 import CORRECTIONS as CASME3_CORRECTIONS
from mer_lightning.data.readers.casme3 import read_casme3
from mer_lightning.data.readers.mmew import read_mmew
from mer_lightning.data.samples import SampleTable
from mer_lightning.data.synthetic import SyntheticSpec, read_synthetic
from mer_lightning.data.synthetic.writers.casme import SHEET as CASME_SHEET
from mer_lightning.data.synthetic.writers.casme import write_casme_like
from mer_lightning.data.synthetic.writers.casme3 import FRAMES as CASME3_FRAMES
from mer_lightning.data.synthetic.writers.casme3 import SHEET as CASME3_SHEET
from mer_lightning.data.synthetic.writers.casme3 import write_casme3_like
from mer_lightning.data.synthetic.writers.mmew import SHEET as MMEW_SHEET
from mer_lightning.data.synthetic.writers.mmew import write_mmew_like
from mer_lightning.utils.errors import MERError
from tests.conftest import run_cli

SMALL = dict(clips_per_class=1, min_frames=4, max_frames=6, frame_size=(160, 120), seed=1)
CASME3_NOTES = {"corrected/apex_before_onset": 1, "corrected/onset_typo": 1, "corrected/offset_typo": 1,
                "corrected/offset_zero": 2, "corrected/onset_zero": 1, "corrected/apex_zero": 1}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("more_a")
    return {
        "casme3": write_casme3_like(base / "CASME3", SyntheticSpec(**SMALL, subjects=5, layout="casme3"), part_c=True),
        "casme": write_casme_like(base / "CASME", SyntheticSpec(**SMALL, subjects=3, layout="casme")),
        "casme_meb": write_casme_like(base / "CASME_meb", SyntheticSpec(**SMALL, subjects=2, layout="casme"),
                                      meb_version=True),
        "mmew": write_mmew_like(base / "MMEW", SyntheticSpec(**SMALL, subjects=3, layout="mmew")),
        "mmew_official": write_mmew_like(base / "MMEW_o", SyntheticSpec(**SMALL, subjects=2, layout="mmew"),
                                         official=True),
    }


def _copy(trees, name, tmp_path) -> Path:
    return Path(shutil.copytree(trees[name], tmp_path / name))


# -- CAS(ME)^3 -----------------------------------------------------------------------------------
def test_casme3_part_a_counts_ids_fps_and_corrections(trees):
    table = read_casme3(trees["casme3"])
    assert len(table) == 5 * 7 and not table.skipped
    assert table.subjects == ["spNO.14", "spNO.149", "spNO.214", "spNO.216", "spNO.40"]
    assert {s.fps for s in table} == {30.0} and {s.dataset for s in table} == {"casme3"}
    assert {s.emotion for s in table} == {"happy", "disgust", "surprise", "others", "fear", "anger", "sad"}  # `Others`
    notes = dict(table.notes)
    sheet = pd.read_excel(trees["casme3"] / "part_A/annotation" / CASME3_SHEET, sheet_name="label")
    videos = sheet.groupby(["Subject", sheet["Filename"].str.lower()]).size()
    assert notes.pop("corrected/shared_filename") == int((videos - 1).sum()) > 0
    assert notes == CASME3_NOTES  # every documented label error fixed once, none silently
    by_id = {s.id: s for s in table}
    assert (by_id["casme3/spNO.149/d_112"].apex, by_id["casme3/spNO.216/e_1"].apex) == (123, 1)
    assert "casme3/spNO.216/d_2647" in by_id and by_id["casme3/spNO.214/c_30"].offset == 34
    assert [by_id[i].offset for i in by_id if i.startswith("casme3/spNO.40/e_")] == [1845, 2403]
    assert "casme3/spNO.14/j_" + str(sheet[sheet["Filename"] == "J"]["Onset"].iloc[0]) in by_id  # `J` -> folder j
    for s in table:
        assert s.frame_numbers[0] == s.onset and s.frame_numbers[-1] == s.offset and s.onset <= s.apex <= s.offset


def test_casme3_part_c_has_no_apex_and_schemes(trees):
    table = read_casme3(trees["casme3"], part_c_root=trees["casme3"] / "part_C")
    part_c = [s for s in table if s.subject.startswith("C")]
    assert len(part_c) == 8 and {s.subject for s in part_c} == {"C01", "C02"}
    assert table.notes["apex_missing"] == 8 and all(s.apex == (s.onset + s.offset) // 2 for s in part_c)
    assert apply_scheme(table, "casme3_4").class_counts() == {"negative": 5 * 4 + 2, "positive": 5 + 2,
                                                              "surprise": 5 + 2, "others": 5 + 2}
    three = apply_scheme(table, "megc_3")  # the `casme3:` aliases: fear, sad -> negative, happy -> positive
    assert three.class_counts() == {"negative": 22, "positive": 7, "surprise": 7}
    assert apply_scheme(table, "casme3_3").class_counts() == three.class_counts()
    assert len(apply_scheme(table, "casme3_7")) == 35 + 4  # part C: its surprise and others fit, 4 dropped


def test_casme3_per_me_release_layout(trees, tmp_path):
    """The third-party `Part_A_ME_clip/frame/spNo.1_a_355/` release is read too (spNo spelling)."""
    root = _copy(trees, "casme3", tmp_path)
    frames, clips = root / CASME3_FRAMES, root / "Part_A_ME_clip" / "frame"
    for s in read_casme3(trees["casme3"]):
        target = clips / f"spNo.{s.subject[5:]}_{s.clip.split('_')[0]}_{s.onset}"
        target.mkdir(parents=True)
        for path in s.frames:
            shutil.copy(path, target / path.name)
    shutil.rmtree(root / "part_A" / "data")
    table = read_casme3(root)
    assert len(table) == 35 and not table.skipped and frames != clips


def test_casme3_table_leaves_other_versions_alone():
    records = [{"row": 2, "subject": "spNO.149", "filename": "d", "onset": 112, "apex": 123, "offset": 130}]
    table = SampleTable([])
    apply_corrections(records, CASME3_CORRECTIONS["part_A"], table, "v3.xlsx")
    assert records[0]["apex"] == 123 and table.notes == {}


def test_casme3_bad_rows_unknown_version_and_missing_root(trees, tmp_path):
    root = _copy(trees, "casme3", tmp_path)
    sheet_path = root / "part_A/annotation" / CASME3_SHEET
    sheet = pd.read_excel(sheet_path, sheet_name="label")
    sheet.loc[5, "emotion"] = "contempt"  # unknown emotion
    sheet.loc[6, "Filename"] = "../x"  # leads out of the subject folder
    first = sorted((root / CASME3_FRAMES / "spNO.14" / "a" / "color").iterdir())
    first[1].write_bytes(first[1].read_bytes()[:200])  # a truncated frame
    sheet.to_excel(sheet_path, sheet_name="label", index=False)
    table = read_casme3(root)
    reasons = " | ".join(s.reason for s in table.skipped)
    assert len(table.skipped) == 3 and len(table) == 32, reasons
    assert "unknown emotion 'contempt'" in reasons and "not a single folder name" in reasons
    assert "truncated JPEG" in reasons and "row 7" in reasons
    sheet.drop(columns=["emotion"]).to_excel(sheet_path, sheet_name="label", index=False)
    with pytest.raises(MERError, match=r"unknown version.*missing column\(s\) \['emotion'\].*found columns"):
        read_casme3(root)
    with pytest.raises(MERError, match=r"CAS\(ME\)\^3 not found.*casme.psych.ac.cn/casme/e4"):
        read_casme3(tmp_path / "nowhere")


# -- CASME ---------------------------------------------------------------------------------------
def test_casme_two_apex_columns_padding_and_fps(trees):
    table = read_casme(trees["casme"])
    assert len(table) == 3 * 4 and not table.skipped and table.subjects == ["sub01", "sub02", "sub03"]
    assert table.notes == {"apex_from_apexf2": 1, "apex_missing": 1}
    assert {s.fps for s in table} == {60.0} and not any(s.cropped for s in table)
    names = {p.name.rsplit("-", 1)[1] for s in table for p in s.frames}
    assert any(len(n) == 7 and n.startswith("0") for n in names) or any(len(n) < 7 for n in names)
    assert len(apply_scheme(table, "casme_4")) == 12


def test_casme_meb_version_corrections(trees):
    """meb's 189-row sheet: rows 40, 42, 43, 54, 140 corrected (by row, only in that version)."""
    raw = pd.read_excel(trees["casme_meb"] / CASME_SHEET)
    assert len(raw) == 189 and {"Unnamed: 2", "Unnamed: 7", "ApexF2"} <= set(raw.columns)
    table = read_casme(trees["casme_meb"])
    assert not table.skipped and len(table) == 8
    assert {k: v for k, v in table.notes.items() if k.startswith("corrected/")} == {
        "corrected/onset_outside_frames": 3, "corrected/apex_middle_frame": 3, "corrected/offset_outside_frames": 5}
    spans = sorted((s.onset, s.apex, s.offset) for s in table if s.onset in (100, 101, 57))
    assert spans == [(57, 65, 74), (100, 120, 149), (101, 110, 119)]
    short = read_casme(trees["casme"])  # another version (12 rows): the table does not apply
    assert not any(k.startswith("corrected/") for k in short.notes)


def test_casme_unknown_sheet_and_missing_root(trees, tmp_path):
    root = _copy(trees, "casme", tmp_path)
    pd.read_excel(root / CASME_SHEET).rename(columns={"OnsetF": "Onset"}).to_excel(root / CASME_SHEET, index=False)
    with pytest.raises(MERError, match=r"missing column\(s\) \['onsetf'\]; found columns .*'onset'"):
        read_casme(root)
    (root / CASME_SHEET).unlink()
    with pytest.raises(MERError, match="no CASME coding sheet found"):
        read_casme(root)
    with pytest.raises(MERError, match=r"CASME not found.*casme/e1"):
        read_casme(None)


# -- MMEW ----------------------------------------------------------------------------------------
def test_mmew_others_in_repression_both_layouts(trees):
    for name, subjects, cropped in (("mmew", 3, True), ("mmew_official", 2, False)):
        table = read_mmew(trees[name])
        assert len(table) == subjects * 4 and not table.skipped
        assert table.notes == {"others_in_repression_folder": subjects}
        assert {s.fps for s in table} == {90.0} and {s.cropped for s in table} == {cropped}
        others = [s for s in table if s.emotion == "others"]
        assert others and all(s.frames[0].parent.parent.name == "repression" for s in others)
        assert all(s.frames[0].name == f"{s.onset}.jpg" for s in table)
    assert apply_scheme(read_mmew(trees["mmew"]), "mmew_7").class_counts()["others"] == 3


def test_mmew_bad_rows_and_missing_root(trees, tmp_path):
    root = _copy(trees, "mmew", tmp_path)
    sheet_path = root / "MMEW_Final" / MMEW_SHEET
    sheet = pd.read_excel(sheet_path)
    sheet.loc[0, "Estimated Emotion"] = "boredom"
    sheet.loc[1, "Filename"] = "S09-01-001"  # no such folder
    sheet.to_excel(sheet_path, index=False)
    table = read_mmew(root)
    assert len(table) == 10 and len(table.skipped) == 2
    assert "unknown emotion 'boredom'" in table.skipped[0].reason and "does not exist" in table.skipped[1].reason
    with pytest.raises(MERError, match=r"MMEW not found.*benxianyeye@163.com"):
        read_mmew(tmp_path / "nowhere")


# -- through the entry points -------------------------------------------------------------------
def test_synthetic_layouts_read_through_their_readers(tmp_path):
    for layout in ("casme3", "casme", "mmew"):
        table = read_synthetic(tmp_path / layout, layout=layout, subjects=2, clips_per_class=1, min_frames=4,
                               max_frames=5, frame_size=[96, 72])
        assert len(table) == 2 * len(SyntheticSpec(layout=layout).emotion_names) and not table.skipped
        assert {s.dataset for s in table} == {"synthetic"} and all(s.fps > 0 for s in table)


def test_inspect_casme3(trees, tmp_path):
    out = tmp_path / "inspect"
    proc = run_cli("mer_lightning.inspect_data", "data=casme3", f"data.root={trees['casme3']}",
                   f"data.reader.part_c_root={trees['casme3'] / 'part_C'}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 39 and summary["n_subjects"] == 7  # casme3_7 drops part C's negative, positive
    assert summary["notes"]["outside_scheme"] == 4 and summary["notes"]["corrected/offset_zero"] == 2


def test_train_fast_dev_run_on_mmew(trees, tmp_path):
    from mer_lightning.train import train
    from tests.conftest import compose_cfg

    cfg = compose_cfg("train.yaml", tmp_path / "run", [
        "data=mmew", f"data.root={trees['mmew']}", "data.image_size=16", "data.num_frames=2", "data.cache_dir=null",
        "data.batch_size=4", "data.face=none", "debug=fast_dev_run", "protocol.val_subjects=1",
        "runner.folds=[0]"])
    assert cfg.protocol.name == "loso"
    results = train(cfg)
    assert [f["test_subjects"] for f in results["folds"]] == [["S01"]]
