"""Folds in parallel and folds trained apart: the pooled result is the sequential one, checked complete."""

import json

import pytest

from mer_lightning.pool import main as pool_main
from mer_lightning.pool import pool_run
from mer_lightning.train import train
from mer_lightning.utils.errors import MERError

# one torch thread per fold in every mode: identical float sums, identical predictions
FAST = ["protocol=loso", "debug=limit", "trainer.max_epochs=1", "protocol.val_subjects=1", "runner.threads_per_fold=1"]


def test_parallel_and_apart_give_the_sequential_predictions(train_cfg, tmp_path, capsys):
    sequential = train(train_cfg(*FAST, out=tmp_path / "sequential"))
    reference = (tmp_path / "sequential/predictions.csv").read_text()

    parallel = train(train_cfg(*FAST, "runner.parallel=2", out=tmp_path / "parallel"))
    assert (tmp_path / "parallel/predictions.csv").read_text() == reference
    assert parallel["metrics"] == sequential["metrics"]

    # a job array's tasks: folds trained apart into one directory, pooled afterwards
    apart = tmp_path / "apart"
    train(train_cfg(*FAST, "runner.folds=[0,1]", "runner.pool=false", out=apart))
    assert not (apart / "results.json").exists()
    with pytest.raises(SystemExit) as stop:
        pool_main([str(apart)])
    assert stop.value.code == 2
    assert "4 of 6 fold(s) are missing: 2 (test: sub03)" in capsys.readouterr().err
    train(train_cfg(*FAST, "runner.folds=[2,3,4,5]", "runner.pool=false", out=apart))
    pooled = pool_run(apart)
    assert (apart / "predictions.csv").read_text() == reference
    assert pooled["metrics"] == sequential["metrics"] and pooled["complete"]

    # a fold of another configuration is never pooled with the others
    meta = apart / "folds/fold_03/fold.json"
    record = json.loads(meta.read_text())
    record["fingerprint"]["model.optimizer.lr"] = 0.5
    meta.write_text(json.dumps(record))
    with pytest.raises(MERError, match=r"fold 3 was made with another configuration.*model.optimizer.lr"):
        pool_run(apart)


def test_folds_spread_over_gpus_k_at_a_time(train_cfg, monkeypatch):
    import torch

    from mer_lightning.runner.parallel import fold_threads, gpu_slots

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert gpu_slots(train_cfg("trainer=gpu", "trainer.accelerator=gpu", "runner.folds_per_gpu=3")) == [0, 0, 0, 1, 1, 1]
    assert gpu_slots(train_cfg("trainer=cpu")) is None
    assert fold_threads(train_cfg("runner.threads_per_fold=2"), 4) == 2
