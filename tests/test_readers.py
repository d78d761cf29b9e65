"""The dataset readers on files written in each real layout (quirks included), and their bad input."""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_lightning.data.datamodule import MERDataModule
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.readers import (
    read_casme2,
    read_composite,
    read_fer2013,
    read_samm,
    read_smic,
)
from mer_lightning.data.readers._folders import numbered_frames
from mer_lightning.data.samples import Sample, SampleTable
from mer_lightning.data.splits import make_folds
from mer_lightning.data.synthetic import SyntheticSpec
from mer_lightning.data.synthetic.writers import (
    write_casme2_like,
    write_fer2013_like,
    write_samm_like,
    write_smic_like,
)
from mer_lightning.utils.errors import MERError
from tests.conftest import run_cli

SMALL = dict(subjects=3, clips_per_class=1, min_frames=5, max_frames=7, frame_size=(320, 240), seed=1)
EMOTIONS = {"casme2": ("happiness", "surprise", "disgust"), "samm": ("Anger", "Happiness", "Surprise", "Other")}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """One small tree per layout, written once for this module (tests copy before damaging one)."""
    base = tmp_path_factory.mktemp("layouts")
    return {
        "casme2": write_casme2_like(base / "CASME2", SyntheticSpec(**SMALL, emotions=EMOTIONS["casme2"], cropped=True)),
        "casme2_raw": write_casme2_like(base / "CASME2_raw", SyntheticSpec(**SMALL, emotions=EMOTIONS["casme2"])),
        "samm": write_samm_like(base / "SAMM", SyntheticSpec(**SMALL, emotions=EMOTIONS["samm"], layout="samm")),
        "smic": write_smic_like(base / "SMIC", SyntheticSpec(**SMALL, layout="smic")),
        "fer_csv": write_fer2013_like(base / "fer_csv", SyntheticSpec(**SMALL, layout="fer2013")),
        "fer_folders": write_fer2013_like(base / "fer_dirs", SyntheticSpec(**SMALL, layout="fer2013"), folders=True),
    }


def _copy(trees, name, tmp_path) -> Path:
    return Path(shutil.copytree(trees[name], tmp_path / name))


# -- each layout ---------------------------------------------------------------------------------
def test_casme2_cropped_and_raw_layouts(trees):
    for name, prefix in (("casme2", "reg_img"), ("casme2_raw", "img")):
        table = read_casme2(trees[name])
        assert len(table) == 3 * 3 and not table.skipped
        assert table.subjects == ["sub01", "sub02", "sub03"]  # integer Subject cells -> subNN folders
        assert all(s.frames[0].name.startswith(prefix) for s in table)
        for s in table:
            assert s.frame_numbers[0] == s.onset and s.frame_numbers[-1] == s.offset
            assert s.onset <= s.apex <= s.offset


def test_casme2_sheet_quirks(trees):
    """Blank-headed extra columns are ignored (columns by name); the '/' apex is the middle frame."""
    raw = pd.read_excel(trees["casme2"] / "CASME2-coding-20140508.xlsx")
    assert {"Unnamed: 2", "Unnamed: 6"} <= set(raw.columns) and raw.loc[1, "ApexFrame"] == "/"
    table = read_casme2(trees["casme2"])
    assert table.notes == {"apex_missing": 1}
    second = table[1]
    assert second.apex == (second.onset + second.offset) // 2


