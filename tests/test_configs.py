"""Every config in conf/ composes, and the defaults make a usable setup."""

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import instantiate_strict
from tests.conftest import ROOT, compose_cfg

CONF = ROOT / "conf"
# every config group, nested ones (model/backbone, model/head) included; hydra/ is Hydra's own. Not
# choices: model/data and model/trainer (what a model sets in
# the data or the trainer, through its own defaults: test_single_frame_models_set_the_clip_length), nor
# data/report (what data=precomputed sets in the report: tests/test_precomputed.py); spotter/ is
# spot.yaml's (tests/test_spotting.py composes each of its options there)
GROUPS = {str(d.relative_to(CONF)): sorted(p.stem for p in d.glob("*.yaml") if not p.stem.startswith("_"))
          for d in CONF.rglob("*")
          if d.is_dir() and not str(d.relative_to(CONF)).startswith(("hydra", "hparams_search", "model/data", "model/trainer",
                                                                     "spotter"))}
CHOICES = [(group, option) for group, options in sorted(GROUPS.items()) for option in options]


@pytest.mark.parametrize("group,option", CHOICES, ids=[f"{g}={o}" for g, o in CHOICES])
def test_every_config_composes(tmp_path, group, option):
    cfg = compose_cfg("train.yaml", tmp_path, [f"{group}={option}"])
    HydraConfig().set_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert resolved["model"]["_target_"].endswith(("MERModule", "LogisticRegression"))
    assert resolved["data"]["num_frames"] >= 1


def test_nested_model_groups_compose(tmp_path):
    cfg = compose_cfg("train.yaml", tmp_path, ["model=cnn_bilstm", "model/head=mean"])
    assert cfg.model.head._target_.endswith("MeanHead")
    assert cfg.model.backbone._target_.endswith("SmallCNN")


def test_eval_config_composes(tmp_path):
    cfg = compose_cfg("eval.yaml", tmp_path, ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt"


def test_defaults_are_the_quick_start(tmp_path):
    cfg = compose_cfg("train.yaml", tmp_path, [])
    assert cfg.data.name == "synthetic" and cfg.model.name == "cnn_bilstm"
    assert Path(cfg.paths.root_dir) == ROOT


def test_every_dataset_shares_the_base_keys(tmp_path):
    base = OmegaConf.load(CONF / "_data.yaml")
    for name in GROUPS["data"]:
        data = compose_cfg("train.yaml", tmp_path, [f"data={name}"]).data
        assert data.name == name and set(data) == set(base), name
        assert data.reader._partial_ and data.reader._target_.startswith("mer_lightning.data."), name


def test_single_frame_models_set_the_clip_length(tmp_path):
    """The data owns T; model=cnn, linear, ststnet change its default to 1, the command line still wins."""
    for model in ("cnn", "linear", "ststnet"):
        cfg = compose_cfg("train.yaml", tmp_path, [f"model={model}"])
        assert cfg.data.num_frames == 1 and "num_frames" not in cfg.model, model
    for model in ("cnn_bilstm", "timm"):
        assert compose_cfg("train.yaml", tmp_path, [f"model={model}"]).data.num_frames == 8
    for overrides in (["model=cnn", "data.num_frames=4"], ["data.num_frames=4", "model=cnn"]):
        assert compose_cfg("train.yaml", tmp_path, overrides).data.num_frames == 4
    assert compose_cfg("train.yaml", tmp_path, ["data=fer2013", "model=cnn_bilstm"]).data.num_frames == 1


@pytest.mark.parametrize("entry", ["inspect.yaml", "preprocess.yaml"])
def test_data_entry_points_compose_no_model(tmp_path, entry):
    cfg = compose_cfg(entry, tmp_path, ["data=casme2"])
    assert "model" not in cfg and "trainer" not in cfg
    assert cfg.data.num_frames == 8 and OmegaConf.select(cfg, "data.channels") == 3


@pytest.mark.parametrize("override,says", [
    ("+data.imagesize=16", "data.imagesize is not a key of data (MERDataModule); known: root, reader, name"),
    ("+data.reader.layot=samm", "data.reader.layot is not a key of data.reader (read_synthetic); known: layout"),
    ("+data.reader.dedup=false", "data.reader.dedup is not a key of data.reader (read_fer2013); known: dedupe"),
])
def test_a_mistyped_data_key_is_named(tmp_path, override, says):
    extra = ["data=fer2013"] if "dedup" in override else []
    cfg = compose_cfg("train.yaml", tmp_path, [*extra, override])
    with pytest.raises(MERError) as err:
        instantiate_strict(cfg.data, "data")
    assert str(err.value).startswith(says) and "did you mean" in str(err.value)
