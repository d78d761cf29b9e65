"""4DME and DFME on files written in their layouts (quirks included), fps on every reader, composites over
any set of sources, and cross-dataset training from several sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.readers import (
    read_4dme,
    read_casme2,
    read_composite,
    read_dfme,
    read_samm,
    read_smic,
)
from mer_lightning.data.splits import make_folds
from mer_lightning.data.synthetic import SyntheticSpec
from mer_lightning.data.synthetic.writers import (
    write_4dme_like,
    write_casme2_like,
    write_dfme_like,
    write_samm_like,
    write_smic_like,
)
from mer_lightning.data.synthetic.writers.dfme import SHEET as DFME_SHEET
from mer_lightning.data.synthetic.writers.fourdme import SHEET as FOURDME_SHEET
from mer_lightning.utils.errors import MERError
from tests.conftest import compose_cfg, run_cli

SMALL = dict(subjects=3, clips_per_class=1, min_frames=5, max_frames=7, frame_size=(320, 240), seed=1)
DFME_EMOTIONS = ("happiness", "sadness", "surprise")


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """One small tree per layout, written once for this module (tests copy before damaging one)."""
    base = tmp_path_factory.mktemp("layouts_b")
    return {
        "4dme": write_4dme_like(base / "4DME", SyntheticSpec(**SMALL, layout="4dme")),
        "dfme": write_dfme_like(base / "DFME", SyntheticSpec(**SMALL, layout="dfme", emotions=DFME_EMOTIONS)),
        "samm": write_samm_like(base / "SAMM", SyntheticSpec(**SMALL, layout="samm",
                                                             emotions=("Anger", "Happiness", "Surprise"))),
        "casme2": write_casme2_like(base / "CASME2", SyntheticSpec(**SMALL, cropped=True,
                                                                   emotions=("happiness", "surprise", "disgust"))),
    }


def _copy(trees, name, tmp_path) -> Path:
    return Path(shutil.copytree(trees[name], tmp_path / name))


# -- 4DME -----------------------------------------------------------------------------------------
def test_4dme_reads_the_release_layout_and_skips_multi_label_clips(trees):
    table = read_4dme(trees["4dme"])
    # 3 subjects x 5 emotions, one clip labelled Surprise+Positive left out and counted (not a skip)
    assert len(table) == 14 and not table.skipped
    assert table.subjects == ["S01", "S02", "S03"]
    assert {s.emotion for s in table} == {"positive", "negative", "surprise", "repression", "others"}
    assert {s.fps for s in table} == {60.0} and all(s.dataset == "4dme" for s in table)
    assert table.notes["multi_label_dropped"] == 1 and table.notes["multi_label/positive+surprise"] == 1
    assert table.notes["columns_swapped"] == 1  # meb rows 144/145: AUs and Emotion cells swapped
    sample = table[0]
    assert sample.frames[0].name.startswith("Frame_") and sample.onset == sample.frame_numbers[0]
    labelled = apply_scheme(table, "4dme_5")
    assert labelled.classes == ["positive", "negative", "surprise", "repression", "others"] and len(labelled) == 14
    assert table.summary()["fps"] == {"4dme": [60.0]}


def test_4dme_multi_label_first_and_keep(trees):
    first = read_4dme(trees["4dme"], multi_label="first")
    assert len(first) == 15 and first.notes["multi_label_first"] == 1
    kept = read_4dme(trees["4dme"], multi_label="keep")
    assert "positive+surprise" in {s.emotion for s in kept}
    assert apply_scheme(kept, "4dme_5").notes["outside_scheme/positive+surprise"] == 1
    with pytest.raises(MERError, match="multi_label=both: choose one of skip, first, keep"):
        read_4dme(trees["4dme"], multi_label="both")


def test_4dme_flat_pre_release_layout_and_a_renamed_sheet(tmp_path):
    root = write_4dme_like(tmp_path / "flat", SyntheticSpec(**{**SMALL, "subjects": 1}, layout="4dme"), flat=True)
    (root / FOURDME_SHEET).rename(root / "labels copy.xlsx")  # found by its columns, not its name
    table = read_4dme(root)
    assert len(table) == 4 and table.subjects == ["S01"]
    assert (root / "gray_micro_register_final") in table[0].frames[0].parents


def test_4dme_bad_inputs(trees, tmp_path):
    with pytest.raises(MERError, match="4DME not found.*CMVS"):
        read_4dme(tmp_path / "nowhere")
    root = _copy(trees, "4dme", tmp_path)
    sheet = pd.read_excel(root / FOURDME_SHEET)
    sheet.loc[0, "Emotion"] = "Joy"  # unknown emotion (the AUs cell is no emotion either)
    first_clip = next((root / "4DMicro" / "gray_micro" / sheet.loc[1, "sub_ID"] / sheet.loc[1, "fold_name"]).iterdir())
    first_clip.write_bytes(b"\xff\xd8broken")  # a damaged frame
    sheet.to_excel(root / FOURDME_SHEET, index=False)
    table = read_4dme(root)
    reasons = " | ".join(s.reason for s in table.skipped)
    assert len(table.skipped) == 2 and "unknown emotion 'joy'" in reasons and "truncated JPEG" in reasons
    assert len(table) == 12
    sheet.rename(columns={"Onset": "Start", "Emotion": "Feeling"}).to_excel(root / FOURDME_SHEET, index=False)
    with pytest.raises(MERError, match=r"unknown sheet version.*Expected the columns.*onset \(Onset.*found: .*Start"):
        read_4dme(root)


# -- DFME -----------------------------------------------------------------------------------------
def test_dfme_parts_record_their_fps(trees):
    table = read_dfme(trees["dfme"])
    assert len(table) == 9 and not table.skipped and table.subjects == ["sub0001", "sub0002", "sub0003"]
    assert {s.emotion for s in table} == set(DFME_EMOTIONS)  # happy / sad spellings become one name each
    assert {s.subject: s.fps for s in table} == {"sub0001": 500.0, "sub0002": 300.0, "sub0003": 200.0}
    assert table.summary()["fps"] == {"dfme": [200.0, 300.0, 500.0]}
    assert {s.fps for s in read_dfme(trees["dfme"], fps=250)} == {250.0}
    assert apply_scheme(table, "dfme_7").class_counts()["happiness"] == 3


def test_dfme_suggested_layout_without_offsets_or_fps(tmp_path):
    spec = SyntheticSpec(**{**SMALL, "subjects": 2}, layout="dfme", emotions=DFME_EMOTIONS)
    root = write_dfme_like(tmp_path / "dfme", spec, suggested=True)
    table = read_dfme(root)
    assert len(table) == 6 and {s.fps for s in table} == {0.0} and table.notes["fps_unknown"] == 6
    assert all(s.onset == 0 and s.offset == len(s.frames) - 1 for s in table)  # the whole folder: 00000.png on
    assert table.notes["apex_relative"] == 6 and all(0 < s.apex < s.offset for s in table)


def test_dfme_bad_inputs(trees, tmp_path):
    with pytest.raises(MERError, match="DFME not found.*mea-lab-421"):
        read_dfme(tmp_path / "nowhere")
    root = _copy(trees, "dfme", tmp_path)
    sheet = pd.read_excel(root / DFME_SHEET)
    sheet.loc[0, "Emotion"] = "joy"
    sheet.loc[1, "Filename"] = "sub0009_01"  # no such folder
    sheet.to_excel(root / DFME_SHEET, index=False)
    table = read_dfme(root)
    assert len(table) == 7 and len(table.skipped) == 2
    assert any("no clip folder named 'sub0009_01'" in s.reason for s in table.skipped)
    pd.DataFrame({"Participant": ["sub0001"], "Clip": ["x"]}).to_excel(root / DFME_SHEET, index=False)
    with pytest.raises(MERError, match=r"DFME: no sheet with a known header.*subject \(Subject.*Participant"):
        read_dfme(root)


# -- fps on the existing readers ------------------------------------------------------------------
def test_existing_readers_record_fps(trees, tmp_path):
    smic = write_smic_like(tmp_path / "SMIC", SyntheticSpec(**{**SMALL, "subjects": 1}, layout="smic"))
    assert {s.fps for s in read_casme2(trees["casme2"])} == {200.0}
    assert {s.fps for s in read_samm(trees["samm"])} == {200.0}
    assert {s.fps for s in read_smic(smic)} == {100.0}


# -- composites -----------------------------------------------------------------------------------
def test_composite_of_samm_casme2_and_4dme(trees):
    table = read_composite(sources=["samm", "casme2", "4dme"], roots={n: trees[n] for n in ("samm", "casme2", "4dme")},
                           options={"4dme": {"multi_label": "first"}})
    assert {s.origin for s in table} == {"samm", "casme2", "4dme"} and all(s.dataset == "composite" for s in table)
    assert {"samm/006", "casme2/sub01", "4dme/S01"} <= set(table.subjects) and len(table.subjects) == 9
    assert table.notes["4dme/multi_label_first"] == 1
    summary = apply_scheme(table, "megc_3").summary()
    assert summary["fps"] == {"4dme": [60.0], "casme2": [200.0], "samm": [200.0]}
    assert set(summary["per_source"]) == {"samm", "casme2", "4dme"}
    # the default root of a source is <root>/<its folder>
    assert len(read_composite(root=trees["4dme"].parent, sources=["4dme", "dfme"])) == 14 + 9


def test_composite_bad_keys(trees):
    with pytest.raises(MERError, match=r"data.reader.sources.casme4 is not a source of the composite; known: .*4dme"):
        read_composite(root=trees["samm"].parent, sources=["samm", "casme4"])
    with pytest.raises(MERError, match=r"data.reader.roots.sam is not a source"):
        read_composite(roots={"sam": "/x"}, sources=["samm"])
    with pytest.raises(MERError, match=r"data.reader.options.4dme.multilabel is not a key .*known: annotation_file"):
        read_composite(root=trees["samm"].parent, sources=["4dme"], options={"4dme": {"multilabel": "first"}})
    with pytest.raises(MERError, match=r"composite source 'dfme' has no root: set data.reader.roots.dfme"):
        read_composite(sources=["dfme"])
    with pytest.raises(MERError, match=r"data.reader.sources.fer2013 is not a source of the composite"):
        read_composite(root=trees["samm"].parent, sources=["fer2013"])  # registered, but still images


def test_cross_dataset_from_a_list_of_sources(trees):
    table = read_composite(sources=["samm", "casme2", "4dme"], roots={n: trees[n] for n in ("samm", "casme2", "4dme")})
    (fold,) = make_folds(table, "cross_dataset", train_on=["samm", "casme2"], test_on="4dme", val_subjects=1)
    assert {table[i].origin for i in fold.train + fold.val} == {"samm", "casme2"}
    assert {table[i].origin for i in fold.test} == {"4dme"}
    with pytest.raises(MERError, match="must be non-empty and disjoint"):
        make_folds(table, "cross_dataset", train_on=["samm", "4dme"], test_on="4dme")


def test_train_on_samm_and_casme2_test_on_4dme(trees, tmp_path):
    from mer_lightning.train import train

    out = tmp_path / "cross"
    cfg = compose_cfg("train.yaml", out, [
        # a key that starts with a digit cannot be written as a dotted path (roots.4dme=...): the mapping can
        "data=composite", "data.reader.sources=[samm,casme2,4dme]", f"data.reader.roots.samm={trees['samm']}",
        f"data.reader.roots={{casme2: '{trees['casme2']}', 4dme: '{trees['4dme']}'}}",
        "protocol=cross_dataset", "protocol.train_on=[samm,casme2]", "protocol.test_on=4dme",
        "data.image_size=16", "data.num_frames=2", "data.cache_dir=null", "data.batch_size=4", "data.face=none",
        "extras.print_config=false", "trainer.accelerator=cpu", "debug=fast_dev_run", "protocol.val_subjects=1",
        "logger=csv"])
    results = train(cfg)
    (fold,) = results["folds"]
    assert fold["test_subjects"] == ["4dme/S01", "4dme/S02", "4dme/S03"]


def test_inspect_dfme_through_the_cli(trees, tmp_path):
    proc = run_cli("mer_lightning.inspect_data", "data=dfme", f"data.root={trees['dfme']}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_samples"] == 9 and summary["n_subjects"] == 3
    assert summary["fps"] == {"dfme": [200.0, 300.0, 500.0]}
    assert "fps: dfme 200/300/500" in proc.stdout


def test_data_configs_bring_their_protocols(tmp_path):
    four = compose_cfg("train.yaml", tmp_path / "a", ["data=4dme", "data.reader.multi_label=first"])
    assert four.protocol.name == "loso" and four.data.classes == "4dme_5" and four.data.reader.fps == 60.0
    dfme = compose_cfg("train.yaml", tmp_path / "b", ["data=dfme"])
    assert dfme.protocol.name == "subject_kfold" and dfme.data.classes == "dfme_7" and dfme.data.reader.fps is None
    comp = compose_cfg("train.yaml", tmp_path / "c", ["data=composite", "data.reader.sources=[samm,casme2,dfme]",
                                                      "data.reader.roots.dfme=/data/DFME", "protocol=cross_dataset",
                                                      "protocol.train_on=[samm,casme2]", "protocol.test_on=dfme"])
    assert list(comp.data.reader.sources) == ["samm", "casme2", "dfme"] and comp.data.reader.roots.dfme == "/data/DFME"
    assert list(comp.protocol.train_on) == ["samm", "casme2"]
