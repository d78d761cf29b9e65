"""Every config in conf/ composes, and the defaults make a usable setup."""

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_cfg

CONF = ROOT / "conf"
# every config group, nested ones (model/backbone, model/head) included; hydra/ is Hydra's own
GROUPS = {str(d.relative_to(CONF)): sorted(p.stem for p in d.glob("*.yaml")) for d in CONF.rglob("*")
          if d.is_dir() and not str(d.relative_to(CONF)).startswith(("hydra", "hparams_search"))}
CHOICES = [(group, option) for group, options in sorted(GROUPS.items()) for option in options]


@pytest.mark.parametrize("group,option", CHOICES, ids=[f"{g}={o}" for g, o in CHOICES])
def test_every_config_composes(tmp_path, group, option):
    cfg = compose_cfg("train.yaml", tmp_path, [f"{group}={option}"])
    HydraConfig().set_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert resolved["model"]["_target_"].endswith("MERModule")
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
