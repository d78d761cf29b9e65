"""Leak-free protocols: LOSO / k-fold over the real entry point, pooled metrics, resume, refusals."""

import json

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

import mer_lightning.runner.fold as runner
from mer_lightning.data import splits
from mer_lightning.train import train
from mer_lightning.utils.errors import LeakError, MERError

FAST = ["debug=limit", "trainer.max_epochs=1", "protocol.val_subjects=1"]


def _read(out):
    return json.loads((out / "results.json").read_text()), pd.read_csv(out / "predictions.csv")


def test_loso_tests_every_sample_once_and_pools(train_cfg, tmp_path):
    out = tmp_path / "loso"
    train(train_cfg("protocol=loso", *FAST, out=out))
    results, preds = _read(out)
    assert len(results["folds"]) == 6 and sorted(preds.subject.unique()) == [f"sub0{i}" for i in range(1, 7)]
    assert preds.sample_id.is_unique and len(preds) == 60
    for fold in results["folds"]:
        assert len(fold["test_subjects"]) == 1
        assert set(preds[preds.fold == fold["index"]].subject) == set(fold["test_subjects"])
    # pooled headline figures are scikit-learn's on predictions.csv, to 1e-6
    assert results["metrics"]["protocol/uf1"] == pytest.approx(f1_score(preds.y_true, preds.y_pred, average="macro"), abs=1e-6)
    assert results["metrics"]["protocol/uar"] == pytest.approx(recall_score(preds.y_true, preds.y_pred, average="macro"), abs=1e-6)
    assert results["metrics"]["protocol/acc"] == pytest.approx(accuracy_score(preds.y_true, preds.y_pred), abs=1e-6)
    assert {"fold_mean/uf1", "fold_std/uf1"} <= set(results["metrics"])
    probs = preds[[f"p_{c}" for c in results["classes"]]].to_numpy()
    assert (abs(probs.sum(axis=1) - 1) < 1e-4).all()
    md = (out / "results.md").read_text()
    assert "pooled over folds (headline)" in md and "mean ± std over folds" in md
    assert (out / "confusion_matrix.png").is_file()


def test_subject_kfold_and_fold_subset(train_cfg, tmp_path):
    out = tmp_path / "kfold"
    train(train_cfg("protocol=subject_kfold", "protocol.k=3", "runner.folds=[0,2]", *FAST, out=out))
    results, preds = _read(out)
    assert [f["index"] for f in results["folds"]] == [0, 2]
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["fold_00", "fold_02"]
    assert len(preds) == 40  # two of three folds, two subjects of 10 clips each


def test_unknown_fold_index_is_refused(train_cfg, tmp_path):
    with pytest.raises(MERError, match="no fold"):
        train(train_cfg("protocol=loso", "runner.folds=[42]", *FAST))


def test_crash_keeps_finished_folds_and_rerun_resumes(train_cfg, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    train(train_cfg("protocol=loso", *FAST, out=reference))

    out = tmp_path / "crashed"
    real = runner.train_fold

    def crash_in_fold_2(cfg, dm, fold, *args):
        if fold.index == 2:
            raise RuntimeError("simulated crash")
        return real(cfg, dm, fold, *args)

    monkeypatch.setattr(runner, "train_fold", crash_in_fold_2)
    with pytest.raises(RuntimeError, match=r"fold 2 \(test: sub03\) failed.*2 finished fold\(s\)"):
        train(train_cfg("protocol=loso", *FAST, out=out))
    assert sorted(p.parent.name for p in (out / "folds").glob("*/predictions.csv")) == ["fold_00", "fold_01"]
    before = (out / "folds/fold_00/predictions.csv").stat().st_mtime_ns

    monkeypatch.setattr(runner, "train_fold", real)
    trained = []
    monkeypatch.setattr(runner, "train_fold", lambda cfg, dm, fold, *a: trained.append(fold.index) or real(cfg, dm, fold, *a))
    train(train_cfg("protocol=loso", *FAST, out=out))
    assert trained == [2, 3, 4, 5], "finished folds are skipped"
    assert (out / "folds/fold_00/predictions.csv").stat().st_mtime_ns == before
    assert _read(out)[0]["metrics"] == _read(reference)[0]["metrics"]
    pd.testing.assert_frame_equal(_read(out)[1], _read(reference)[1])


def test_stale_fold_results_are_not_trusted(train_cfg, tmp_path):
    out = tmp_path / "stale"
    train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, out=out))
    preds = out / "folds/fold_00/predictions.csv"
    frame = pd.read_csv(preds)
    frame.loc[0, "sample_id"] = "synthetic/sub09/EP99_01"
    frame.to_csv(preds, index=False)
    with pytest.raises(MERError, match="other samples"):
        train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, out=out))


