"""W&B dashboards: groups and names per protocol run and per sweep job, tags that never fail, a flat
config, curves against epochs, a summary run that holds the answer, and a quiet console."""

import re

import pytest

from mer_lightning.evaluation.dashboard import MAX_TAG, short_form, shorten
from mer_lightning.train import train
from tests.conftest import TINY, run_cli
from tests.fake_wandb import read

FAKE = ["logger=wandb", "logger.wandb._target_=tests.fake_wandb.WandbLogger"]
LOSO2 = ["protocol=loso", "runner.folds=[0,1]", "debug=limit", "trainer.max_epochs=2", "protocol.val_subjects=1"]


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    path = tmp_path / "wandb_calls.jsonl"
    monkeypatch.setenv("FAKE_WANDB_LOG", str(path))
    return path


def test_one_group_per_protocol_run_with_fold_and_summary_runs(train_cfg, tmp_path, recorded):
    out = tmp_path / "run"
    train(train_cfg(*LOSO2, *FAKE, out=out))
    calls = read(recorded)
    inits = [c for c in calls if c["event"] == "init"]
    assert [c["job_type"] for c in inits] == ["select", "fold", "select", "fold", "summary"]
    assert {c["group"] for c in inits} == {f"train/{out.name}"}, "one group: this run directory"
    assert [c["name"] for c in inits] == ["synthetic/cnn_bilstm/fold_00_select", "synthetic/cnn_bilstm/fold_00",
                                          "synthetic/cnn_bilstm/fold_01_select", "synthetic/cnn_bilstm/fold_01",
                                          "synthetic/cnn_bilstm/summary"]
    tags = inits[0]["tags"]
    assert {"data=synthetic", "model=cnn_bilstm", "protocol=loso", "model/head=bilstm"} <= set(tags)
    assert not any(t.startswith(("logger", "paths", "trainer", "hydra")) for t in tags)
    # a flat config: what a dashboard filters on, with the fold on fold runs; no _target_, paths, loggers
    configs = {c["run"]: c["params"] for c in calls if c["event"] == "config"}
    fold0 = configs["synthetic/cnn_bilstm/fold_00"]
    assert fold0["fold"] == 0 and fold0["test_subjects"] == "sub01" and fold0["model"] == "cnn_bilstm"
    assert {"data", "input", "image_size", "protocol", "selection", "seed", "backbone", "head"} <= set(fold0)
    assert all(not isinstance(v, dict) and "_target_" not in str(k) for k, v in fold0.items())
    assert "fold" not in configs["synthetic/cnn_bilstm/summary"]
    # curves against epochs, val/uf1 summarised as its maximum
    defined = [c for c in calls if c["event"] == "define_metric" and c["run"] == "synthetic/cnn_bilstm/fold_00"]
    assert {(c["name"], c.get("step_metric")) for c in defined} >= {("train/*", "epoch"), ("val/*", "epoch")}
    assert any(c["name"] == "val/uf1" and c.get("summary") == "max" for c in defined)
    # the summary run holds the answer in run.summary, not in history; tables and the confusion plot
    summary = [c for c in calls if c["event"] == "summary"][0]["values"]
    assert {"protocol/uf1", "protocol/uar", "protocol/acc", "protocol/val_uf1", "reference/uf1",
            "vs_reference/uf1"} <= set(summary)
    assert not [c for c in calls if c["event"] == "metrics" and c["run"].endswith("summary")]
    media = [c for c in calls if c["event"] == "log" and c["run"].endswith("summary")][0]
    assert media["types"]["folds"] == "Table" and media["types"]["predictions"] == "Table"
    assert media["types"]["confusion_matrix"] in ("CustomChart", "Visualize", "PlotTable")
    assert {"confusion_matrix_png", "curves_png"} <= set(media["keys"])


def test_user_settings_win_and_pool_sends_the_summary(train_cfg, tmp_path, recorded):
    out = tmp_path / "run"
    train(train_cfg(*LOSO2, *FAKE, "logger.wandb.group=my-group", "logger.wandb.name=mine",
                    "logger.wandb.job_type=custom", out=out))
    inits = [c for c in read(recorded) if c["event"] == "init"]
    assert {c["group"] for c in inits} == {"my-group"} and {c["job_type"] for c in inits} == {"custom"}
    assert inits[1]["name"] == "mine/fold_00"


