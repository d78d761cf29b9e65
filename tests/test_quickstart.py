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


def test_console_scripts_work_from_any_directory(tmp_path, tiny_root):
    """The configs ship inside the package: `mer-train` / `mer-eval` find them from a temporary directory."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import TINY

    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    out = tmp_path / "run"
    train = subprocess.run([str(bin_dir / "mer-train"), *TINY, f"data.root={tiny_root}", "debug=fast_dev_run",
                            f"hydra.run.dir={out}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    said = train.stdout + train.stderr
    assert "Results:" in said and str(out) in said and "Not a protocol result" in said.replace("NOT", "Not")
    assert "CONFIG" not in train.stdout, "the config tree stays in config_tree.log unless extras.print_config=true"
    assert (out / "config_tree.log").is_file()
    evaluate = subprocess.run([str(bin_dir / "mer-eval")], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
    assert evaluate.returncode == 2 and "error: eval tests one saved checkpoint: give ckpt_path=" in evaluate.stderr
    assert "Traceback" not in evaluate.stderr
