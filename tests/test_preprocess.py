"""Preprocessing: face alignment, optical flow, the tensor cache, augmentation, the preprocess CLI."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer_lightning.data.cache import ClipCache
from mer_lightning.data.datamodule import ClipDataset, MERDataModule
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.preprocessing import (
    Preprocessing,
    flow_sequence,
    input_channels,
    load_clip,
    normalise_flow,
)
from mer_lightning.data.readers import read_casme2
from mer_lightning.data.splits import Fold
from mer_lightning.data.transforms import ClipAugment, build_augment
from mer_lightning.utils.errors import MERError
from mer_lightning.vision.flow import dense_flow, diff_input, optical_strain
from tests.conftest import TINY, needs_dlib, run_cli

AUGMENT = {  # the transforms of conf/data/augment/default.yaml, always applied
    "hflip": {"_target_": "albumentations.HorizontalFlip", "p": 1.0},
    "affine": {"_target_": "albumentations.Affine", "scale": [0.9, 1.1], "translate_percent": [-0.05, 0.05],
               "rotate": [-5, 5], "border_mode": 1, "p": 1.0},
    "brightness_contrast": {"_target_": "albumentations.RandomBrightnessContrast", "brightness_limit": 0.2,
                            "contrast_limit": 0.2, "p": 1.0},
}


# the frames pipeline (appearance input, no face detection): what these tests of decoding and caching
# check; the DataModule's own defaults (those of conf/_data.yaml) are motion on faces
FRAMES = {"input": "frames", "face": "none", "flow_size": None}


def _casme2(root, **options) -> MERDataModule:
    """The DataModule of `data=casme2` (its reader) on the frames pipeline unless `options` say otherwise."""
    return MERDataModule(root, read_casme2, name="casme2", **{**FRAMES, **options})


def _table(root):
    return apply_scheme(read_casme2(root), "all")


def _copy(tiny_root, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_root, tmp_path / "copy"))


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if not p.name.startswith(".")) if cache_dir.exists() else []


# -- face ----------------------------------------------------------------------------------------
@needs_dlib
@pytest.mark.parametrize("tilt", [0, 12, -15])
def test_face_alignment_on_a_photograph(tilt):
    from skimage.data import astronaut

    from mer_lightning.vision.face import FaceAligner, eye_centres

    photo = astronaut()  # 512 x 512 RGB, one frontal face
    turn = cv2.getRotationMatrix2D((256, 256), tilt, 1.0)
    image = cv2.warpAffine(photo, turn, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    aligner = FaceAligner()
    transform = aligner.estimate(image)
    crop = transform.apply(image, 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert 80 <= transform.side <= 250, "a face-sized box around the landmarks, with a margin"
    left, right = eye_centres(transform.map_points(transform.landmarks, 128))
    assert abs(left[1] - right[1]) < 0.5, "the eyes are level in the crop"
    assert 25 < right[0] - left[0] < 70 and 20 < left[1] < 60, "eyes in the upper half, face-sized"
    # independently: landmarks found again on the aligned crop are level too
    again = aligner.landmarks(transform.apply(image, 256))
    l2, r2 = eye_centres(again)
    assert abs(np.degrees(np.arctan2(r2[1] - l2[1], r2[0] - l2[0]))) < 3.0
    # the same transform for every frame: a copy of the frame gives the same crop
    assert np.array_equal(transform.apply(image.copy(), 128), crop)


@needs_dlib
def test_no_face_raises_face_not_found():
    from mer_lightning.vision.face import FaceAligner, FaceNotFound

    with pytest.raises(FaceNotFound):
        FaceAligner().estimate(np.full((200, 200), 120, np.uint8))


def test_missing_dlib_says_how_to_install(monkeypatch):
    import sys

    from mer_lightning.vision.face import import_dlib

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    with pytest.raises(MERError, match=r'pip install -e "\.\[face\]"'):
        import_dlib()


# -- flow ----------------------------------------------------------------------------------------
def _texture(size=96, seed=0) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (size, size)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["farneback", "dis", "tvl1"])
def test_flow_of_a_translation(method):
    onset = _texture()
    shift = 2.0
    apex = cv2.warpAffine(onset, np.float32([[1, 0, shift], [0, 1, 0]]), onset.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    flow = dense_flow(onset, apex, method)
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(shift, abs=0.25), "u is the shift in pixels"
    assert abs(np.median(inner[..., 1])) < 0.25, "no vertical motion"
    assert np.median(optical_strain(flow)[16:-16, 16:-16]) < 0.1, "a rigid translation hardly strains"
    x = normalise_flow(flow_sequence(onset, apex[None], method))[0]
    assert x.shape == (3, 96, 96) and x.dtype == np.float32
    assert np.median(x[0, 16:-16, 16:-16]) > 0.8, "u: positive, near the clip's largest |u| (scaled to 1)"
    assert abs(np.median(x[1, 16:-16, 16:-16]) - 0.5) < 0.1, "v: no motion is 0.5"
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_optical_strain_of_known_fields():
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float32)
    stretch = np.stack([0.1 * xs, np.zeros_like(xs)], -1)  # ux = 0.1
    assert np.allclose(optical_strain(stretch), 0.1, atol=1e-6)
    shear = np.stack([0.1 * ys, np.zeros_like(xs)], -1)  # uy = 0.1: sqrt(0.5 * 0.01)
    assert np.allclose(optical_strain(shear), np.sqrt(0.005), atol=1e-6)
    still = normalise_flow(flow_sequence(np.zeros((32, 32), np.uint8), np.zeros((1, 32, 32), np.uint8), "farneback"))
    assert (still[:, :2] == 0.5).all() and (still[:, 2] == 0).all(), "no motion: u, v at 0.5, no strain"


def test_diff_input_is_centred():
    onset = np.full((1, 4, 4), 100, np.uint8)
    apex = onset.copy()
    apex[0, 0, 0] = 151
    d = diff_input(onset, apex)
    assert d[0, 1, 1] == 0.5 and d[0, 0, 0] == pytest.approx(0.5 + 51 / 510)


# -- the cache -----------------------------------------------------------------------------------
def test_default_input_serves_the_same_uint8_clips(tiny_root, tmp_path):
    table = _table(tiny_root)
    prep = Preprocessing(**FRAMES, frames="uniform", num_frames=4, image_size=32, channels=1)
    cached = ClipCache(tmp_path / "cache", prep, tiny_root).get(table.samples)
    in_memory = ClipCache(None, prep, tiny_root).get(table.samples)
    direct = np.stack([load_clip(s, "uniform", 4, 32, 1) for s in table])
    assert isinstance(cached.clips, np.memmap) and cached.clips.dtype == np.uint8
    assert np.array_equal(np.asarray(cached.clips), direct) and np.array_equal(in_memory.clips, direct)
    assert cached.kept == list(range(len(table))) and in_memory.report.path is None


def test_cache_is_keyed_by_options_and_data(tiny_root, tmp_path):
    root = _copy(tiny_root, tmp_path)
    cache_dir = tmp_path / "cache"
    samples = _table(root).samples
    prep = Preprocessing(**FRAMES, num_frames=4, image_size=32)
    first = ClipCache(cache_dir, prep, root).get(samples)
    assert first.report.built and len(_entries(cache_dir)) == 1
    manifest = _entries(cache_dir)[0] / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = ClipCache(cache_dir, prep, root).get(samples)
    assert not again.report.built and manifest.stat().st_mtime_ns == stamp, "same options: reused, not rebuilt"
    assert np.array_equal(np.asarray(again.clips), np.asarray(first.clips))
    # an option that does not apply to input=frames: same entry
    assert not ClipCache(cache_dir, Preprocessing(**FRAMES, num_frames=4, image_size=32, flow="dis"), root).get(samples).report.built
    # every option that changes the arrays: a new entry
    for changed in (Preprocessing(**FRAMES, num_frames=4, image_size=48), Preprocessing(**FRAMES, num_frames=6, image_size=32),
                    Preprocessing(**FRAMES, num_frames=4, image_size=32, frames="onset_apex"),
                    Preprocessing(**FRAMES, num_frames=4, image_size=32, channels=3),
                    Preprocessing(input="diff", image_size=32), Preprocessing(input="flow", image_size=32),
                    Preprocessing(input="flow", image_size=32, flow="dis")):
        assert ClipCache(cache_dir, changed, root).get(samples).report.built, changed
    assert len(_entries(cache_dir)) == 8
    # the data changed on disk (same names): rebuilt, the new pixels served
    frame = samples[0].frames[0]
    cv2.imwrite(str(frame), np.full((128, 128), 7, np.uint8))
    fresh = ClipCache(cache_dir, prep, root).get(samples)
    assert fresh.report.built and fresh.clips[0, 0].max() <= 8
    # fewer samples (another label scheme, another annotation): another entry
    assert ClipCache(cache_dir, prep, root).get(samples[:-1]).report.built


def test_a_crash_mid_build_leaves_nothing_that_is_trusted(tiny_root, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    samples = _table(tiny_root).samples
    prep = Preprocessing(**FRAMES, num_frames=4, image_size=32)
    real, calls = Preprocessing.process, []

    def crash(self, sample, aligner=None):
        calls.append(sample.id)
        if len(calls) == 5:
            raise RuntimeError("killed mid-build")
        return real(self, sample, aligner)

    monkeypatch.setattr(Preprocessing, "process", crash)
    with pytest.raises(RuntimeError, match="killed mid-build"):
        ClipCache(cache_dir, prep, tiny_root).get(samples)
    assert _entries(cache_dir) == [] and not list(cache_dir.rglob("manifest.json")), "no half cache left"
    monkeypatch.setattr(Preprocessing, "process", real)
    # a hard kill (no clean-up) right before the final rename: a complete-looking temporary folder
    cache = ClipCache(cache_dir, prep, tiny_root)
    leftover = cache_dir / f".build-{cache.entry(cache.key(samples)).name}-killed"
    leftover.mkdir()
    np.save(leftover / "clips.npy", np.zeros((len(samples), 4, 1, 32, 32), np.uint8))
    (leftover / "manifest.json").write_text(json.dumps({"key": cache.key(samples)}))
    rebuilt = cache.get(samples)
    assert rebuilt.report.built and rebuilt.clips.any(), "the next run rebuilds; the leftover is never read"
    # an entry whose manifest is damaged is not trusted either
    entry = _entries(cache_dir)[0]
    (entry / "manifest.json").write_text("{not json")
    assert ClipCache(cache_dir, prep, tiny_root).get(samples).report.built
    assert json.loads((entry / "manifest.json").read_text())["rows"] == len(samples)


def test_unwritable_cache_dir_names_it_and_the_override(tiny_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cache_dir = blocker / "cache"  # fails even as root: a path under a regular file
    with pytest.raises(MERError, match=r"cache directory .*a_file/cache is not writable.*paths\.cache_dir="):
        ClipCache(cache_dir, Preprocessing(**FRAMES, num_frames=2, image_size=32), tiny_root).get(_table(tiny_root).samples)


def test_broken_clips_are_skipped_and_reported(tiny_root, tmp_path):
    root = _copy(tiny_root, tmp_path)
    samples = _table(root).samples
    truncated, short, garbled = samples[0], samples[1], samples[2]
    data = truncated.frames[0].read_bytes()
    truncated.frames[0].write_bytes(data[:-64])  # the onset frame lost its tail: found while reading
    garbled.frames[0].write_bytes(b"\xff\xd8" + bytes(500) + b"\xff\xd9")  # looks whole, does not decode
    for path in short.frames[-2:]:  # the clip is now shorter than its annotated offset
        path.unlink()
    dm = _casme2(root, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"),
                          max_skipped_fraction=0.25)
    table = dm.load()
    reasons = {s.sample: s.reason for s in table.skipped}
    assert "truncated JPEG" in reasons[truncated.id]
    assert "outside the files on disk" in reasons[short.id]
    assert "cannot decode frame" in reasons[garbled.id]
    assert len(table) == len(samples) - 3 and not {truncated.id, garbled.id} & {s.id for s in table}
    assert len(dm.clips) == len(table)
    manifest = json.loads((Path(dm.cache_report.path) / "manifest.json").read_text())
    assert [s["sample"] for s in manifest["skipped"]] == [garbled.id]  # the others never reach the cache
    # the cap on skipped samples still applies
    with pytest.raises(MERError, match="max_skipped_fraction"):
        _casme2(root, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"),
                         max_skipped_fraction=0.01).load()


@needs_dlib
def test_face_lost_is_reported_per_clip(tmp_path):
    from mer_lightning.data.synthetic import SyntheticSpec
    from mer_lightning.data.synthetic.writers import write_casme2_like

    root = write_casme2_like(tmp_path / "faces", SyntheticSpec(subjects=2, clips_per_class=1, seed=3))
    samples = _table(root).samples
    blank = samples[2]
    for path in blank.frames:  # no face in this clip any more
        cv2.imwrite(str(path), np.full((128, 128), 90, np.uint8))
    dm = _casme2(root, image_size=32, num_frames=2, face="dlib", cache_dir=str(tmp_path / "cache"),
                          max_skipped_fraction=0.5)
    table = dm.load()
    reasons = {s.sample: s.reason for s in table.skipped}
    assert list(reasons) == [blank.id] and "no face found" in reasons[blank.id]
    assert dm.cache_report.faces_found == len(samples) - 1 == len(table)
    assert dm.clips.shape == (len(samples) - 1, 2, 1, 32, 32)
    assert "1 skipped" in dm.cache_report.summary() and blank.id in dm.cache_report.summary()


# -- channels ------------------------------------------------------------------------------------
def test_channels_follow_the_input(tiny_root, tmp_path):
    assert input_channels("frames", True) == 1 and input_channels("frames", False) == 3
    assert input_channels("diff", True) == 1 and input_channels("flow", True) == 3
    with pytest.raises(MERError, match="data.input=flow"):
        _casme2(tiny_root, input="flow", channels=1)
    with pytest.raises(MERError, match="unknown data.input"):
        input_channels("optical")
    dm = _casme2(tiny_root, input="flow", image_size=32, cache_dir=str(tmp_path / "cache"))
    dm.load()
    assert dm.channels == 3 and dm.clips.shape[1:] == (1, 3, 32, 32) and dm.clips.dtype == np.float16


def test_memory_mapped_dataset_pickles_without_copying(tiny_root, tmp_path):
    dm = _casme2(tiny_root, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"))
    dm.load()
    data = ClipDataset(dm.clips, dm.table.labels, [0, 5], 0.5, 0.5)
    blob = pickle.dumps(data)
    assert len(blob) < dm.clips.nbytes / 4, "workers re-open the file instead of receiving a copy"
    clone = pickle.loads(blob)
    assert isinstance(clone.clips, np.memmap) and np.array_equal(clone[1]["x"].numpy(), data[1]["x"].numpy())


@pytest.mark.parametrize("input", ["frames", "flow"])
def test_batched_loading_serves_exactly_the_items(tiny_root, tmp_path, input):
    """`__getitems__` reads a batch at once: the same tensors, labels and ids as item by item."""
    import torch
    from torch.utils.data import DataLoader

    from mer_lightning.data.datamodule import collate_clips

    dm = _casme2(tiny_root, input=input, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"))
    dm.load()
    indices = [7, 0, 3, 11, 5]
    data = ClipDataset(dm.clips, dm.table.labels, indices, 0.5, 0.5)
    (batch,) = list(DataLoader(data, batch_size=8, collate_fn=collate_clips))
    items = [data[i] for i in range(len(indices))]
    assert torch.equal(batch["x"], torch.stack([item["x"] for item in items]))
    assert batch["y"].dtype == torch.int64 and batch["y"].tolist() == [item["y"] for item in items]
    assert batch["index"].tolist() == indices
    # with augmentation the clips go one by one through the transform, and still batch
    augmented = ClipDataset(dm.clips, dm.table.labels, indices, 0.5, 0.5, transform=lambda clip: clip[:, :, ::-1])
    (flipped,) = list(DataLoader(augmented, batch_size=8, collate_fn=collate_clips))
    assert torch.equal(flipped["x"], batch["x"].flip(-2)) and flipped["index"].tolist() == indices


# -- augmentation --------------------------------------------------------------------------------
def test_augmentation_is_identical_across_frames():
    frame = _texture(32)[None]  # (C, H, W)
    clip = np.repeat(frame[None], 6, axis=0)  # (T, C, H, W), all frames identical
    augment = ClipAugment(build_augment(AUGMENT))
    for _ in range(3):
        out = augment(clip)
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[t], out[0]) for t in range(6)), "one draw of parameters for the clip"
        assert not np.array_equal(out[0], clip[0]), "and it did change the frames"


def test_flow_flip_negates_u():
    flow = np.random.default_rng(0).uniform(0, 1, (1, 3, 16, 16)).astype(np.float16)
    out = ClipAugment(build_augment([{"_target_": "albumentations.HorizontalFlip", "p": 1.0}]), flow=True)(flow)
    assert np.allclose(out[0, 0], 1 - flow[0, 0, :, ::-1], atol=1e-3)
    assert np.allclose(out[0, 1:], flow[0, 1:, :, ::-1], atol=1e-3)


def test_bad_augment_config_is_a_user_error():
    with pytest.raises(MERError, match="data.augment.x"):
        build_augment({"x": {"p": 1.0}})
    assert build_augment(None) is None and build_augment({"off": None}) is None


def test_only_the_training_loader_augments(tiny_root, tmp_path):
    dm = _casme2(tiny_root, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"), augment=AUGMENT)
    table = dm.load()
    subjects = table.subjects
    split = lambda names: table.where_subjects(names)  # noqa: E731
    dm.set_fold(Fold(0, split(subjects[:4]), split(subjects[4:5]), split(subjects[5:]), subjects[5:]))
    plain = lambda i: (np.asarray(dm.clips[i], np.float32) / 255 - 0.5) / 0.5  # noqa: E731
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        batch = next(iter(loader))
        for x, i in zip(batch["x"], batch["index"]):
            assert np.allclose(x.numpy(), plain(int(i))), "val/test are served as cached"
    batch = next(iter(dm.train_dataloader()))
    assert not any(np.allclose(x.numpy(), plain(int(i))) for x, i in zip(batch["x"], batch["index"]))


def test_augmentation_follows_the_run_seed(tiny_root, tmp_path):
    import torch

    def first_batch(seed):
        dm = _casme2(tiny_root, image_size=32, num_frames=4, cache_dir=str(tmp_path / "cache"),
                              augment=AUGMENT)
        table = dm.load()
        dm.set_fold(Fold(0, list(range(len(table))), [], [], []))
        torch.manual_seed(seed)  # what seed_everything does for each fold
        return next(iter(dm.train_dataloader()))["x"]

    assert torch.equal(first_batch(1), first_batch(1)), "same seed, same augmentation"
    assert not torch.equal(first_batch(1), first_batch(2))


def test_augment_config_group_composes(train_cfg, tmp_path):
    import hydra

    cfg = train_cfg("data/augment=default", f"paths.cache_dir={tmp_path / 'cache'}")
    assert set(cfg.data.augment) == {"hflip", "affine", "brightness_contrast"}
    dm = hydra.utils.instantiate(cfg.data)
    names = [type(t).__name__ for t in dm.train_transform.compose.transforms]
    assert names == ["HorizontalFlip", "Affine", "RandomBrightnessContrast"]
    off = hydra.utils.instantiate(train_cfg("data/augment=default", "data.augment.hflip=null").data)
    assert [type(t).__name__ for t in off.train_transform.compose.transforms] == ["Affine", "RandomBrightnessContrast"]


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.parametrize("data_input,channels", [("diff", 1), ("flow", 3)])
def test_motion_inputs_train_with_matching_model_channels(train_cfg, tmp_path, data_input, channels):
    from mer_lightning.train import train

    cfg = train_cfg(f"data.input={data_input}", "debug=fast_dev_run", "data/augment=default",
                    f"paths.cache_dir={tmp_path / 'cache'}")
    assert cfg.data.channels == cfg.model.backbone.in_chans == channels
    results = train(cfg)
    assert 0.0 <= results["metrics"]["protocol/uf1"] <= 1.0
    manifests = [json.loads((e / "manifest.json").read_text()) for e in _entries(tmp_path / "cache")]
    # this run's input, and the reference's (report.reference=linear: the onset -> apex flow, one step)
    manifest = next(m for m in manifests if m["options"]["input"] == data_input)
    assert manifest["shape"][1:] == [1, channels, 32, 32]
    assert {m["options"]["input"] for m in manifests} == {data_input, "flow_seq"}


def test_preprocess_cli_builds_then_reuses(tiny_root, tmp_path):
    common = [*[o for o in TINY if o.startswith("data.")], f"data.root={tiny_root}", "data.input=flow",
              f"paths.cache_dir={tmp_path / 'cache'}"]
    first = run_cli("mer_lightning.preprocess", *common, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "preprocessing cache built" in first.stdout and "60 clip(s) processed" in first.stdout
    report = json.loads((tmp_path / "a/preprocess.json").read_text())
    assert report["built"] and report["kept"] == 60 and report["samples"] == 60
    second = run_cli("mer_lightning.preprocess", *common, f"hydra.run.dir={tmp_path / 'b'}")
    assert second.returncode == 0 and "preprocessing cache reused" in second.stdout
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    bad = run_cli("mer_lightning.preprocess", *common, f"paths.cache_dir={blocker}/cache",
                  f"hydra.run.dir={tmp_path / 'c'}")
    assert bad.returncode == 2
    assert "error: cache directory" in bad.stderr and "paths.cache_dir=" in bad.stderr
    assert "Traceback" not in bad.stderr
