"""The quick-start figure: the default run reaches test UF1 >= 0.8 on the synthetic data."""

import json

import pytest

from tests.conftest import compose_cfg


@pytest.mark.slow
def test_default_run_learns_the_synthetic_motion(tmp_path):
    from mer_lightning.train import train

    cfg = compose_cfg("train.yaml", tmp_path / "run", ["extras.print_config=false", "trainer.accelerator=cpu",
                                                       f"paths.data_dir={tmp_path / 'data'}"])
    train(cfg)
    results = json.loads((tmp_path / "run/results.json").read_text())
    assert results["metrics"]["protocol/uf1"] >= 0.8, results["metrics"]
