"""Motion inputs at face resolution, faces where a release needs them, the realistic embedded data,
and the classical baseline: what makes a model learn micro-expressions rather than faces."""

import json

import cv2
import numpy as np
import pytest
import torch

from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.preprocessing import (
    Preprocessing,
    input_channels,
    normalise_flow,
    resize_channels,
)
from mer_lightning.data.readers import read_casme2, read_fer2013, read_samm
from mer_lightning.data.synthetic import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.faces import LANDMARKS, expression_field, make_identity
from mer_lightning.data.synthetic.writers import write_casme2_like, write_samm_like
from mer_lightning.utils.errors import MERError
from mer_lightning.vision.flow import dense_flow, optical_strain
from tests.conftest import needs_dlib

SMALL = {"subjects": 2, "clips_per_class": 1, "min_frames": 6, "max_frames": 8, "frame_size": (320, 240)}


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    """Full 320x240 frames in the CASME2_RAW_selected layout: a face must be found."""
    return write_casme2_like(tmp_path_factory.mktemp("raw") / "CASME2", SyntheticSpec(**SMALL))


# -- the realistic embedded data -----------------------------------------------------------------

def test_expression_motion_is_one_to_three_pixels_and_local():
    rng = np.random.default_rng(0)
    identity = make_identity(rng, "astronaut", (640, 480))
    for amplitude in (1.0, 3.0):
        field = expression_field(identity, ("6", "12"), amplitude)
        length = np.hypot(field[..., 0], field[..., 1])
        assert length.max() == pytest.approx(amplitude, rel=1e-5)
        moving = length > 0.1 * amplitude
        assert moving.sum() < 0.5 * identity.face_width ** 2, "action units move patches of skin, not the face"
    assert not np.abs(expression_field(identity, (), 3.0)).any()


def test_clips_are_full_frames_with_the_face_a_fraction_and_head_motion():
    clips = list(synth_clips(SyntheticSpec(**SMALL)))
    clip = clips[0]
    height, width = clip.frames[0].shape[:2]
    x0, y0, x1, y1 = clip.box
    assert (width, height) == (320, 240) and (x1 - x0) * (y1 - y0) < 0.5 * width * height
    # frames outside the expression still change (head jitter, noise): no frame is a copy of another
    assert all(np.abs(a.astype(int) - b).mean() > 0.3 for a, b in zip(clip.frames, clip.frames[1:]))
    assert {c.subject for c in clips} == {1, 2} and clips[0].aus != ()


def test_photographs_ship_with_installed_packages_and_landmarks_fit():
    from mer_lightning.data.synthetic.faces import photo

    for name, points in LANDMARKS.items():
        image = photo(name)
        assert image.ndim == 3 and len(points) == 68
        assert (np.array(points) < np.array(image.shape[1::-1])).all()


@needs_dlib
def test_dlib_finds_the_face_in_the_written_raw_frames(raw_root):
    from mer_lightning.vision.face import FaceAligner

    table = read_casme2(raw_root)
    aligner = FaceAligner()
    for sample in table.samples[:4]:
        gray = cv2.imread(str(sample.frames[0]), cv2.IMREAD_GRAYSCALE)
        transform = aligner.estimate(gray)
        assert 60 < transform.side < 240


# -- motion at face resolution -------------------------------------------------------------------

def _first_sample(root):
    return apply_scheme(read_casme2(root), "all")[0]


def test_flow_at_face_resolution_then_resized_equals_a_direct_computation(raw_root):
    sample = _first_sample(raw_root)
    prep = Preprocessing(input="flow", face="none", image_size=24, flow_size=96, flow="farneback")
    got = prep.process(sample).astype(np.float32)

    numbers = list(sample.frame_numbers)

    def at(frame_number, size):
        gray = cv2.imread(str(sample.frames[numbers.index(frame_number)]), cv2.IMREAD_GRAYSCALE)
        return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)

    flow = dense_flow(at(sample.onset, 96), at(sample.apex, 96), "farneback")
    channels = [flow[..., 0], flow[..., 1], optical_strain(flow)]
    small = [cv2.resize(c, (24, 24), interpolation=cv2.INTER_AREA) for c in channels]
    u, v, strain = small  # scaled per clip: no motion at 0.5, the largest |u| at 0 or 1
    direct = np.stack([0.5 + 0.5 * u / np.abs(u).max(), 0.5 + 0.5 * v / np.abs(v).max(), strain / strain.max()])[None]
    assert got.shape == (1, 3, 24, 24)
    np.testing.assert_allclose(got, direct, atol=2e-3)
    # and it is not what measuring on the already-shrunk frames gives
    shrunk = Preprocessing(input="flow", face="none", image_size=24, flow_size=None).process(sample)
    assert np.abs(shrunk.astype(np.float32) - got).mean() > 0.02