def test_casme2_sheet_by_other_name_or_given(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    (root / "CASME2-coding-20140508.xlsx").rename(root / "CASME2-coding-20190701.xlsx")
    assert len(read_casme2(root)) == 9
    (root / "CASME2-coding-20190701.xlsx").rename(root / "my labels.xlsx")
    with pytest.raises(MERError, match="coding sheet not found.*data.reader.annotation_file"):
        read_casme2(root)
    assert len(read_casme2(root, annotation_file="my labels.xlsx")) == 9
    with pytest.raises(MERError, match="annotation sheet not found: .*nope.xlsx"):
        read_casme2(root, annotation_file="nope.xlsx")


def test_samm_header_below_free_text(trees):
    raw = pd.read_excel(trees["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx", header=None)
    assert raw.iloc[13, 0] == "Subject" and raw.iloc[0, 0].startswith("SAMM")  # header on Excel row 14
    table = read_samm(trees["samm"])
    assert len(table) == 3 * 4 and not table.skipped
    assert table.subjects == ["006", "007", "009"]  # integers 6, 7, 9 -> folders with SAMM's gaps
    sample = table[0]
    assert sample.frames[0].name == f"{sample.subject}_{sample.onset:05d}.jpg"
    assert {s.emotion for s in table} == {"anger", "happiness", "surprise", "other"}  # `others` spelled once


def test_samm_others_spelling_and_root_variants(trees, tmp_path):
    sheet = pd.read_excel(trees["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx", header=13)
    assert "others" in set(sheet["Estimated Emotion"]) and "Other" in set(sheet["Estimated Emotion"])
    labelled = apply_scheme(read_samm(trees["samm"]), "samm_5")
    assert labelled.class_counts() == {"anger": 3, "contempt": 0, "happiness": 3, "surprise": 3, "other": 3}
    # data.root may also be the SAMM folder itself, with the sheet given
    inner = trees["samm"] / "SAMM"
    table = read_samm(inner, annotation_file=str(trees["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx"))
    assert len(table) == 12


def test_smic_has_no_apex_and_uses_folders(trees):
    table = read_smic(trees["smic"])
    assert len(table) == 9 and table.subjects == ["s1", "s2", "s3"]
    assert table.notes["apex_missing"] == 9
    assert {s.emotion for s in table} == {"negative", "positive", "surprise"}
    assert all(s.frames[0].suffix == ".bmp" for s in table)


def test_fer2013_csv_parts_order_and_duplicates(trees):
    table = read_fer2013(trees["fer_csv"])
    assert table.notes == {"duplicates_dropped": 1}  # the training image repeated in PrivateTest
    assert {s.split for s in table} == {"train", "val", "test"}
    assert all(s.image.shape == (48, 48) and s.subject == "" for s in table)
    raw = pd.read_csv(trees["fer_csv"] / "fer2013.csv")
    labelled = apply_scheme(table, "fer_7")
    by_clip = {s.clip: s.label for s in labelled}
    for row, code in enumerate(raw.emotion[:10]):
        clip = [c for c in by_clip if c.endswith(f"/{row:05d}")]
        if clip:  # the CSV's index order is the canonical order
            assert by_clip[clip[0]] == code
    undeduped = read_fer2013(trees["fer_csv"], dedupe=False)
    assert len(undeduped) == len(table) + 1


def test_fer2013_folders_map_by_name_not_sorted_order(trees):
    table = apply_scheme(read_fer2013(trees["fer_folders"]), "fer_7")
    assert {s.split for s in table} == {"train", "test"}
    assert table.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    neutral = [s for s in table if s.frames[0].parent.name == "neutral"]
    assert neutral and all(s.label == 6 for s in neutral)  # sorted folder names would give 4


def test_fer2013_refuses_subject_protocols_and_carves_validation(trees):
    table = apply_scheme(read_fer2013(trees["fer_folders"]), "fer_7")
    with pytest.raises(MERError, match="needs subject ids.*protocol=holdout"):
        make_folds(table, "loso")
    (fold,) = make_folds(table, "holdout", val_subjects=0.25, seed=0)
    assert fold.val and set(fold.val).isdisjoint(fold.train)
    assert {table[i].split for i in fold.val} == {"train"} and {table[i].split for i in fold.test} == {"test"}


def test_composite_prefixes_subjects_and_maps_per_source(trees):
    table = read_composite(samm_root=trees["samm"], casme2_root=trees["casme2"], smic_root=trees["smic"])
    assert {s.origin for s in table} == {"samm", "casme2", "smic"}
    assert "samm/006" in table.subjects and "casme2/sub01" in table.subjects and "smic/s1" in table.subjects
    assert len(table.subjects) == 9 and all(s.dataset == "composite" for s in table)
    labelled = apply_scheme(table, "megc_3")
    assert labelled.classes == ["negative", "positive", "surprise"]
    assert labelled.notes["outside_scheme/other"] == 3  # SAMM Other is dropped


def test_megc_scheme_keeps_samm_fear_and_drops_casme2_fear():
    samples = [Sample("composite", f"{src}/s", f"{src}_{e}", e, source=src)
               for src in ("samm", "casme2") for e in ("fear", "sadness", "disgust", "happiness")]
    labelled = apply_scheme(SampleTable(samples), "megc_3")
    kept = {(s.origin, s.emotion): labelled.classes[s.label] for s in labelled}
    assert kept[("samm", "fear")] == "negative" and kept[("samm", "sadness")] == "negative"
    assert ("casme2", "fear") not in kept and ("casme2", "sadness") not in kept
    assert kept[("casme2", "disgust")] == "negative" and kept[("casme2", "happiness")] == "positive"


def test_frames_are_ordered_by_number(tmp_path):
    for n in (98, 99, 100, 101, 9):
        (tmp_path / f"img{n}.jpg").write_bytes(b"x")
    assert [n for n, _ in numbered_frames(tmp_path)] == [9, 98, 99, 100, 101]


# -- bad input -----------------------------------------------------------------------------------
def test_missing_root_is_one_clear_line(tmp_path):
    proc = run_cli("mer_lightning.train", "data=samm", f"data.root={tmp_path / 'nowhere'}",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for needle in (str(tmp_path / "nowhere"), "data.root=", "request it from"):
        assert needle in proc.stderr


def test_missing_sheet_or_column_names_the_file(trees, tmp_path):
    root = _copy(trees, "samm", tmp_path)
    sheet = root / "SAMM_Micro_FACS_Codes_v2.xlsx"
    raw = pd.read_excel(sheet, header=None)
    raw.iloc[13, 9] = "Feeling"  # rename "Estimated Emotion"
    raw.to_excel(sheet, header=False, index=False)
    with pytest.raises(MERError) as err:
        read_samm(root)
    assert str(sheet) in str(err.value) and "Estimated Emotion" in str(err.value) and "Feeling" in str(err.value)
    sheet.unlink()
    with pytest.raises(MERError, match=f"SAMM sheet not found in {root}"):
        read_samm(root)


def _damage(root: Path) -> dict[str, str]:
    """Damage three clips of a CASME II-like tree and one sheet row; returns clip -> expected reason."""
    table = read_casme2(root)
    gone, truncated, holed = table[0], table[3], table[6]
    shutil.rmtree(gone.frames[0].parent)
    data = truncated.frames[1].read_bytes()
    truncated.frames[1].write_bytes(data[: len(data) // 2])
    holed.frames[2].unlink()
    sheet = root / "CASME2-coding-20140508.xlsx"
    raw = pd.read_excel(sheet, header=None)
    raw.iloc[9, 8] = "hapiness"  # a typo on the ninth clip's row (Excel row 10)
    raw.to_excel(sheet, header=False, index=False)
    return {gone.id: "does not exist", truncated.id: "truncated JPEG", holed.id: "missing between onset",
            table[8].id: "row 10: unknown emotion 'hapiness'"}


def test_broken_clips_are_skipped_named_and_listed(trees, tmp_path, caplog):
    root = _copy(trees, "casme2", tmp_path)
    expected = _damage(root)
    table = read_casme2(root)
    assert len(table) == 9 - 4
    reasons = {s.sample: s.reason for s in table.skipped}
    assert set(reasons) == set(expected)
    for sample, needle in expected.items():
        assert needle in reasons[sample] and "CASME2-coding-20140508.xlsx row" in reasons[sample]
    # through the DataModule: 4 of 9 skipped is over the 10% limit -> an error naming them
    dm = _datamodule(root)
    with pytest.raises(MERError, match=r"4 of 9 samples .*max_skipped_fraction=0.1"):
        dm.load()
    dm = _datamodule(root, max_skipped_fraction=0.5)
    with caplog.at_level(logging.WARNING):
        assert len(dm.load()) == 5
    assert sum("Skipped casme2/" in r.message for r in caplog.records) == 4


def _datamodule(root, **options) -> MERDataModule:
    return MERDataModule(root, read_casme2, name="casme2", classes="all", image_size=16, num_frames=2, cache_dir=None,
                         **{"input": "frames", "face": "none", **options})


def test_empty_class_and_subject_without_clips_warn(trees, caplog):
    table = read_samm(trees["samm"])  # each subject: one anger, happiness, surprise, other clip
    with caplog.at_level(logging.WARNING):
        labelled = apply_scheme(table, ["anger", "contempt"])
    assert "Class 'contempt' has no samples" in caplog.text
    assert "subjects_without_clips" not in labelled.notes
    caplog.clear()
    no_anger_for_006 = SampleTable([s for s in table if not (s.subject == "006" and s.emotion == "anger")])
    with caplog.at_level(logging.WARNING):
        labelled = apply_scheme(no_anger_for_006, ["anger", "contempt"])
    assert labelled.notes["subjects_without_clips"] == 1
    assert "1 subject(s) have no usable clips" in caplog.text and "006" in caplog.text


# -- inspect -------------------------------------------------------------------------------------
def test_inspect_prints_and_writes_the_summary(trees, tmp_path):
    root = _copy(trees, "casme2", tmp_path)
    expected = _damage(root)
    out = tmp_path / "inspect"
    proc = run_cli("mer_lightning.inspect_data", "data=casme2", f"data.root={root}", "data.classes=all",
                   f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 5 and summary["n_subjects"] == 3
    assert sum(summary["class_counts"].values()) == 5
    assert {s["sample"] for s in summary["skipped"]} == set(expected)
    assert summary["frames_per_clip"]["min"] >= 4 and summary["frames_per_clip"]["max"] <= 7
    assert summary["notes"]["apex_missing"] == 1
    assert "sub01" in proc.stdout and "truncated JPEG" in proc.stdout and "frames per clip" in proc.stdout


def test_a_mistyped_reader_key_is_one_line_naming_it(trees, tmp_path):
    proc = run_cli("mer_lightning.inspect_data", "data=casme2", f"data.root={trees['casme2']}", "+data.reader.layot=Cropped",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "error: data.reader.layot is not a key of data.reader (read_casme2); known: annotation_file, layout" in proc.stderr
    with pytest.raises(MERError, match=r"data.reader.sources.casme2.layot is not a key .*known: annotation_file, layout"):
        read_composite(casme2_root=trees["casme2"], sources={"casme2": {"layot": "Cropped"}})
    with pytest.raises(MERError, match=r"data.reader.sources.casme4 is not a source of the composite"):
        read_composite(casme2_root=trees["casme2"], sources={"casme4": {}})


def test_synthetic_layouts_train_through_their_readers(tmp_path):
    """data=synthetic in the SAMM and FER-2013 layouts goes through those readers end to end."""
    from mer_lightning.data.synthetic import read_synthetic

    for layout, n in (("samm", 15), ("fer2013", 21)):
        spec = {"subjects": 3, "clips_per_class": 1, "layout": layout, "min_frames": 4, "max_frames": 6,
                "frame_size": [320, 240]}
        dm = MERDataModule(str(tmp_path / layout), functools.partial(read_synthetic, **spec), name="synthetic",
                           image_size=16, num_frames=2, cache_dir=None, input="frames", face="none")
        table = dm.load()
        assert len(table) == n and {s.dataset for s in table} == {"synthetic"}
        assert dm.clips.shape[1:] == (2, 1, 16, 16) and dm.clips.dtype == np.uint8



# -- the composite through the real entry point ------------------------------------------------
def _composite_cfg(trees, out: Path, *overrides: str):
    from tests.conftest import compose_cfg

    return compose_cfg("train.yaml", out, [
        "data=composite", f"data.reader.roots.samm={trees['samm']}", f"data.reader.roots.casme2={trees['casme2']}",
        "data.image_size=16", "data.num_frames=2", "data.cache_dir=null", "data.batch_size=4", "data.face=none",
        "extras.print_config=false", "trainer.accelerator=cpu", "debug=limit", "trainer.max_epochs=1",
        "protocol.val_subjects=1", "logger=csv", *overrides])


def test_composite_loso_reports_per_source(trees, tmp_path):
    from mer_lightning.train import train

    cfg = _composite_cfg(trees, tmp_path / "loso", "runner.folds=[0,3]")
    assert cfg.protocol.name == "loso"  # data=composite brings LOSO
    results = train(cfg)
    assert [f["test_subjects"] for f in results["folds"]] == [["casme2/sub01"], ["samm/006"]]
    assert set(results["per_source"]) == {"casme2", "samm"}
    preds = pd.read_csv(tmp_path / "loso" / "predictions.csv")
    assert set(preds.source) == {"casme2", "samm"} and results["classes"] == ["negative", "positive", "surprise"]
    assert "casme2" in (tmp_path / "loso" / "results.md").read_text()


def test_cross_dataset_trains_on_one_source_and_tests_on_the_other(trees, tmp_path):
    from mer_lightning.train import train

    results = train(_composite_cfg(trees, tmp_path / "cross", "protocol=cross_dataset",
                                   "protocol.train_on=casme2", "protocol.test_on=samm"))
    (fold,) = results["folds"]
    assert fold["test_subjects"] == ["samm/006", "samm/007", "samm/009"]
    preds = pd.read_csv(tmp_path / "cross" / "predictions.csv")
    assert set(preds.source) == {"samm"} and len(preds) == 9  # SAMM's 'other' clips are outside megc_3


def test_summary_of_a_dataset_without_subjects_counts_its_parts(trees):
    table = apply_scheme(read_fer2013(trees["fer_csv"]), "fer_7")
    summary = table.summary()
    assert summary["n_subjects"] == 0 and summary["subjects"] == {}
    assert list(summary["parts"]) == ["train", "val", "test"]
    assert sum(sum(c.values()) for c in summary["parts"].values()) == summary["n_samples"] == len(table)
    assert summary["notes"] == {"duplicates_dropped": 1}
