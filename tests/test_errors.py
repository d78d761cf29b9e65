"""Bad input gives one clear line, not a traceback wall."""

import os

import pytest

from tests.conftest import TINY, run_cli


def _assert_clean_error(proc, *needles):
    err = proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in err, err[-2000:]


def test_unknown_model_choice(tmp_path):
    proc = run_cli("mer_lightning.train", "model=resnet9000", f"hydra.run.dir={tmp_path}")
    _assert_clean_error(proc, "model/resnet9000", "cnn_bilstm")


def test_unknown_data_choice(tmp_path):
    proc = run_cli("mer_lightning.train", "data=nosuchdata", f"hydra.run.dir={tmp_path}")
    _assert_clean_error(proc, "data/nosuchdata", "synthetic")


def test_missing_checkpoint(tmp_path, tiny_root):
    proc = run_cli("mer_lightning.train", *TINY, f"data.root={tiny_root}", "ckpt_path=/no/such.ckpt",
                   f"hydra.run.dir={tmp_path}")
    _assert_clean_error(proc, "error: ckpt_path=/no/such.ckpt does not exist")


def test_eval_missing_checkpoint(tmp_path):
    proc = run_cli("mer_lightning.eval", "ckpt_path=/no/such.ckpt", f"hydra.run.dir={tmp_path}")
    _assert_clean_error(proc, "error: ckpt_path=/no/such.ckpt does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_dir_not_writable_as_user(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = run_cli("mer_lightning.train", f"hydra.run.dir={locked / 'run'}")
    _assert_clean_error(proc, "not writable")


def test_output_dir_not_writable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = run_cli("mer_lightning.train", f"hydra.run.dir={blocker / 'run'}")
    _assert_clean_error(proc, str(blocker / "run"))
