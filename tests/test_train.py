"""The real entry point, end to end with tiny settings (through Hydra compose)."""

import json

import pytest
import torch

from mer_lightning.train import train
from tests.conftest import TINY, TINY_HOLDOUT, run_cli


@pytest.mark.parametrize("model", ["cnn", "cnn_bilstm"])
def test_fast_dev_run_each_model(train_cfg, tmp_path, model):
    cfg = train_cfg(f"model={model}", "debug=fast_dev_run")
    results = train(cfg)
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    for key in ("protocol/acc", "protocol/uf1", "protocol/uar"):
        assert 0.0 <= saved["metrics"][key] <= 1.0
        assert saved["metrics"][key] == pytest.approx(results["metrics"][key])
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert (out / "config.yaml").read_text().count("_target_") > 3
    assert (out / "predictions.csv").is_file()


def test_run_writes_report_and_best_checkpoint(train_cfg, tmp_path):
    cfg = train_cfg("debug=limit")
    train(cfg)
    out = tmp_path / "run"
    fold = json.loads((out / "folds/fold_00/fold.json").read_text())
    assert fold["checkpoint"] == "checkpoints/last.ckpt" and (out / "folds/fold_00/checkpoints/last.ckpt").is_file()
    md = (out / "results.md").read_text()
    assert "UF1" in md and "![curves](curves.png)" in md and "![confusion matrix](confusion_matrix.png)" in md
    assert (out / "curves.png").stat().st_size > 5000, "learning curves from the CSV logger's files"
    saved = json.loads((out / "results.json").read_text())
    assert saved["pooled"]["n"] == 20  # 2 held-out subjects x 10 clips


def test_resume_from_checkpoint_continues_epochs(train_cfg, tmp_path):
    first = tmp_path / "first"
    train(train_cfg("debug=limit", "trainer.max_epochs=1", "runner.selection=last", out=first))
    last = first / "folds/fold_00/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    second = tmp_path / "second"
    train(train_cfg("debug=limit", "trainer.max_epochs=3", "runner.selection=last", f"ckpt_path={last}", out=second))
    resumed = torch.load(second / "folds/fold_00/checkpoints/last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2
    logged = (second / "csv/fold_00/metrics.csv").read_text().splitlines()
    epochs = {int(line.split(",")[0]) for line in logged[1:] if line.split(",")[0].isdigit()}
    assert 0 not in epochs and epochs >= {1, 2}, "resumed run must continue after epoch 0, not restart"


def test_same_seed_same_result(train_cfg, tmp_path):
    a = train(train_cfg("debug=limit", out=tmp_path / "a"))
    b = train(train_cfg("debug=limit", out=tmp_path / "b"))
    assert a["metrics"] == b["metrics"]
    pa = (tmp_path / "a/predictions.csv").read_text()
    assert pa == (tmp_path / "b/predictions.csv").read_text()


def test_eval_reproduces_test_metrics(train_cfg, tmp_path, tiny_root):
    results = train(train_cfg("debug=limit"))
    ckpt = tmp_path / "run/folds/fold_00" / json.loads((tmp_path / "run/folds/fold_00/fold.json").read_text())["checkpoint"]
    out = tmp_path / "eval"
    proc = run_cli("mer_lightning.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={out}", "extras.print_config=false",
                   "trainer.accelerator=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((out / "results.json").read_text())
    for key in ("protocol/acc", "protocol/uf1", "protocol/uar"):
        assert evaluated["metrics"][key] == pytest.approx(results["metrics"][key], abs=1e-9)
    assert (out / "predictions.csv").read_text() == (tmp_path / "run/predictions.csv").read_text()


def test_ddp_sim_two_processes_predict_each_sample_once(tmp_path, tiny_root):
    common = [*TINY, f"data.root={tiny_root}", "debug=limit", "trainer.max_epochs=1"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert run_cli("mer_lightning.train", *common, f"hydra.run.dir={single}").returncode == 0
    proc = run_cli("mer_lightning.train", *common, "trainer=ddp_sim", f"hydra.run.dir={ddp}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stderr + proc.stdout
    ids = lambda out: [line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert len(ids(ddp)) == len(set(ids(ddp))) == json.loads((ddp / "results.json").read_text())["pooled"]["n"]
    assert sorted(ids(ddp)) == sorted(ids(single))


def test_ddp_inside_a_multirun_runs_each_job_once(tmp_path, tiny_root):
    sweep, logs = tmp_path / "sweep", tmp_path / "logs"
    proc = run_cli("mer_lightning.train", "-m", "model=cnn,cnn_bilstm", *TINY, TINY_HOLDOUT, f"data.root={tiny_root}",
                   "trainer=ddp_sim", "debug=limit", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}",
                   f"paths.log_dir={logs}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["0", "1"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    assert not logs.exists(), "no rank re-ran the sweep into a directory of its own"
    for job in ("0", "1"):
        results = json.loads((sweep / job / "results.json").read_text())
        assert results["pooled"]["n"] == 20 and "status" not in results


def test_multirun_over_models_makes_two_runs(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    proc = run_cli("mer_lightning.train", "-m", "model=cnn,cnn_bilstm", *TINY, f"data.root={tiny_root}",
                   "debug=fast_dev_run", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent.name for p in sweep.glob("*/results.json"))
    assert runs == ["0", "1"]
    models = {json.loads((sweep / r / "results.json").read_text())["title"].split("/ ")[-1] for r in runs}
    assert models == {"cnn", "cnn_bilstm"}