def test_selecting_on_the_test_fold_is_refused(train_cfg):
    with pytest.raises(MERError, match="never the test fold"):
        train(train_cfg("protocol=loso", *FAST, "callbacks.model_checkpoint.monitor=test/uf1"))


@pytest.mark.parametrize("mode,said", [("val", "has no validation subjects.*runner.selection=last"),
                                       ("refit", "picks the epoch count on validation subjects and this fold has none")])
def test_selecting_without_validation_subjects_is_refused(train_cfg, mode, said):
    with pytest.raises(MERError, match=said):
        train(train_cfg("protocol=loso", "debug=limit", "trainer.max_epochs=1", "protocol.val_subjects=0",
                        f"runner.selection={mode}"))


def test_fixed_epochs_without_validation_runs(train_cfg, tmp_path):
    out = tmp_path / "fixed"
    train(train_cfg("protocol=loso", "runner.folds=[0]", "debug=limit", "trainer.max_epochs=1",
                    "protocol.val_subjects=0", "callbacks=none", "runner.selection=val", out=out))
    results, _ = _read(out)
    assert results["folds"][0]["selection"] == "val: last epoch"


def test_a_forced_leak_stops_the_run(train_cfg, tmp_path, monkeypatch):
    real = splits.loso

    def leaky(table, **kw):
        folds = real(table, **kw)
        folds[0].train.append(folds[0].test[0])
        return folds

    monkeypatch.setitem(splits.PROTOCOLS, "loso", leaky)
    with pytest.raises(LeakError, match="in both train and test"):
        train(train_cfg("protocol=loso", *FAST, out=tmp_path / "leak"))
    assert not (tmp_path / "leak/folds").exists(), "nothing trains once a leak is found"


def test_cross_dataset_needs_both_sources(train_cfg):
    with pytest.raises(MERError, match="source 'casme2' is not in the data"):
        train(train_cfg("protocol=cross_dataset", *FAST))


def test_sigterm_saves_and_the_same_command_resumes(tmp_path, tiny_root):
    import subprocess
    import sys

    from tests.conftest import ROOT, TINY, sigterm_once

    out = tmp_path / "preempted"
    command = [sys.executable, "-m", "mer_lightning.train", *TINY, f"data.root={tiny_root}", "protocol=loso",
               "runner.folds=[0,1]", "runner.selection=val", "protocol.val_subjects=1", "trainer.max_epochs=40",
               "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", f"hydra.run.dir={out}"]
    stopped = sigterm_once(command, ready=out / "folds/fold_01/checkpoints/last.ckpt")
    err = stopped.stderr
    assert stopped.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM in fold 1 (test: sub02)" in err and "checkpoints/last.ckpt" in err
    assert f"hydra.run.dir={out}" in err and "Traceback" not in err
    assert (out / "folds/fold_00/predictions.csv").is_file(), "the finished fold stays on disk"
    assert not (out / "folds/fold_01/predictions.csv").exists() and not (out / "results.json").exists()
    preempted = torch_epoch(out / "folds/fold_01/checkpoints/last.ckpt")

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    said = again.stdout + again.stderr
    assert "already finished, skipped" in said and "Resuming fold 1" in said
    assert torch_epoch(out / "folds/fold_01/checkpoints/last.ckpt") == 39 > preempted
    assert len(pd.read_csv(out / "predictions.csv")) == 20


def torch_epoch(path):
    import torch

    return torch.load(path, weights_only=True)["epoch"]
