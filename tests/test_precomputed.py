"""data=precomputed (stored inputs from any pipeline, read through a manifest) and `preprocess export=`
(ours written in that format): the round trip, the manifest's options and every bad input it names."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from mer_lightning.data.datamodule import ClipDataset
from mer_lightning.data.readers import dataset_names
from mer_lightning.data.readers.precomputed import read_precomputed
from mer_lightning.data.splits import cross_dataset, loso
from mer_lightning.inspect_data import inspect_data
from mer_lightning.preprocess import preprocess
from mer_lightning.train import train
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import instantiate_strict
from tests.conftest import TINY, compose_cfg, run_cli

RNG = np.random.default_rng(0)
# the tiny data's keys a data=precomputed run shares (TINY's data.reader.* are the synthetic reader's)
SHARED = [o for o in TINY if not o.startswith(("data.reader.", "data.num_frames"))]


def png(path: Path, channels: int = 3, side: int = 28, value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (side, side) if channels == 1 else (side, side, channels)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def manifest(root: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    if name.endswith(".xlsx"):
        frame.to_excel(root / name, index=False)
    else:
        frame.to_csv(root / name, index=False)
    return root / name


def flow_set(root: Path, subjects: int = 4, per_subject: int = 4, channels: int = 3) -> Path:
    """STSTNet-style stored inputs: one 28x28 PNG per clip, named <subject>_<sample>.png, and a manifest."""
    rows = []
    for s in range(1, subjects + 1):
        for c in range(per_subject):
            label = ("negative", "positive")[c % 2]
            png(root / f"s{s:02d}_clip{c}.png", channels)
            rows.append({"subject": f"s{s:02d}", "sample": f"clip{c}", "label": label})
    manifest(root, rows)
    return root


def reasons(table) -> str:
    return "\n".join(f"{s.sample}: {s.reason}" for s in table.skipped)


def precomputed_cfg(tmp_path: Path, root: Path, *overrides: str, out: str = "run"):
    return compose_cfg("train.yaml", tmp_path / out, [*SHARED, "data=precomputed", f"data.root={root}",
                                                      f"data.cache_dir={tmp_path / 'cache'}", *overrides])


# -- the round trip ----------------------------------------------------------------------------------
def export(tmp_path: Path, tiny_root: Path, name: str, *overrides: str) -> dict:
    cfg = compose_cfg("preprocess.yaml", tmp_path / f"pre-{name}", [
        *[o for o in TINY if o.startswith("data.")], f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}",
        f"export={tmp_path / name}", *overrides])
    return preprocess(cfg)["export"]


def served(dm) -> torch.Tensor:
    """Every clip of a loaded DataModule as the model gets it (normalised float32)."""
    data = ClipDataset(dm.clips, dm.table.labels, list(range(len(dm.table))), dm.mean, dm.std)
    return data.__getitems__(list(range(len(data))))["x"]


@pytest.mark.parametrize("fmt,options,exact", [
    ("npy", ["data.num_frames=1"], True),  # the onset -> apex flow, full precision: the very tensors
    ("auto", ["data.num_frames=1", "data.input=frames", "data.face=none"], True),  # apex frames: 8-bit PNG, exact
    ("auto", ["data.num_frames=1"], False),  # flow as STSTNet publishes it: 8-bit PNG, rounded
    ("auto", ["data.num_frames=3", "data.input=diff_seq"], True),  # 3 steps: .npy
])
def test_export_then_read_back_gives_the_same_tensors(tmp_path, tiny_root, fmt, options, exact):
    summary = export(tmp_path, tiny_root, "exported", *options, f"export_format={fmt}")
    steps, channels, size, _ = summary["shape"]
    kind = "png" if fmt == "auto" and steps == 1 else "npy"
    assert summary["files"] == {kind: 60} and summary["clips"] == 60
    folder = tmp_path / "exported"
    written = pd.read_csv(folder / "manifest.csv", dtype=str)
    assert list(written.columns) == ["dataset", "subject", "sample", "label", "path"]
    assert written.path.str.endswith(f".{kind}").all() and (written.dataset == "synthetic").all()
    assert f"data.reader.channels={channels} data.num_frames={steps}" in summary["read_back"]

    original = instantiate_strict(compose_cfg("train.yaml", tmp_path / "a", [
        *TINY, f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}", *options]).data, "data")
    original.load()
    back = instantiate_strict(precomputed_cfg(tmp_path, folder, f"data.reader.channels={channels}",
                                              f"data.num_frames={steps}").data, "data")
    back.load()
    assert [(s.subject, s.clip, s.emotion, s.label) for s in back.table] == \
        [(s.subject, s.clip, s.emotion, s.label) for s in original.table]
    assert back.table.classes == original.table.classes
    a, b = served(original), served(back)
    assert a.shape == b.shape == (60, steps, channels, size, size)
    if exact:
        assert torch.equal(a, b)
    else:  # 8 bits: half a level of 1/255 (then / std 0.5), and float16's rounding of the original
        assert 0 < (a - b).abs().max() <= 2 * (0.5 / 255 + 1e-3)
    assert back.cache_report.built
    again = instantiate_strict(precomputed_cfg(tmp_path, folder, f"data.reader.channels={channels}",
                                               f"data.num_frames={steps}").data, "data")
    again.load()
    assert not again.cache_report.built and again.cache_report.path == back.cache_report.path, "cached as any input"


def test_round_trip_trains_to_the_same_predictions(tmp_path, tiny_root):
    common = ["model=cnn", "debug=limit", "runner.threads_per_fold=1", "protocol=holdout", "protocol.test_subjects=2",
              "seed=7", "report.reference=null"]
    raw = train(compose_cfg("train.yaml", tmp_path / "raw", [*TINY, f"data.root={tiny_root}", *common,
                                                             "data.num_frames=1", f"data.cache_dir={tmp_path / 'cache'}"]))
    export(tmp_path, tiny_root, "flow_npy", "data.num_frames=1", "export_format=npy")
    back = train(precomputed_cfg(tmp_path, tmp_path / "flow_npy", *common, out="back"))
    assert back["metrics"] == raw["metrics"]
    a = pd.read_csv(tmp_path / "raw/predictions.csv")
    b = pd.read_csv(tmp_path / "back/predictions.csv")
    assert list(a.sample_id.str.replace("synthetic/", "")) == list(b.sample_id.str.replace("precomputed/", ""))
    assert (b.dataset == "precomputed").all() and (b.source == "synthetic").all(), "the source kept from the manifest"
    same = [c for c in a.columns if c not in ("sample_id", "dataset")]
    pd.testing.assert_frame_equal(a[same], b[same], check_exact=True)


def test_export_refuses_a_folder_of_other_files_and_replaces_an_earlier_export(tmp_path, tiny_root):
    other = tmp_path / "taken"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(MERError, match="holds files that are not an earlier export"):
        export(tmp_path, tiny_root, "taken", "data.num_frames=1")
    assert (other / "notes.txt").read_text() == "mine"
    export(tmp_path, tiny_root, "again", "data.num_frames=1")
    (tmp_path / "again/stale.png").write_bytes(b"x")
    export(tmp_path, tiny_root, "again", "data.num_frames=1", "export_format=npy")
    assert not (tmp_path / "again/stale.png").exists() and next((tmp_path / "again").rglob("*.npy"))
    with pytest.raises(MERError, match="export_format=png writes one image per clip.*T=4"):
        export(tmp_path, tiny_root, "seq", "data.num_frames=4", "export_format=png")
    assert not (tmp_path / "seq").exists() and not list(tmp_path.glob(".seq.partial-*"))


# -- reading a manifest ------------------------------------------------------------------------------
def test_stored_pngs_train_with_a_one_step_model(tmp_path):
    root = flow_set(tmp_path / "flow")
    results = train(precomputed_cfg(tmp_path, root, "model=ststnet", "data.image_size=28", "debug=limit",
                                    "protocol.val_subjects=1", "data.reader.pattern='{subject}_{sample}.png'"))
    assert results["metrics"]["protocol/uf1"] >= 0 and results["complete"]
    saved = json.loads((tmp_path / "run/results.json").read_text())
    assert len(saved["folds"]) == 4, "LOSO over the manifest's subjects"
    # the reference on the same stored inputs (no frames to measure motion on: the files are its input)
    assert saved["reference"]["input"] == "stored" and 0 <= saved["metrics"]["reference/uf1"] <= 1
    reference = pd.read_csv(tmp_path / "run/reference_predictions.csv")
    assert sorted(reference.sample_id) == sorted(pd.read_csv(tmp_path / "run/predictions.csv").sample_id)


def test_a_sequence_model_on_one_step_files_is_one_line(tmp_path):
    root = flow_set(tmp_path / "flow")
    proc = run_cli("mer_lightning.train", "data=precomputed", f"data.root={root}",
                   "data.reader.pattern='{subject}_{sample}.png'", f"hydra.run.dir={tmp_path / 'out'}",
                   f"data.cache_dir={tmp_path / 'cache'}", "trainer.accelerator=cpu")
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in proc.stderr
    assert "hold T=1 x C=3 (16 file(s), e.g." in error[0] and "asks for T=8 (data.num_frames)" in error[0]
    assert "use data.num_frames=1, which the one-step models set (model=cnn, ststnet, linear;" in error[0]


def test_inspect_and_preprocess_read_a_manifest(tmp_path):
    root = flow_set(tmp_path / "flow")
    (root / "s01_clip0.png").unlink()
    common = ["data=precomputed", f"data.root={root}", "data.reader.pattern='{subject}_{sample}.png'",
              f"data.cache_dir={tmp_path / 'cache'}", "data.max_skipped_fraction=0.1"]
    summary = inspect_data(compose_cfg("inspect.yaml", tmp_path / "inspect", common))
    assert summary["n_samples"] == 15 and summary["n_subjects"] == 4 and summary["registered"] == {}
    assert "no file matches 's01_clip0.png'" in summary["skipped"][0]["reason"]
    report = preprocess(compose_cfg("preprocess.yaml", tmp_path / "pre", [*common, "data.num_frames=1"]))
    assert report["samples"] == 15 and report["kept"] == 15 and report["faces_found"] is None


def test_stored_arrays_of_t_steps_feed_a_sequence_model_and_are_resized_and_scaled(tmp_path):
    root = tmp_path / "arrays"
    rows = []
    for s in range(3):
        for c in range(2):
            array = RNG.integers(0, 1000, (4, 2, 20, 20)).astype(np.float32)
            (root / f"p{s}").mkdir(parents=True, exist_ok=True)
            np.save(root / f"p{s}/c{c}.npy", array)
            rows.append({"Subject": f"p{s}", "Clip": f"c{c}", "Emotion": ("Happiness", "Surprise")[c],
                         "Path": f"p{s}/c{c}.npy"})
    manifest(root, rows, "labels.xlsx")
    cfg = precomputed_cfg(tmp_path, root, "data.reader.manifest=labels.xlsx", "data.reader.channels=2",
                          "data.num_frames=4", "data.reader.scale=minmax", "data.image_size=16")
    assert cfg.data.channels == 2, "the model's in_chans follows data.reader.channels"
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    assert len(table) == 6 and table.classes == ["happiness", "surprise"]
    assert dm.clips.shape == (6, 4, 2, 16, 16) and dm.clips.dtype == np.float32
    assert float(np.min(dm.clips)) == 0.0 and float(np.max(dm.clips)) == 1.0
    cfg = precomputed_cfg(tmp_path, root, f"data.reader.manifest={root / 'labels.xlsx'}", "data.reader.channels=2",
                          "data.num_frames=4", "data.reader.scale=1000", "data.image_size=20", out="b")
    dm = instantiate_strict(cfg.data, "data")
    dm.load()
    stored = np.load(root / "p0/c0.npy")
    assert np.array_equal(dm.clips[0], stored / np.float32(1000)), "at its own size: only scaled"


def test_pattern_matches_tolerantly_and_names_each_unmatched_row(tmp_path):
    root = tmp_path / "flow"
    png(root / "S01_EP02 .PNG")  # case, a space before the extension
    png(root / "s2_ep3.jpg")  # .jpg for .png, no zero padding
    png(root / "s3" / "Ep09.png")  # in a folder: only the second pattern finds it
    png(root / "s04_ep05.png")
    png(root / "s4_ep5.png")  # two files for one clip
    manifest(root, [{"subject": "s1", "sample": "ep2", "label": "negative"},
                    {"subject": "s02", "sample": "EP03", "label": "positive"},
                    {"subject": "s03", "sample": "ep09", "label": "positive"},
                    {"subject": "s04", "sample": "ep5", "label": "positive"}])
    table = read_precomputed(root, pattern="{subject}_{sample}.png")
    assert [(s.subject, s.stored.path.name) for s in table] == [("s1", "S01_EP02 .PNG"), ("s02", "s2_ep3.jpg")]
    assert table.notes["path_matched_tolerantly"] == 2
    why = reasons(table)
    assert "manifest.csv row 4: data.reader.pattern='{subject}_{sample}.png': no file matches 's03_ep09.png'" in why
    assert "row 5" in why and "matches several files (s04_ep05.png, s4_ep5.png)" in why
    assert [s.stored.path.name for s in read_precomputed(root, pattern="{subject}/{sample}")] == ["Ep09.png"]


def test_a_published_stst_layout_reads_as_it_is(tmp_path):
    """HTNet's STSTNet-style release: `<sub>_<filename_o> .png` (a space before the extension) beside a CSV of
    dataset, sub, filename_o, integer label and columns the reader ignores."""
    root = tmp_path / "htnet"
    rows = []
    for dataset, sub, clip, label in (("casme2", "sub01", "EP02_01f", 1), ("casme2", "sub02", "EP01_11f", 0),
                                      ("smic", "s01", "s01_ne_01", 0), ("smic", "s02", "s02_sur_01", 2),
                                      ("samm", "006", "006_1_2", 0), ("samm", "007", "007_6_1", 1)):
        png(root / "STSNet_whole_norm_u_v_os" / f"{sub}_{clip} .png")
        rows.append({"dataset": dataset, "sub": sub, "filename_o": clip, "label": label, "apex": "",
                     "imagename": f"{sub}_{clip}.jpg", "sub_filename": ""})
    manifest(tmp_path, rows, "combined_3_class2_for_optical_flow.csv")
    cfg = precomputed_cfg(tmp_path, root, "data.reader.manifest=../combined_3_class2_for_optical_flow.csv",
                          "data.reader.pattern='STSNet_whole_norm_u_v_os/{subject}_{sample}.png'",
                          "data.reader.label_names=[negative,positive,surprise]", "data.classes=megc_3",
                          "model=ststnet", "data.image_size=28")
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    assert len(table) == 6 and not table.skipped and table.notes["path_matched_tolerantly"] == 6
    assert table.subjects[:2] == ["casme2/sub01", "casme2/sub02"] and table.classes == ["negative", "positive",
                                                                                         "surprise"]
    assert [s.emotion for s in table][:3] == ["positive", "negative", "negative"]
    assert dm.clips.shape == (6, 1, 3, 28, 28)


def test_a_manifest_of_several_datasets_is_a_composite(tmp_path):
    root = tmp_path / "megc"
    rows = []
    for source, subjects, emotions in (("samm", ("006", "007"), ("anger", "happiness", "surprise", "fear")),
                                       ("casme2", ("sub01", "sub02"), ("disgust", "happiness", "surprise", "fear"))):
        for subject in subjects:
            for i, emotion in enumerate(emotions):
                path = f"{source}/{subject}_{i}.png"
                png(root / path)
                rows.append({"dataset": source, "subject": subject, "sample": str(i), "label": emotion, "path": path})
    manifest(root, rows)
    cfg = precomputed_cfg(tmp_path, root, "data.classes=megc_3", "model=cnn")
    dm = instantiate_strict(cfg.data, "data")
    table = dm.read()
    assert table.subjects == ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007"]
    assert {s.origin for s in table} == {"samm", "casme2"}
    assert table.notes["outside_scheme/fear"] == 2, "MEGC drops CASME II's fear and keeps SAMM's (negative)"
    assert table.class_counts() == {"negative": 6, "positive": 4, "surprise": 4}
    assert len(loso(table)) == 4
    (fold,) = cross_dataset(table, train_on="samm", test_on="casme2")
    assert {table[i].origin for i in fold.test} == {"casme2"} and {table[i].origin for i in fold.train} == {"samm"}
    assert table.summary()["per_source"].keys() == {"samm", "casme2"}


def test_integer_labels_take_label_names(tmp_path):
    root = tmp_path / "ints"
    png(root / "a_1.png")
    png(root / "a_2.png")
    png(root / "b_1.png")
    manifest(root, [{"subject": "a", "sample": 1, "label": 0}, {"subject": "a", "sample": 2, "label": 2},
                    {"subject": "b", "sample": 1, "label": 7}])
    with pytest.raises(MERError, match=r"manifest.csv: the label column holds numbers \(row 2: '0'\); name the classes"):
        read_precomputed(root, pattern="{subject}_{sample}.png")
    table = read_precomputed(root, pattern="{subject}_{sample}.png", label_names=["Negative", "Positive", "Surprise"])
    assert [s.emotion for s in table] == ["negative", "surprise"]
    assert "manifest.csv row 4: unknown label 7: data.reader.label_names has 3 names (0-2)" in reasons(table)


def test_folders_of_frames_are_preprocessed_as_clips(tmp_path, tiny_root):
    root = tmp_path / "frames"
    shutil.copytree(tiny_root / "Cropped" / "sub01", root / "sub01")
    shutil.copytree(tiny_root / "Cropped" / "sub02", root / "sub02")
    clips = sorted(p for p in root.glob("sub0*/*") if p.is_dir())
    manifest(root, [{"subject": c.parent.name, "sample": c.name, "label": ("happiness", "surprise")[i % 2],
                     "path": c.relative_to(root).as_posix()} for i, c in enumerate(clips)])
    cfg = precomputed_cfg(tmp_path, root, "data.input=flow_seq", "data.num_frames=2", "data.flow_size=64")
    assert cfg.data.channels == 3
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    assert len(table) == len(clips) == 20 and table.notes["apex_missing"] == 20, "apex: the middle frame"
    assert table[0].frames and table[0].onset == table[0].frame_numbers[0] and table[0].cropped
    assert dm.clips.shape == (20, 2, 3, 32, 32)
    stored = instantiate_strict(precomputed_cfg(tmp_path, root, "data.num_frames=1", out="b").data, "data")
    assert len(stored.read()) == 20, "read (inspect) lists them"
    with pytest.raises(MERError, match=r"sub01/EP\w+ is a folder of frames and data.input=stored takes stored files"):
        stored.load()


# -- bad input ---------------------------------------------------------------------------------------
def test_a_missing_column_or_manifest_is_one_error_naming_the_file(tmp_path):
    root = tmp_path / "bad"
    png(root / "a_1.png")
    with pytest.raises(MERError, match="no manifest in .*bad: name it with data.reader.manifest"):
        read_precomputed(root)
    manifest(root, [{"Subject": "a", "Sample": "1"}])
    with pytest.raises(MERError, match=r"manifest .*manifest.csv \(sheet 'manifest'\): missing column\(s\) \['label'\]"):
        read_precomputed(root)
    manifest(root, [{"subject": "a", "clip_name": "1", "label": "x"}])
    with pytest.raises(MERError, match=r"no manifest header in .*manifest.csv: expected the columns"):
        read_precomputed(root)
    with pytest.raises(MERError, match="manifest not found: .*nope.csv"):
        read_precomputed(root, manifest="nope.csv")
    manifest(root, [{"subject": "a", "sample": "1", "label": "x"}])
    with pytest.raises(MERError, match="has no path column, so .* data.reader.pattern, which is not set"):
        read_precomputed(root)
    with pytest.raises(MERError, match=r"data.reader.pattern='\{subj\}.png' names \{subj\}"):
        read_precomputed(root, pattern="{subj}.png")
    with pytest.raises(MERError, match="precomputed inputs not found: data.root="):
        read_precomputed(tmp_path / "nowhere")
    with pytest.raises(MERError, match="data.reader.scale=bright: choose auto"):
        read_precomputed(root, pattern="{subject}_{sample}.png", scale="bright")


def test_bad_rows_and_files_are_skipped_naming_each(tmp_path, caplog):
    root = tmp_path / "bad"
    for name in ("a_1", "a_2", "a_3", "b_1", "b_2", "c_1"):
        png(root / f"{name}.png")
    (root / "garbage.png").write_bytes(b"not a png at all")
    png(root / "alpha.png", channels=4)
    np.save(root / "flat.npy", np.zeros((28, 28), np.float32))
    np.save(root / "whole.npy", np.zeros((3, 28, 28), np.float32))
    (root / "cut.npy").write_bytes((root / "whole.npy").read_bytes()[:200])
    png(root / "gray.png", channels=1)
    png(tmp_path / "outside.png")
    rows = [("a", "1", "happiness", "a_1.png"), ("a", "1", "happiness", "a_1.png"),  # identical: merged
            ("a", "2", "happiness", "a_2.png"), ("a", "2", "surprise", "a_2.png"),  # conflicting labels
            ("a", "3", "", "a_3.png"), ("b", "1", "happiness", "../outside.png"), ("b", "2", "happiness", "/etc/x.png"),
            ("b", "3", "surprise", "garbage.png"), ("b", "4", "surprise", "alpha.png"), ("c", "1", "surprise", "flat.npy"),
            ("c", "2", "surprise", "cut.npy"), ("c", "3", "surprise", "gray.png"), ("c", "4", "happiness", "missing.png"),
            ("c", "5", "surprise", "whole.npy"), ("c", "6", "happiness", "c_1.png")]
    manifest(root, [dict(zip(("subject", "sample", "label", "path"), r)) for r in rows])
    with caplog.at_level(logging.WARNING):
        table = read_precomputed(root)
    assert [(s.subject, s.clip) for s in table] == [("a", "1"), ("c", "5"), ("c", "6")]
    assert table.notes["duplicate_rows_merged"] == 1
    why = reasons(table)
    expected = [
        "precomputed/a/2: manifest.csv rows 4 and 5 list a/2 with different emotion (happiness vs surprise)",
        "precomputed/a/3: manifest.csv row 6: the label cell is blank",
        "precomputed/b/1: manifest.csv row 7: path cell '../outside.png' is not a path inside",
        "(it leads out of the folder)",
        "precomputed/b/2: manifest.csv row 8: path cell '/etc/x.png' is not a path inside",
        "(it is an absolute path)",
        "precomputed/b/3: manifest.csv row 9: cannot read the image", "garbage.png",
        "precomputed/b/4: manifest.csv row 10: the image", "alpha.png has 4 channels (RGBA): store 1 (grayscale) or 3",
        "precomputed/c/1: manifest.csv row 11: the array", "flat.npy has shape (28, 28): expected (C, H, W)",
        "precomputed/c/2: manifest.csv row 12: cannot read the array", "cut.npy",
        "precomputed/c/3: manifest.csv row 13:", "gray.png has 1 channel(s) and the set has 3 (data.reader.channels)",
        "precomputed/c/4: manifest.csv row 14: no file matches 'missing.png'",
    ]
    for part in expected:
        assert part in why, part
    assert len(table.skipped) == 10


def test_mixed_channels_none_matching_and_a_damaged_body_are_named(tmp_path):
    root = flow_set(tmp_path / "gray", subjects=2, per_subject=2, channels=1)
    with pytest.raises(MERError, match=r"of .*manifest.csv have 1 \(4 file\(s\), e.g. .*s01_clip0.png\) channel\(s\), "
                                       r"and data.reader.channels=3: set data.reader.channels=1"):
        read_precomputed(root, pattern="{subject}_{sample}.png")
    assert len(read_precomputed(root, pattern="{subject}_{sample}.png", channels=1)) == 4
    # a header that reads and a body that does not: skipped when the cache is built, naming the file
    good = root / "s01_clip0.png"
    data = good.read_bytes()
    good.write_bytes(data[:60] + bytes(len(data) - 60))
    cfg = precomputed_cfg(tmp_path, root, "data.reader.pattern='{subject}_{sample}.png'", "data.reader.channels=1",
                          "model=cnn", "data.max_skipped_fraction=0.5")
    assert cfg.data.channels == 1
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    assert len(table) == 3 and "cannot decode image" in reasons(table) and "s01_clip0.png" in reasons(table)


def test_out_of_range_arrays_are_served_as_stored_and_said(tmp_path, caplog):
    root = tmp_path / "raw"
    for s in ("a", "b"):
        for c in range(2):
            (root / s).mkdir(parents=True, exist_ok=True)
            np.save(root / s / f"{c}.npy", np.full((3, 8, 8), 200.0, np.float32))
    manifest(root, [{"subject": s, "sample": c, "label": ("x", "y")[c]} for s in ("a", "b") for c in range(2)])
    cfg = precomputed_cfg(tmp_path, root, "data.reader.pattern='{subject}/{sample}.npy'", "model=cnn",
                          "data.image_size=8")
    with caplog.at_level(logging.WARNING):
        instantiate_strict(cfg.data, "data").load()
    assert "hold values from 200 to 200, served as they are" in caplog.text and "data.reader.scale" in caplog.text


def test_precomputed_is_a_format_not_a_registered_dataset(tmp_path):
    assert "precomputed" not in dataset_names()
    cfg = compose_cfg("train.yaml", tmp_path, ["data=precomputed", "model=cnn"])
    assert cfg.protocol.name == "loso" and cfg.data.input == "stored" and cfg.report.reference == "linear"
    assert cfg.data.channels == 3 and cfg.data.num_frames == 1
    assert compose_cfg("train.yaml", tmp_path, ["data=precomputed", "data.reader.channels=1"]).data.channels == 1
    with pytest.raises(Exception, match="data.input=stored serves inputs stored in files"):
        OmegaConf.to_container(compose_cfg("train.yaml", tmp_path, ["data.input=stored"]).data, resolve=True)
