"""Synthetic data, label schemes, frame selection and subject splits (with the leak guard)."""

import hashlib

import numpy as np
import pytest

from mer_lightning.data.clips import frame_plan
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.readers import read_casme2
from mer_lightning.data.samples import Sample
from mer_lightning.data.splits import Fold, check_fold, make_folds
from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic
from mer_lightning.utils.errors import LeakError, MERError


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.jpg")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_synthetic_is_seeded_and_reused(tmp_path):
    small = {"subjects": 2, "clips_per_class": 1, "min_frames": 4, "max_frames": 5, "frame_size": (240, 180)}
    spec = SyntheticSpec(**small, seed=5)
    a = ensure_synthetic(tmp_path / "a", spec)
    b = ensure_synthetic(tmp_path / "b", spec)
    assert _digest(a) == _digest(b)
    stamp = (a / "CASME2_RAW_selected").stat().st_mtime_ns
    ensure_synthetic(tmp_path / "a", spec)  # already there: not regenerated
    assert (a / "CASME2_RAW_selected").stat().st_mtime_ns == stamp
    c = ensure_synthetic(tmp_path / "c", SyntheticSpec(**small, seed=6))
    assert _digest(c) != _digest(a)


def test_synthetic_identity_differs_more_than_expression(tiny_root):
    """Between subjects the frames differ more than between onset and apex of one clip."""
    import cv2

    table = read_casme2(tiny_root)  # face crops, a size per subject: compared at 64 x 64

    def frames(sample):
        return [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (64, 64), interpolation=cv2.INTER_AREA)
                .astype(float) for p in sample.frames]

    within = []
    for sample in table:
        fa = frames(sample)
        within.append(np.abs(fa[sample.frame_numbers.index(sample.apex)] - fa[0]).mean())
    first_of_subject = {s.subject: frames(s)[0] for s in reversed(table.samples)}
    onsets = [first_of_subject[k] for k in sorted(first_of_subject)]
    between = [np.abs(a - b).mean() for a, b in zip(onsets, onsets[1:])]
    assert np.mean(between) > 3 * np.mean(within) > 0


def test_synthetic_in_casme2_layout_reads_back(tiny_root):
    table = read_casme2(tiny_root)
    assert len(table) == 6 * 5 * 2 and not table.skipped
    sample = table[0]
    assert sample.subject.startswith("sub") and sample.frames[0].name.startswith("reg_img")
    assert list(sample.frame_numbers) == sorted(sample.frame_numbers)
    assert sample.frame_numbers[0] == sample.onset and sample.frame_numbers[-1] == sample.offset
    assert all(s.cropped for s in table), "the Cropped release holds face crops"
    labelled = apply_scheme(table, "casme2_5")
    assert labelled.classes == ["happiness", "disgust", "repression", "surprise", "others"]
    assert set(labelled.class_counts().values()) == {12}


def test_frame_plan_uniform_apex_and_interpolation():
    s = Sample("d", "s1", "c1", "x", frames=tuple(f"f{i}" for i in range(5)), frame_numbers=(10, 11, 12, 13, 14),
               onset=10, apex=13, offset=14)
    assert frame_plan(s, "apex", 8) == [(3, 4, 0.0)]
    assert frame_plan(s, "uniform", 1) == [(3, 4, 0.0)]
    assert [a for a, _, _ in frame_plan(s, "onset_apex", 8)] == [0, 3]
    plan = frame_plan(s, "uniform", 9)  # longer than the clip: blends neighbours
    assert len(plan) == 9 and plan[0] == (0, 1, 0.0) and plan[1] == (0, 1, 0.5)


def _table(subjects=5, per=4):
    samples = [Sample("d", f"s{s}", f"c{s}_{k}", ["a", "b"][k % 2], label=k % 2) for s in range(subjects)
               for k in range(per)]
    from mer_lightning.data.samples import SampleTable

    return SampleTable(samples, ["a", "b"])


@pytest.mark.parametrize("protocol,options", [("loso", {}), ("subject_kfold", {"k": 3}), ("holdout", {})])
def test_folds_are_subject_independent(protocol, options):
    table = _table()
    folds = make_folds(table, protocol, val_subjects=1, seed=0, **options)
    for fold in folds:
        parts = [{table[i].subject for i in part} for part in (fold.train, fold.val, fold.test)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert fold.val, "validation subjects come from the training subjects"


def test_leak_guard_stops_a_forced_leak():
    table = _table()
    fold = make_folds(table, "loso", val_subjects=1)[0]
    leaked = Fold(fold.index, fold.train + fold.test[:1], fold.val, fold.test, fold.test_subjects)
    with pytest.raises(LeakError, match="in both train and test"):
        check_fold(table, leaked)


def test_a_key_the_protocol_does_not_take_is_named():
    with pytest.raises(MERError, match=r"protocol.val_subject is not a key of protocol \(loso\); known: val_subjects "
                                       r"\(did you mean val_subject -> val_subjects\?\)"):
        make_folds(_table(), "loso", val_subject=1)
    with pytest.raises(MERError, match=r"protocol.test_subjects is not a key of protocol \(loso\)"):
        make_folds(_table(), "loso", test_subjects=2, seed=0)
    assert len(make_folds(_table(), "holdout", test_subjects=2, val_subjects=1, seed=0)) == 1
    with pytest.raises(MERError, match=r"protocol.folds is not a key of protocol \(holdout\)"):  # a runner key now
        make_folds(_table(), "holdout", test_subjects=2, seed=0, folds=None)


def test_two_synthetic_layouts_coexist(tmp_path):
    from mer_lightning.data.synthetic import SyntheticSpec, read_synthetic

    small = dict(subjects=3, clips_per_class=1, min_frames=4, max_frames=5, frame_size=(160, 120))
    casme2 = read_synthetic(tmp_path, layout="casme2", cropped=True, **small)
    samm = read_synthetic(tmp_path, layout="samm", **small)
    again = read_synthetic(tmp_path, layout="casme2", cropped=True, **small)  # still there: not regenerated
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [SyntheticSpec(layout="casme2", cropped=True, **small).folder_name(), SyntheticSpec(layout="samm", **small).folder_name()])
    assert [s.frames for s in again] == [s.frames for s in casme2] and len(samm) == 15
