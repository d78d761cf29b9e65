"""W&B never blocks: with no API key and no WANDB_MODE it logs offline."""

import json

from mer_lightning.resolvers import wandb_offline
from mer_lightning.train import train


def test_offline_without_key_or_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert wandb_offline() is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_offline() is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline() is True


def test_wandb_logger_run_offline(train_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    cfg = train_cfg("logger=wandb", "debug=limit", "trainer.max_epochs=1", "protocol=loso", "runner.folds=[0,1]",
                    "protocol.val_subjects=1")
    assert cfg.logger.wandb.offline is True
    train(cfg)
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 5  # per fold: its selection pass and its refit (runner.selection=refit); one summary run
    assert json.loads((tmp_path / "run/results.json").read_text())["metrics"]["protocol/uf1"] >= 0
