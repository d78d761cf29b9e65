"""The long-video readers (CAS(ME)^2, SAMM-LV, CAS(ME)^3 part A) on tiny trees written in their layouts, quirks
included; their bad input (each one line naming the sheet row, skipped and counted, nothing else lost); frames
streamed one at a time; the labelled micro-expressions as recognition clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mer_lightning.data.readers._videos import frame_number, interval_type
from mer_lightning.data.readers.cas2 import read_cas2
from mer_lightning.data.readers.casme3_lv import read_casme3_lv
from mer_lightning.data.readers.samm_lv import read_samm_lv
from mer_lightning.data.synthetic.videos import VideoSpec, synth_videos
from mer_lightning.data.synthetic.writers.cas2 import SHEET as CAS2_SHEET
from mer_lightning.data.synthetic.writers.cas2 import write_cas2_like
from mer_lightning.data.synthetic.writers.casme3_lv import write_casme3_lv_like
from mer_lightning.data.synthetic.writers.samm_lv import SHEET as SAMM_LV_SHEET
from mer_lightning.data.synthetic.writers.samm_lv import write_samm_lv_like
from mer_lightning.data.videos import iter_frames
from mer_lightning.utils.errors import MERError

SMALL = dict(subjects=2, videos_per_subject=2, micro=2, macro=1, frame_size=(96, 72), gap_seconds=(0.3, 0.5),
             blinks_per_minute=0.0, talking=0)


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("long")
    return {
        "cas2": write_cas2_like(base / "CASME_sq", VideoSpec(layout="cas2", **SMALL)),
        "cas2_cropped": write_cas2_like(base / "CASME_sq_cropped", VideoSpec(layout="cas2", cropped=True, **SMALL)),
        # SAMM-LV at 200 fps: short intervals for a small tree
        "samm_lv": write_samm_lv_like(base / "SAMM_LV", VideoSpec(layout="samm_lv", micro_frames=(8, 12),
                                                                  macro_frames=(20, 30), **SMALL)),
        "casme3_lv": write_casme3_lv_like(base / "CASME3", VideoSpec(layout="casme3_lv", **SMALL)),
    }


def _copy(trees, name, tmp_path) -> Path:
    return Path(shutil.copytree(trees[name], tmp_path / name))


def _truth(layout: str, **extra) -> list:
    return list(synth_videos(VideoSpec(layout=layout, **{**SMALL, **extra})))


def test_cells_frames_and_types():
    assert frame_number(566.4) == 566 and frame_number(566.5) == 567 and frame_number("12") == 12
    assert frame_number("/") is None and frame_number(None) is None
    assert [interval_type(t) for t in ("micro-expression", "Micro - 1/2", "Macro", "Macro-expression", "blink")] == [
        "micro", "micro", "macro", "macro", ""]


def test_cas2_reads_videos_by_the_naming_rules_with_its_quirks(trees):
    table = read_cas2(trees["cas2"])
    truth = _truth("cas2")
    assert len(table) == 4 and table.subjects == ["s15", "s16"] and not table.skipped
    assert {v.fps for v in table} == {30.0} and not any(v.cropped for v in table)
    assert [v.name for v in table] == ["15_0101disgustingteeth", "15_0401angryfight", "16_0401angryfight",
                                       "16_0503unnyfarting"]  # the release's misspelt folder, found by its prefix
    assert table.notes == {"offset_zero": 1, "apex_missing": 1}  # offset 0: the apex is the offset; apex 0: middle
    for video, drawn in zip(table, truth):
        assert [(iv.start, iv.end, iv.type, iv.emotion) for iv in video.intervals] == [
            (e.first, e.last, e.type, e.emotion) for e in drawn.events]
        assert video.first == 1 and video.last == drawn.n_frames and video.names[0] == "img001.jpg"
    cropped = read_cas2(trees["cas2_cropped"])
    assert all(v.cropped and v.names[0] == "img_1.jpg" for v in cropped)
    summary = table.summary()
    assert summary["intervals"] == {"micro": 8, "macro": 4} and summary["fps"] == {"cas2": [30.0]}


def test_cas2_bad_rows_are_one_line_each_and_nothing_else_is_lost(trees, tmp_path):
    root = _copy(trees, "cas2", tmp_path)
    sheets = pd.read_excel(root / CAS2_SHEET, sheet_name=None, header=None, dtype=object)
    codes = sheets["CASFEcode_final"]
    extra = pd.DataFrame([[1, "disgust1_9", 40, 35, 30, "4", "negative", "micro-expression", "x"],  # onset > offset
                          [1, "disgust1_10", 4000, 4005, 4010, "4", "negative", "micro-expression", "x"],  # outside
                          [9, "disgust1_11", 10, 12, 14, "4", "negative", "micro-expression", "x"],  # no such subject
                          [1, "nosuch1_1", 10, 12, 14, "4", "negative", "micro-expression", "x"]])  # no such video
    sheets["CASFEcode_final"] = pd.concat([codes, extra], ignore_index=True)
    with pd.ExcelWriter(root / CAS2_SHEET) as writer:
        for name, sheet in sheets.items():
            sheet.to_excel(writer, sheet_name=name, header=False, index=False)
    shutil.rmtree(root / "rawpic/s16/16_0401angryfight")  # a video folder missing: its 3 rows
    table = read_cas2(root)
    rows = len(codes)
    reasons = [s.reason for s in table.skipped]
    assert len(reasons) == 4 + 3 and len(table) == 3
    assert reasons[0] == f"{CAS2_SHEET} row {rows + 1}: onset 40 is after offset 30; fix the row (or remove it)"
    assert reasons[1] == f"{CAS2_SHEET} row {rows + 3}: subject id 9 is not in the `naming rule1` sheet"
    assert reasons[2] == f"{CAS2_SHEET} row {rows + 4}: video 'nosuch1' (from 'nosuch1_1') is not in the `naming rule2` sheet"
    assert reasons[3] == f"{CAS2_SHEET} row {rows + 2}: interval 4000-4010 is outside the video's frames on disk (1-{table[0].last})"
    assert all("does not exist" in r and "16_0401" in r for r in reasons[4:])
    assert sum(len(v.intervals) for v in table) == 9  # every other interval kept


def test_samm_lv_rounds_fractions_drops_onset_zero_and_joins_emotions(trees):
    table = read_samm_lv(trees["samm_lv"])
    truth = _truth("samm_lv", micro_frames=(8, 12), macro_frames=(20, 30))
    assert [v.id for v in table] == ["samm_lv/006/006_1", "samm_lv/006/006_2", "samm_lv/007/007_1", "samm_lv/007/007_2"]
    assert {v.fps for v in table} == {200.0} and table[0].names[0] == "006_1_0001.jpg"
    assert table.notes == {"onset_zero_dropped": 1, "fractional_frames": 1, "apex_missing": 1,
                           "emotion_from_micro_sheet": 8}
    for video, drawn in zip(table, truth):
        assert [(iv.start, iv.end, iv.type) for iv in video.intervals] == [(e.first, e.last, e.type) for e in drawn.events]
        assert all(iv.emotion == e.emotion.lower() for iv, e in zip(video.intervals, drawn.events) if e.type == "micro")
    kept = read_samm_lv(trees["samm_lv"], keep_onset_zero=True)
    first = kept[0].intervals[0]
    assert kept.notes["onset_zero_kept"] == 1 and kept.notes["clipped_to_video"] == 1 and first.start == 1
    assert "onset_zero_dropped" not in kept.notes


def test_samm_lv_without_its_micro_sheet_has_no_emotions_and_a_missing_sheet_is_named(trees, tmp_path):
    root = _copy(trees, "samm_lv", tmp_path)
    (root / "SAMM_Micro_FACS_Codes_v2.xlsx").unlink()
    table = read_samm_lv(root)
    assert table.notes["emotion_missing"] == 8 and all(iv.emotion == "" for v in table for iv in v.intervals)
    (root / SAMM_LV_SHEET).unlink()
    with pytest.raises(MERError, match="SAMM Long Videos sheet not found in .*SAMM_LongVideos_V3_Release.xlsx"):
        read_samm_lv(root)


def test_casme3_lv_reads_gaps_case_and_emotions(trees):
    table = read_casme3_lv(trees["casme3_lv"])
    truth = _truth("casme3_lv")
    assert [v.id for v in table] == ["casme3_lv/spNO.1/a", "casme3_lv/spNO.1/b", "casme3_lv/spNO.2/a",
                                     "casme3_lv/spNO.2/b"]  # the sheet's `A` finds folder `a`
    assert {v.origin for v in table} == {"casme3"} and table.notes == {"emotion_from_me_sheet": 8}
    summary = table.summary()
    assert summary["gaps"] == {"videos": 4, "frames_missing": 8}  # two dropped frames per video
    for video, drawn in zip(table, truth):
        assert len(video.numbers) == drawn.n_frames - 2 and video.gaps()
        assert [(iv.start, iv.end, iv.type) for iv in video.intervals] == [(e.first, e.last, e.type) for e in drawn.events]
    assert {iv.emotion for v in table for iv in v.of_type("micro")} <= {"happy", "disgust", "surprise", "others", "fear",
                                                                        "anger", "sad"}


def test_frames_are_streamed_one_at_a_time_and_a_bad_one_is_named(trees, tmp_path):
    video = read_cas2(_copy(trees, "cas2_cropped", tmp_path))[0]
    path = video.path(5)
    path.write_bytes(path.read_bytes()[:200])
    stream = iter_frames(video)
    assert iter(stream) is stream  # a generator: nothing decoded ahead
    got = list(stream)
    assert len(got) == video.n_frames and all(image is not None for n, image, _ in got if n != video.numbers[5])
    number, image, problem = got[5]
    assert number == video.numbers[5] and image is None and str(path) in problem
    missing = list(iter_frames(video, [video.numbers[0], 99999]))
    assert missing[1] == (99999, None, "frame 99999 is not on disk")


def test_labelled_micro_expressions_are_recognition_clips(trees, tmp_path):
    from mer_lightning.data.datamodule import LongVideoData
    from mer_lightning.data.readers.casme3_lv import read_casme3_lv as reader

    data = LongVideoData(root=str(trees["casme3_lv"]), reader=reader, classes="megc_3", cache_dir=None)
    table = data.read()
    micro = [iv for v in data.videos() for iv in v.of_type("micro")]
    kept = [iv for iv in micro if iv.emotion != "others"]  # megc_3: others are left out
    assert len(table) == len(kept) and table.classes == ["negative", "positive", "surprise"]
    sample = table[0]
    assert sample.id.startswith("casme3_lv/spNO.1/a_") and sample.origin == "casme3" and sample.fps == 30.0
    assert sample.frame_numbers[0] == sample.onset and sample.frame_numbers[-1] == sample.offset


def test_a_clip_reader_is_refused_for_spotting(tmp_path):
    from mer_lightning.data.datamodule import LongVideoData
    from mer_lightning.data.samples import SampleTable

    data = LongVideoData(root=str(tmp_path), reader=lambda root: SampleTable([]), cache_dir=None)
    with pytest.raises(MERError, match="reads clips, not long videos"):
        data.videos()