def test_flow_seq_shapes_steps_and_joint_scaling(raw_root):
    sample = _first_sample(raw_root)
    prep = Preprocessing(input="flow_seq", face="none", num_frames=5, image_size=16, flow_size=64)
    x = prep.process(sample).astype(np.float32)
    assert x.shape == prep.shape == (5, 3, 16, 16) and prep.out_channels == input_channels("flow_seq") == 3
    assert 0.0 <= x.min() and x.max() <= 1.0
    for c in range(3):  # scaled over all steps together: the extreme is reached once, not per step
        assert np.abs(x[:, c] - (0.5 if c < 2 else 0.0)).max() == pytest.approx(0.5 if c < 2 else 1.0, abs=1e-3)
    assert np.abs(x[0, :2] - 0.5).mean() < 0.01, "step 0 is onset -> onset: no motion (Farneback: ~0 at borders)"
    per_step = np.abs(x[:, 0] - 0.5).max(axis=(1, 2))
    assert per_step.max() > 2 * per_step[0], "the motion rises after the onset"
    # T=1 (uniform) is the apex: the same as input=flow
    one = Preprocessing(input="flow_seq", face="none", num_frames=1, image_size=16, flow_size=64).process(sample)
    flow = Preprocessing(input="flow", face="none", image_size=16, flow_size=64).process(sample)
    np.testing.assert_array_equal(one, flow)


def test_diff_seq_is_frame_minus_onset(raw_root):
    sample = _first_sample(raw_root)
    prep = Preprocessing(input="diff_seq", face="none", num_frames=4, image_size=16, flow_size=64)
    x = prep.process(sample).astype(np.float32)
    assert x.shape == (4, 1, 16, 16)
    np.testing.assert_allclose(x[0], 0.5, atol=1e-3)  # onset - onset
    assert np.abs(x[1:] - 0.5).max() > 1e-3


def test_normalise_and_resize_helpers():
    flow = np.zeros((2, 3, 8, 8), np.float32)
    flow[1, 0, 2, 2], flow[1, 0, 3, 3], flow[1, 2, 2, 2] = 4.0, -2.0, 3.0
    scaled = normalise_flow(flow)
    assert scaled[1, 0, 2, 2] == 1.0 and scaled[1, 0, 3, 3] == 0.25 and scaled[0, 0].max() == 0.5
    assert (scaled[:, 1] == 0.5).all(), "no vertical motion: 0.5 everywhere"
    assert scaled[1, 2, 2, 2] == 1.0 and scaled[0, 2].max() == 0.0
    minmax = normalise_flow(flow, "minmax")
    assert minmax[1, 0, 3, 3] == 0.0 and minmax[1, 0, 2, 2] == 1.0
    assert resize_channels(np.ones((2, 3, 8, 8), np.float32), 4).shape == (2, 3, 4, 4)


def test_tvl1_recovers_a_subpixel_shift():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64)).astype(np.float32), (0, 0), 2)
    image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    moved = cv2.warpAffine(image, np.float32([[1, 0, 0.7], [0, 1, -0.4]]), (64, 64), borderMode=cv2.BORDER_REFLECT)
    flow = dense_flow(image, moved, "tvl1")
    np.testing.assert_allclose(flow[16:48, 16:48].mean((0, 1)), [0.7, -0.4], atol=0.1)


# -- faces where the release needs them ----------------------------------------------------------

def test_face_auto_picks_per_layout(raw_root, tiny_root, tmp_path):
    auto = Preprocessing(face="auto")
    assert all(auto.wants_face(s) for s in read_casme2(raw_root))  # CASME2_RAW_selected: full frames
    assert not any(auto.wants_face(s) for s in read_casme2(tiny_root))  # Cropped: face crops
    samm = write_samm_like(tmp_path / "SAMM", SyntheticSpec(**{**SMALL, "frame_size": (340, 180)}, layout="samm"))
    assert all(auto.wants_face(s) for s in read_samm(samm))
    from mer_lightning.data.synthetic.writers import write_fer2013_like

    fer = write_fer2013_like(tmp_path / "fer", SyntheticSpec(**SMALL, layout="fer2013"))
    assert not any(auto.wants_face(s) for s in read_fer2013(fer))
    assert not Preprocessing(face="none").wants_face(read_casme2(raw_root)[0])
    assert Preprocessing(face="dlib").wants_face(read_casme2(tiny_root)[0])


