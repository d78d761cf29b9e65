"""Spotting and spot-then-recognise: the MEGC metric (hand-made cases and spotting.md's check figure), STRS,
peak detection, the embedded long videos, features (a truncated frame, a video with no face) and the
`spot` entry point end to end on tiny cropped videos (outputs, resume, the learned spotter with STR)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mer_lightning.data.splits import make_folds
from mer_lightning.data.synthetic.videos import VideoSpec, read_synthetic_videos, synth_videos
from mer_lightning.data.videos import Interval, Video, VideoTable
from mer_lightning.evaluation.spotting import (
    Counts,
    analysis_figures,
    iou,
    match_video,
    spotting_metrics,
    strs,
)
from mer_lightning.spotting.features import FeatureOptions, FeatureStore
from mer_lightning.spotting.peaks import (
    Spot,
    choose_p,
    drop_inside_macro,
    keep_highest,
    smooth,
    spots,
    threshold,
)
from mer_lightning.utils.errors import MERError, user_error
from mer_lightning.utils.instantiate import instantiate_strict
from tests.conftest import compose_cfg, needs_dlib, run_cli

# 3 subjects x 2 videos of about 130 frames (30 fps), 2 micro + 1 macro each, written as CAS(ME)^2's
# `cropped/` release from 160x120 frames (face crops: no face detection needed)
TINY_LV = dict(layout="cas2", subjects=3, videos_per_subject=2, micro=2, macro=1, frame_size=(160, 120), cropped=True,
               gap_seconds=(0.6, 1.0))
TINY_SPOT = ["data.reader.subjects=3", "data.reader.videos_per_subject=2", "data.reader.micro=2", "data.reader.macro=1",
             "data.reader.frame_size=[160,120]", "data.reader.cropped=true", "data.reader.gap_seconds=[0.6,1.0]",
             "spotter.face_size=64", "extras.print_config=false", "trainer.accelerator=cpu", "~logger"]


def frame(rows, columns=("video", "start", "end", "type")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


# -- the metric -----------------------------------------------------------------------------------
def test_iou_is_over_inclusive_frames():
    assert iou((1, 10), (1, 5)) == 0.5  # 5 shared frames of 10
    assert iou((1, 10), (6, 15)) == pytest.approx(5 / 15)
    assert iou((5, 5), (5, 5)) == 1.0 and iou((1, 10), (11, 20)) == 0.0 and iou((1, 10), (10, 20)) == pytest.approx(1 / 20)


def test_each_ground_truth_counts_once_types_apart_and_counts_pooled_over_videos():
    truth = frame([("d/s1/a", 10, 20, "micro"), ("d/s1/b", 100, 110, "micro"), ("d/s1/b", 200, 210, "micro"),
                   ("d/s1/b", 300, 340, "macro")])
    predicted = frame([("d/s1/a", 10, 20, "micro"), ("d/s1/a", 11, 21, "micro"),  # two hits of one truth: TP 1, FP 1
                       ("d/s1/b", 300, 340, "micro"),  # the right place, the wrong type: FP, and the macro is missed
                       ("d/s1/b", 195, 205, "micro")])  # IoU 6/16 < 0.5: FP; the truth is missed
    m = spotting_metrics(truth, predicted)["metrics"]
    assert (m["spot/tp_micro"], m["spot/fp_micro"], m["spot/fn_micro"]) == (1, 3, 2)
    assert (m["spot/tp_macro"], m["spot/fp_macro"], m["spot/fn_macro"]) == (0, 0, 1)
    assert (m["spot/tp"], m["spot/fp"], m["spot/fn"]) == (1, 3, 3)  # overall: the counts summed
    assert m["spot/f1"] == pytest.approx(2 * 1 / (2 * 1 + 3 + 3)) and m["spot/f1_macro"] == 0.0
    # pooled over videos, not averaged per video: video a alone scores 2/3, video b 0
    assert m["spot/f1_micro"] == pytest.approx(2 / (2 + 3 + 2)) != pytest.approx((2 / 3 + 0) / 2)
    counts, pairs = match_video([(10, 20)], [(0, 9), (10, 20), (11, 21)])
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 0) and pairs == [(0, 1, 1.0)]  # the best-IoU prediction


def test_the_check_figure_of_spotting_md():
    """CAS(ME)^2, MDMD: 130 truths found, 6,558 predictions, 357 truths -> F1 0.0376 (the organisers'
    `pred_clips_analysis` prints N_find_labels, N_clips, N_labels: FP = 6,428 and FN = 227)."""
    truth, predicted, found = [], [], 0
    for v in range(51):  # 51 videos x 7 truths = 357
        video = f"cas2/s{v}/video"
        spans = [(100 * i + 1, 100 * i + 10) for i in range(7)]
        truth += [(video, a, b, "micro") for a, b in spans]
        hits = min(7, 130 - found)
        predicted += [(video, a, b, "micro") for a, b in spans[:hits]]
        found += hits
    predicted += [(f"cas2/s{i % 51}/video", 5000 + 20 * i, 5010 + 20 * i, "micro") for i in range(6558 - 130)]
    m = spotting_metrics(frame(truth), frame(predicted))["metrics"]
    assert (m["spot/tp"], m["spot/fp"], m["spot/fn"]) == (130, 6428, 227)
    assert round(m["spot/f1"], 4) == 0.0376
    assert round(Counts(130, 6558, 357).f1, 4) == 0.0362  # the three numbers read as TP / FP / FN


def test_strs_uses_the_analysis_of_matched_pairs_and_reports_uar_as_the_mean_recall():
    truth = frame([("d/s1/a", 10, 20, "micro", "negative"), ("d/s1/a", 50, 60, "micro", "negative"),
                   ("d/s1/a", 90, 100, "micro", "positive"), ("d/s1/a", 130, 140, "micro", "others"),
                   ("d/s1/a", 170, 180, "micro", "surprise"), ("d/s1/a", 300, 350, "macro", "positive")],
                  columns=("video", "start", "end", "type", "emotion"))
    predicted = frame([("d/s1/a", 10, 20, "micro", "negative"), ("d/s1/a", 50, 60, "micro", "positive"),
                       ("d/s1/a", 90, 100, "micro", "positive"), ("d/s1/a", 130, 140, "micro", "negative"),
                       ("d/s1/a", 400, 410, "micro", "surprise")],  # an FP: no pair
                      columns=("video", "start", "end", "type", "emotion"))
    out = strs(truth, predicted, ["negative", "positive", "surprise"])
    m, per = out["metrics"], out["analysis"]["per_class"]
    # spotting (micro only): 4 of 5 truths found, 5 predictions
    assert m["str/f1_spot"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    # analysis: 3 pairs (the `others` truth is outside the classes): neg->neg, neg->pos, pos->pos
    assert m["str/pairs"] == 3
    assert (per["negative"]["precision"], per["negative"]["recall"]) == (1.0, 0.5)
    assert (per["positive"]["precision"], per["positive"]["recall"]) == (0.5, 1.0)
    assert (per["surprise"]["precision"], per["surprise"]["recall"]) == (0.0, 0.0)
    p, r = (1 + 0.5 + 0) / 3, (0.5 + 1 + 0) / 3
    assert m["str/f1_analysis"] == pytest.approx(2 * p * r / (p + r))
    assert m["str/strs"] == pytest.approx(m["str/f1_spot"] * m["str/f1_analysis"])
    assert m["str/uar"] == pytest.approx(r) and m["str/uf1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # the reference script's "UAR" is the mean precision: here 4/9, the mean recall (UAR) 5/9
    skewed = analysis_figures(pd.DataFrame({"true": list("aaabc"), "predicted": list("aabbb")}), ["a", "b", "c"])
    assert skewed["uar"] == pytest.approx((2 / 3 + 1 + 0) / 3) and skewed["precision"] == pytest.approx((1 + 1 / 3 + 0) / 3)


# -- peaks ------------------------------------------------------------------------------------------
def test_peaks_become_intervals_around_their_window_centre():
    curve = np.zeros(100)
    curve[20:25] = [1, 2, 3, 2, 1]
    curve[60:63] = [1, 4, 1]
    starts = np.arange(100) + 1  # positions at frames 1..100, k = 4 steps of 1 frame: centres start + 2
    smoothed = smooth(curve, 1)
    assert smooth(np.ones(7), 3) == pytest.approx(np.ones(7)) and threshold(np.array([0.0, 1.0]), 0.5) == 0.75
    found = spots(smoothed, starts + 2.0, 4, 1, 0.3, "micro", 1, 100)
    assert [(s.start, s.apex, s.end) for s in found] == [(21, 25, 29), (60, 64, 68)]
    assert spots(smoothed, starts + 2.0, 4, 1, 0.9, "micro", 1, 100) == found[:1]  # only the higher one
    near = [Spot(10, 15, 20, "micro", 1.0), Spot(18, 22, 26, "micro", 2.0), Spot(40, 45, 50, "micro", 0.5)]
    assert keep_highest(near) == near[1:]
    assert drop_inside_macro(near, [Spot(21, 30, 41, "macro", 1.0)]) == [near[0]]
    truth = {"v": [(60, 68)]}  # the lower bump
    p, f1, scores = choose_p(lambda p: {"v": spots(smoothed, starts + 2.0, 4, 1, p, "micro", 1, 100)}, truth, "micro",
                             [0.1, 0.5, 0.9])
    assert (p, f1) == (0.5, pytest.approx(2 / 3)) and scores == [pytest.approx(2 / 3)] * 2 + [0.0]  # ties: the middle


# -- the embedded long videos -------------------------------------------------------------------------
def test_embedded_videos_show_intervals_of_the_layouts_lengths_and_distractors():
    for layout, micro, macro in (("cas2", (7, 16), (20, 50)), ("samm_lv", (40, 100), (120, 400))):
        spec = VideoSpec(layout=layout, subjects=1, videos_per_subject=2, frame_size=(160, 120))
        for video in synth_videos(spec):
            lengths = {t: [e.length for e in video.events if e.type == t] for t in ("micro", "macro")}
            assert len(lengths["micro"]) == 3 and len(lengths["macro"]) == 2
            assert all(micro[0] <= n <= micro[1] for n in lengths["micro"])
            assert all(macro[0] <= n <= macro[1] for n in lengths["macro"])
            assert video.blinks and video.talking and video.n_frames > sum(e.length for e in video.events)
            events = [(e.first, e.last) for e in video.events]
            assert not any(a <= t1 and t0 <= b for t0, t1 in video.talking for a, b in events)  # talking in the gaps
    video = next(synth_videos(VideoSpec(subjects=1, videos_per_subject=1, frame_size=(160, 120))))
    frames = video.frames()
    first = next(frames)  # rendered one at a time
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    again = next(next(synth_videos(VideoSpec(subjects=1, videos_per_subject=1, frame_size=(160, 120)))).frames())
    assert np.array_equal(first, again)  # seeded


@pytest.fixture(scope="module")
def tiny_lv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spot") / "synthetic_lv"
    read_synthetic_videos(root, **TINY_LV)
    return root


def test_a_truncated_frame_is_bridged_and_reported_and_the_video_goes_on(tiny_lv, tmp_path):
    table = read_synthetic_videos(tiny_lv, **TINY_LV)
    video = table.videos[0]
    broken = tmp_path / "video"
    shutil.copytree(video.folder, broken)
    middle = len(video.names) // 2
    data = (broken / video.names[middle]).read_bytes()
    (broken / video.names[middle]).write_bytes(data[: len(data) // 2])
    store = FeatureStore(FeatureOptions(face_size=64))
    whole = store.get(video, 3)
    cut = store.get(video.with_(name="broken", folder=broken), 3)
    assert len(cut.starts) == len(whole.starts) == len(video.numbers) - 3
    assert len(cut.gaps) == 1 and not whole.gaps
    assert cut.gaps[0].startswith(f"frame {video.numbers[middle]}: ") and str(broken / video.names[middle]) in cut.gaps[0]
    assert cut.gaps[0].endswith("bridged with the previous frame")
    assert np.allclose(cut.score[: middle - 3], whole.score[: middle - 3])  # nothing before the gap changed


@needs_dlib
def test_a_video_with_no_face_is_skipped_and_counted(tiny_lv, tmp_path):
    import cv2

    from mer_lightning.runner.spot import drop_faceless
    from mer_lightning.spotting.spotters import FlowPeaks

    table = read_synthetic_videos(tiny_lv, **TINY_LV)
    blank = tmp_path / "blank"
    blank.mkdir()
    for n in range(1, 6):
        cv2.imwrite(str(blank / f"img_{n}.jpg"), np.full((120, 160), 128, np.uint8))
    faceless = table.videos[0].with_(folder=blank, names=tuple(f"img_{n}.jpg" for n in range(1, 6)),
                                     numbers=(1, 2, 3, 4, 5), cropped=False, name="blank")
    table = VideoTable([faceless, *table.videos[1:]])
    store = FeatureStore(FeatureOptions(face="auto", face_size=64))
    store._faces = {v.id: None for v in table.videos[1:]}  # the other videos' faces: known (crops)
    spotter = FlowPeaks("flow_peaks", 64, "farneback", 16, 0, 0.08, 0.06, [0.5])
    cfg = OmegaConf.create({"protocol": {"name": "loso", "val_subjects": 0}, "seed": 0})
    kept = drop_faceless(cfg, table, spotter, store, max_fraction=0.5)
    assert faceless.id not in {v.id for v in kept} and len(kept) == 5 and kept.notes["videos_without_face"] == 1
    assert "no face found on its first frame" in kept.skipped[-1].reason and "not evaluated" in kept.skipped[-1].reason
    folds = make_folds(kept, "loso", val_subjects=0, seed=0)
    assert len(folds) == 3 and all(kept[i].id != faceless.id for f in folds for i in f.test)


def test_videos_make_subject_folds_with_the_leak_guard():
    videos = [Video("d", s, f"v{i}", Path("."), ("1.jpg",), (1,), 30.0, (Interval(1, 1, 1, "micro"),))
              for s in ("a", "b", "c") for i in range(2)]
    folds = make_folds(VideoTable(videos), "loso", val_subjects=1, seed=0)
    assert [f.test_subjects for f in folds] == [["a"], ["b"], ["c"]]
    assert all(len(f.test) == 2 and len(f.val) == 2 and len(f.train) == 2 for f in folds)


# -- the entry point ----------------------------------------------------------------------------------
def spot_cfg(tmp_path, tiny_lv, *overrides, out: Path | None = None, logger: bool = False):
    base = [o for o in TINY_SPOT if logger is False or o != "~logger"]
    return compose_cfg("spot.yaml", out or tmp_path / "run",
                       [*base, f"data.root={tiny_lv}", f"paths.cache_dir={tiny_lv.parent / 'cache'}", *overrides])


@pytest.mark.parametrize("overrides", [["spotter=flow_peaks"], ["spotter=softnet"], ["data=cas2"], ["data=samm_lv"],
                                       ["data=casme3_lv", "recognise=true", "model=cnn_bilstm"]])
def test_the_spot_config_composes(tmp_path, overrides):
    cfg = compose_cfg("spot.yaml", tmp_path, overrides)
    assert cfg.protocol.name == "loso" and cfg.spotter._target_.startswith("mer_lightning.spotting.spotters.")
    assert cfg.data._target_.endswith("LongVideoData") and OmegaConf.to_container(cfg, resolve=True)["data"]["root"]


def test_spot_flow_peaks_end_to_end_then_resume(tmp_path, tiny_lv):
    from mer_lightning.spot import spot

    results = spot(spot_cfg(tmp_path, tiny_lv))
    out = tmp_path / "run"
    m = results["metrics"]
    assert results["complete"] and len(results["folds"]) == 3 and results["videos"] == 6
    for key in ("spot/f1", "spot/f1_micro", "spot/f1_macro", "spot/precision", "spot/recall", "spot/tp", "spot/fp",
                "spot/fn", "spot/precision_micro", "spot/tp_macro"):
        assert key in m
    assert m["spot/f1"] > 0.3  # well above the MEGC 2020 baseline's level, even on 3 tiny subjects
    intervals, truth = pd.read_csv(out / "intervals.csv"), pd.read_csv(out / "ground_truth.csv")
    assert list(intervals.columns) == ["video", "start", "end", "type", "score"]
    assert list(truth.columns) == ["video", "start", "end", "type"] and len(truth) == 6 * 3
    assert set(intervals.type) <= {"micro", "macro"} and (intervals.start <= intervals.end).all()
    assert json.loads((out / "results.json").read_text())["metrics"] == m
    assert "| micro |" in (out / "results.md").read_text() and len(list((out / "videos").glob("*.png"))) == 6
    fold = json.loads((out / "folds/fold_00/fold.json").read_text())
    assert set(fold["details"]["k"]) == {"micro", "macro"} and fold["details"]["chosen_on"].startswith("4 video(s)")
    # resume: every fold is finished, nothing is spotted again; another configuration is refused, naming the key
    stamp = (out / "folds/fold_01/fold.json").stat().st_mtime_ns
    again = spot(spot_cfg(tmp_path, tiny_lv))
    assert again["metrics"] == m and (out / "folds/fold_01/fold.json").stat().st_mtime_ns == stamp
    with pytest.raises(MERError, match=r"spotter.p_grid: \[.*\] -> \[0.5\]"):
        spot(spot_cfg(tmp_path, tiny_lv, "spotter.p_grid=[0.5]"))


def test_softnet_and_spot_then_recognise(tmp_path, tiny_lv):
    from mer_lightning.spot import spot

    results = spot(spot_cfg(tmp_path, tiny_lv, "spotter=softnet", "spotter.max_epochs=2", "protocol.val_subjects=1",
                            "spotter.inner_folds=null", "recognise=true", "model=linear", "data.classes=all", "data.image_size=16", "runner.folds=[0]",
                            logger=True))
    out = tmp_path / "run"
    m = results["metrics"]
    assert not results["complete"] and results["not_a_protocol_result"] == ["runner.folds=[0]: 1 of 3 folds"]
    assert (out / "results.md").read_text().startswith("> **Not a protocol result**")
    for key in ("str/strs", "str/f1_spot", "str/f1_analysis", "str/uf1", "str/uar"):
        assert key in m and 0.0 <= m[key] <= 1.0
    assert m["str/strs"] == pytest.approx(m["str/f1_spot"] * m["str/f1_analysis"])
    assert m["str/f1_spot"] == m["spot/f1_micro"]
    intervals = pd.read_csv(out / "intervals.csv", keep_default_na=False)
    assert list(intervals.columns) == ["video", "start", "end", "type", "score", "emotion"]
    micro = intervals[intervals.type == "micro"]
    assert set(micro.emotion) <= {"negative", "others", "positive", "surprise"} and (micro.emotion != "").any()
    assert (intervals[intervals.type == "macro"].emotion == "").all()
    assert "emotion" in pd.read_csv(out / "ground_truth.csv").columns
    fold = json.loads((out / "folds/fold_00/fold.json").read_text())["details"]
    assert "val_f1" in fold and fold["recogniser"]["train_clips"] > 0 and "validation subjects" in fold["chosen_on"]
    assert fold["trained_on"] == 2  # the carve-out's models: 1 training subject's 2 videos, not the validation one
    assert "STRS" in (out / "results.md").read_text()
    summary = pd.read_csv(out / "csv/summary/metrics.csv")  # the loggers' summary run has the pooled figures
    assert summary["spot/f1"].iloc[0] == pytest.approx(m["spot/f1"]) and "str/strs" in summary
    assert (out / "csv/fold_00_micro/metrics.csv").is_file()  # each learned spotter's training curve


def test_softnet_chooses_p_out_of_fold_and_trains_on_every_training_subject(tmp_path, tiny_lv):
    from mer_lightning.spot import spot

    spot(spot_cfg(tmp_path, tiny_lv, "spotter=softnet", "spotter.max_epochs=1", "spotter.inner_folds=2",
                  "runner.folds=[0]"))
    fold = json.loads((tmp_path / "run/folds/fold_00/fold.json").read_text())["details"]
    # 2 training subjects x 2 videos: p on both subjects' out-of-fold scores, the spotting models on all 4 videos
    assert fold["chosen_on"].startswith("out-of-fold scores of its 4 training video(s) (2 inner subject folds)")
    assert fold["trained_on"] == 4 and set(fold["val_f1"]) == {"micro", "macro"}
    with pytest.raises(Exception) as err:
        spot(spot_cfg(tmp_path / "one", tiny_lv, "spotter=softnet", "spotter.inner_folds=1"))
    assert str(user_error(err.value)).startswith("spotter.inner_folds=1: use null")


def test_inspect_lists_videos_intervals_and_fps(tmp_path, tiny_lv):
    from mer_lightning.inspect_data import inspect_data

    cfg = compose_cfg("inspect.yaml", tmp_path, ["data=synthetic_lv", f"data.root={tiny_lv}",
                                                 *[o for o in TINY_SPOT if o.startswith("data.")]])
    summary = inspect_data(cfg)
    assert summary["n_videos"] == 6 and summary["intervals"] == {"micro": 12, "macro": 6}
    assert summary["fps"] == {"cas2": [30.0]} and summary["frames"]["total"] > 6 * 100
    assert json.loads((tmp_path / "summary.json").read_text())["n_videos"] == 6


def test_bad_spotting_input_is_one_line(tmp_path):
    proc = run_cli("mer_lightning.spot", "data=cas2", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: CAS(ME)^2 not found")
    with pytest.raises(Exception) as err:  # raised in the spotter's constructor, through Hydra
        instantiate_strict(compose_cfg("spot.yaml", tmp_path / "b", ["spotter.p_grid=[2]"]).spotter, "spotter")
    assert str(user_error(err.value)).startswith("spotter.p_grid=[2]: give threshold fractions p between 0 and 1")
    with pytest.raises(MERError, match=r"^spotter.windw is not a key of spotter \(FlowPeaks\).*did you mean windw -> window"):
        instantiate_strict(compose_cfg("spot.yaml", tmp_path / "c", ["+spotter.windw=8"]).spotter, "spotter")


@pytest.mark.slow
def test_folds_in_parallel_give_the_sequential_intervals(tmp_path, tiny_lv):
    from mer_lightning.spot import spot

    spot(spot_cfg(tmp_path, tiny_lv, out=tmp_path / "one"))
    spot(spot_cfg(tmp_path, tiny_lv, "runner.parallel=2", out=tmp_path / "two"))
    assert (tmp_path / "one/intervals.csv").read_text() == (tmp_path / "two/intervals.csv").read_text()
