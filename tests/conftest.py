"""Shared fixtures: a tiny synthetic dataset and composed configs for the real entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_CACHE_DIR", str(ROOT / ".wandb_cache"))
os.environ.setdefault("WANDB_SILENT", "true")

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from mer_lightning.resolvers import register_resolvers  # noqa: E402
from mer_lightning.runner.folds import drop_moved_keys  # noqa: E402

register_resolvers()

try:
    import dlib  # noqa: F401

    HAVE_DLIB = True
except ImportError:
    HAVE_DLIB = False
# tests of face detection: skipped (saying why) when the [face] extra is not installed
needs_dlib = pytest.mark.skipif(not HAVE_DLIB, reason='dlib is not installed: pip install -e ".[face]"')

# the tiny realistic variant: 6 subjects x 5 classes x 2 clips of 6-9 frames, written as CASME II's
# Cropped release (face crops, so data.face=auto needs no face detection) from 320x240 frames
TINY_SPEC = {"subjects": 6, "clips_per_class": 2, "min_frames": 6, "max_frames": 9, "frame_size": (320, 240),
             "cropped": True}
TINY = ["data.reader.subjects=6", "data.reader.clips_per_class=2", "data.reader.min_frames=6",
        "data.reader.max_frames=9", "data.reader.frame_size=[320,240]", "data.reader.cropped=true",
        "data.image_size=32", "data.num_frames=4", "extras.print_config=false", "trainer.accelerator=cpu",
        "protocol.val_subjects=1", "data.batch_size=4"]
# holdout (the default protocol) on the tiny data tests 2 of its 6 subjects (its 0.2 would test one);
# not part of TINY, since another protocol refuses a key it does not take (`train_cfg` adds it for holdout)
TINY_HOLDOUT = "protocol.test_subjects=2"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The tiny synthetic dataset, generated once per test session."""
    from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic

    root = tmp_path_factory.mktemp("data") / "synthetic"
    return ensure_synthetic(root, SyntheticSpec(**TINY_SPEC))


def compose_cfg(config_name: str, out_dir: Path, overrides: list[str]) -> DictConfig:
    """Compose a config as `python -m mer_lightning.<entry>` would, with the run dir at out_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name=config_name, return_hydra_config=True, overrides=overrides)
    drop_moved_keys(cfg)  # as every entry point does first: `protocol.<runner key>` placeholders go
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def train_cfg(tmp_path, tiny_root):
    """A factory: compose `train.yaml` on the tiny dataset with extra overrides."""

    def make(*overrides: str, out: Path | None = None) -> DictConfig:
        cfg = compose_cfg("train.yaml", out or tmp_path / "run", [*TINY, f"data.root={tiny_root}", *overrides])
        if cfg.protocol.name == "holdout" and not any("protocol.test_subjects" in o for o in overrides):
            cfg.protocol.test_subjects = int(TINY_HOLDOUT.split("=")[1])
        return cfg

    return make


def run_cli(module: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run an entry point the way a user does, in a fresh interpreter."""
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def sigterm_once(command: list[str], ready: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """Start `command` (an entry point, as a user would), send SIGTERM once `ready` exists (a checkpoint:
    training is under way), and return how it ended (return code and stderr)."""
    import signal
    import time

    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready.exists():
        assert proc.poll() is None and time.time() < deadline, f"{ready} never appeared"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(command, proc.returncode, "", err)