def test_a_sweep_with_long_overrides_never_fails_on_a_tag(tmp_path, tiny_root, monkeypatch):
    """The real WandbLogger, offline: a data.root of over 90 characters and a user tag of 90 never make
    W&B refuse a tag (paths are never tags; long tags are shortened)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    far = tmp_path / ("a_real_path_to_the_dataset_" * 3)
    far.symlink_to(tiny_root)
    assert len(f"data.root={far}") > 90
    sweep = tmp_path / "sweep"
    proc = run_cli("mer_lightning.train", "-m", "model=linear,cnn", *TINY, f"data.root={far}", "protocol=loso",
                   "runner.folds=[0]", "trainer.max_epochs=1", "debug=limit", "logger=wandb", f"tags=[{'x' * 90}]",
                   f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["0", "1"]
    assert len(list(sweep.glob("*/wandb/offline-run-*"))) == 2 * (2 + 1)  # per job: select, fold, summary


def test_sweep_names_and_groups_with_the_recorder(tmp_path, tiny_root, recorded):
    sweep = tmp_path / "sweep"
    proc = run_cli("mer_lightning.train", "-m", "model=linear,cnn", *TINY, f"data.root={tiny_root}", "protocol=loso",
                   "runner.folds=[0]", "trainer.max_epochs=1", "debug=limit", *FAKE, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    inits = [c for c in read(recorded) if c["event"] == "init"]
    by_job = {}
    for c in inits:
        by_job.setdefault(c["group"], []).append(c)
    assert sorted(by_job) == [f"train/{sweep.name}/0", f"train/{sweep.name}/1"], "one group per job"
    names = [c["name"] for c in inits]
    assert len(names) == len(set(names)), "two jobs never share a name"
    assert any(n.startswith("#0 model=linear") for n in names) and any(n.startswith("#1 model=cnn") for n in names)
    summaries = [c for c in inits if c["job_type"] == "summary"]
    assert all(f"sweep={sweep.name}" in c["tags"] for c in summaries), "one filter away: the sweep's tag"
    assert all(len(t) <= MAX_TAG for c in inits for t in c["tags"])


def test_tags_and_names_are_shortened_not_refused():
    assert shorten("a" * 64) == "a" * 64
    long = shorten("data.root=" + "/very/long/path" * 10)
    assert len(long) == MAX_TAG and long != shorten("data.root=" + "/very/long/path" * 11)
    assert short_form(["hydra.run.dir=/x", "paths.log_dir=/y", "logger=wandb", "trainer.max_epochs=3",
                       "model.optimizer.lr=0.01", "model=cnn", "data.root=/data"]) == "model=cnn lr=0.01"


def test_log_model_offline_is_one_line(train_cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "offline")
    import logging

    caplog.set_level(logging.INFO)
    train(train_cfg(*LOSO2, "runner.folds=[0]", "logger=wandb", "logger.wandb.log_model=true", out=tmp_path / "run"))
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("mer_lightning")]
    said = [m for m in ours if "logger.wandb.log_model=true" in m]
    assert len(said) == 1 and "offline run cannot" in said[0]
    modes = [m for m in ours if m.startswith("W&B: WANDB_MODE")]
    assert modes == [f"W&B: WANDB_MODE=offline: runs are written to {tmp_path / 'run'}/wandb; upload later with "
                     f"`wandb sync {tmp_path / 'run'}/wandb/offline-run-*`"], "the mode said once, and right"


def test_checkpoints_are_artifacts_online(train_cfg, tmp_path, recorded, monkeypatch):
    import tests.fake_wandb as fake

    monkeypatch.setattr(fake._Settings, "mode", "online")
    monkeypatch.setattr(fake._Settings, "_offline", False)
    train(train_cfg(*LOSO2, *FAKE, "logger.wandb.log_model=true", out=tmp_path / "run"))
    artifacts = [c for c in read(recorded) if c["event"] == "artifact"]
    assert [a["metadata"]["fold"] for a in artifacts] == [0, 1]
    assert artifacts[0]["aliases"] == ["selected", "fold_00"] and artifacts[0]["metadata"]["test_subjects"] == ["sub01"]


def test_the_console_of_a_default_run_says_each_line_once(tmp_path, tiny_root):
    proc = run_cli("mer_lightning.train", *TINY, f"data.root={tiny_root}", "protocol=loso", "runner.folds=[0,1]",
                   "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [re.sub(r"^\[[^]]*\]\[[^]]*\]\[\w+\] - ", "", line).strip()
            for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    lightning = [line for line in said if "GPU available" in line or "TPU available" in line]
    assert len(lightning) == 2, lightning
    assert not [line for line in said if "litlogger" in line or "_pytree" in line or "was configured so" in line]


def test_eval_says_no_irrelevant_warnings(train_cfg, tmp_path):
    import json

    train(train_cfg("debug=limit", "trainer.max_epochs=1", out=tmp_path / "run"))
    fold = tmp_path / "run/folds/fold_00"
    ckpt = fold / json.loads((fold / "fold.json").read_text())["checkpoint"]
    proc = run_cli("mer_lightning.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "UserWarning" not in proc.stderr and "callbacks used to create the checkpoint" not in proc.stderr
    assert "dirpath has changed" not in proc.stderr


def test_help_hides_the_shared_base_configs():
    proc = run_cli("mer_lightning.train", "--help")
    groups = proc.stdout.split("== Config ==")[0]
    assert proc.returncode == 0 and "\ndata: 4dme, cas2, casme" in groups
    assert not re.search(r"(?<![a-z])_(base|data|protocol)\b", groups), groups