def test_face_auto_without_dlib_says_how_to_install(raw_root, monkeypatch):
    import mer_lightning.vision.face as face

    def missing(*_, **__):
        raise MERError("data.face=dlib needs dlib, which is not installed")

    monkeypatch.setattr(face, "FaceAligner", missing)
    samples = read_casme2(raw_root).samples
    with pytest.raises(MERError, match=r"\.\[face\].*data\.face=none"):
        Preprocessing(face="auto").make_aligner(samples)
    assert Preprocessing(face="auto").make_aligner([s.with_(cropped=True) for s in samples]) is None


@needs_dlib
def test_face_auto_crops_raw_frames_and_the_log_says_so(raw_root, tmp_path, caplog):
    from mer_lightning.data.datamodule import MERDataModule

    dm = MERDataModule(root=str(raw_root), reader=read_casme2, name="casme2", classes="all", input="flow", face="auto", image_size=16, flow_size=64,
                          cache_dir=None)
    with caplog.at_level("INFO"):
        dm.load()
    assert dm.cache_report.faces_found == len(dm.table) > 0
    assert "dlib face crop of the onset frame" in caplog.text and "data.face=auto" in caplog.text


# -- every motion input x temporal head trains; the baseline runs the same protocol --------------

@pytest.mark.parametrize("input", ["flow_seq", "diff_seq"])
@pytest.mark.parametrize("head", ["mean", "bilstm", "gru", "transformer"])
def test_temporal_heads_train_on_motion_sequences(train_cfg, input, head):
    from mer_lightning.train import train

    cfg = train_cfg("model=cnn_bilstm", f"model/head={head}", f"data.input={input}", "debug=fast_dev_run")
    train(cfg)
    assert cfg.data.channels == (3 if input == "flow_seq" else 1)


@pytest.mark.parametrize("model", ["timm", "linear", "ststnet", "cnn"])
def test_every_preset_takes_the_default_motion_input(train_cfg, model):
    from mer_lightning.train import train

    extra = ["model.backbone.name=resnet10t"] if model == "timm" else []
    cfg = train_cfg(f"model={model}", "debug=fast_dev_run", *extra)
    assert cfg.data.input == "flow_seq"
    train(cfg)


def test_linear_is_logistic_regression_on_pooled_flow(train_cfg):
    """model=linear: the flow average-pooled to 8x8 (3 x 64 features), standardised, and one linear layer
    fitted by L-BFGS to scikit-learn's LogisticRegression optimum."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mer_lightning.models.factory import ClipShape, build_model

    cfg = train_cfg("model=linear", "data.num_frames=1")
    model = build_model(cfg.model, ClipShape.of(cfg.data, 5))
    assert [tuple(p.shape) for p in model.parameters()] == [(5, 3 * 8 * 8), (5,)]
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 5
    x = torch.rand(60, 1, 3, 32, 32, generator=generator) + 0.05 * y[:, None, None, None, None] * (
        torch.arange(32) < 16).float()
    features = model.features(x)
    torch.testing.assert_close(features, torch.nn.functional.adaptive_avg_pool2d(x[:, 0], 8).flatten(1))
    model.fit_features(features, y)
    sklearn = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000))
    sklearn.fit(features.double().numpy(), y.numpy())
    expected = torch.from_numpy(sklearn.predict_proba(features.double().numpy())).float()
    torch.testing.assert_close(model.predict_features(features), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(model(x).softmax(-1), expected, atol=1e-4, rtol=0)


def test_a_recipe_learns_above_chance_on_the_tiny_realistic_set(train_cfg, tmp_path):
    """A loose floor (chance UF1 = 0.2 over 5 classes), not a timing: motion at face resolution learns."""
    from mer_lightning.train import train

    cfg = train_cfg("model=cnn", "trainer.max_epochs=15", "runner.selection=last", "data.batch_size=8",
                    out=tmp_path / "run")
    train(cfg)
    metrics = json.loads((tmp_path / "run/results.json").read_text())["metrics"]
    assert metrics["protocol/uf1"] >= 0.45, metrics
