"""Trust and faults: no silent reuse, no selection on test, one clear line per user error, nothing
finished lost (the README's reliability table, row by row)."""

import json

import pandas as pd
import pytest
from filelock import ReadWriteLock
from sklearn.metrics import f1_score, recall_score

import mer_lightning.models.module as module
from mer_lightning.data.splits import fold_seed
from mer_lightning.evaluation.objective import check_objective
from mer_lightning.train import train
from mer_lightning.utils.errors import MERError, exit_on_user_error
from tests.conftest import TINY, run_cli, sigterm_once

FAST = ["debug=limit", "trainer.max_epochs=1", "protocol.val_subjects=1"]
LOSO2 = ["protocol=loso", "runner.folds=[0,1]", *FAST]


# -- evaluation that can be trusted ----------------------------------------------------------------
def test_resume_refuses_finished_folds_of_another_configuration(train_cfg, tmp_path):
    out = tmp_path / "run"
    train(train_cfg(*LOSO2, out=out))
    before = (out / "folds/fold_00/predictions.csv").read_text()
    for change, key in (("model.optimizer.lr=0.01", "model.optimizer.lr"), ("seed=7", "seed"),
                        ("trainer.max_epochs=2", "trainer.max_epochs"), ("model=cnn", "model.")):
        with pytest.raises(MERError, match=rf"another configuration \(.*{key}.*runner.resume=false"):
            train(train_cfg(*LOSO2, change, out=out))
    assert (out / "folds/fold_00/predictions.csv").read_text() == before, "nothing finished is touched"
    # runner.resume=false: a fresh start; the earlier folders are moved aside, never mixed
    train(train_cfg(*LOSO2, "model.optimizer.lr=0.01", "runner.resume=false", out=out))
    assert len(list((out / "folds").glob("fold_00.replaced-*"))) == 1
    record = json.loads((out / "folds/fold_00/fold.json").read_text())
    assert record["fingerprint"]["model.optimizer.lr"] == 0.01


def test_an_interrupted_fold_resumes_only_with_its_own_configuration(train_cfg, tmp_path):
    out = tmp_path / "run"
    train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, out=out))
    for finished in ("predictions.csv", "val_predictions.csv", "fold.json"):  # as if it was killed mid-fold
        (out / "folds/fold_00" / finished).unlink()
    with pytest.raises(MERError, match=r"last.ckpt was made with another configuration \(model.dropout: 0.0 -> 0.1.*runner.resume=false"):
        train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, "model.dropout=0.1", out=out))


def test_a_checkpoint_is_used_only_for_its_own_fold(train_cfg, tmp_path):
    first = tmp_path / "first"
    train(train_cfg(*LOSO2, out=first))
    fold1 = first / "folds/fold_01/checkpoints/last.ckpt"
    with pytest.raises(MERError, match=r"belongs to fold 1 \(test: sub02\).*runner.folds=\[0\] does not select"):
        train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, f"ckpt_path={fold1}", out=tmp_path / "a"))
    # applied to its own fold only: fold 1 resumes from it (epoch 1 -> 2), fold 0 trains from scratch
    out = tmp_path / "b"
    train(train_cfg(*LOSO2, "trainer.max_epochs=2", "runner.selection=last", f"ckpt_path={fold1}", out=out))
    import torch

    assert torch.load(out / "folds/fold_01/checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    logged = pd.read_csv(out / "csv/fold_00/metrics.csv")
    assert 0 in set(logged.epoch.dropna().astype(int)), "fold 0 started from epoch 0"


def test_train_false_tests_every_fold_with_its_own_checkpoint(train_cfg, tmp_path):
    trained = tmp_path / "trained"
    reference = train(train_cfg(*LOSO2, out=trained))
    tested = train(train_cfg(*LOSO2, "train=false", f"ckpt_path={trained}", out=tmp_path / "tested"))
    assert tested["metrics"] == reference["metrics"], "each fold's own best checkpoint gives the same predictions"
    assert all("train=false" in f["selection"] and f"fold_0{f['index']}" in f["selection"] for f in tested["folds"])
    with pytest.raises(MERError, match="train=false tests saved models"):
        train(train_cfg(*LOSO2, "train=false", out=tmp_path / "none"))


def test_validation_is_pooled_and_is_the_default_objective(train_cfg, tmp_path):
    out = tmp_path / "run"
    results = train(train_cfg("protocol=loso", "runner.folds=[0,1,2]", *FAST, out=out))
    val = pd.concat(pd.read_csv(out / f"folds/fold_0{i}/val_predictions.csv") for i in range(3))
    test = pd.read_csv(out / "predictions.csv")
    for fold in range(3):
        assert not set(val[val.fold == fold].subject) & set(test[test.fold == fold].subject), "val is never test"
    m = results["metrics"]
    assert m["protocol/val_uf1"] == pytest.approx(f1_score(val.y_true, val.y_pred, average="macro"), abs=1e-6)
    assert m["protocol/val_uar"] == pytest.approx(recall_score(val.y_true, val.y_pred, average="macro"), abs=1e-6)
    assert results["objective"] == {"metric": "protocol/val_uf1", "value": m["protocol/val_uf1"], "on": "validation",
                                    "optimistic": False}


def test_a_sweep_on_a_test_figure_is_refused_unless_allowed(train_cfg, tmp_path):
    with pytest.raises(MERError, match="selects on the test subjects"):
        check_objective(train_cfg("optimized_metric=protocol/uf1"), sweep=True)
    with pytest.raises(MERError, match="not a figure the run reports"):
        check_objective(train_cfg("optimized_metric=val/uf1"), sweep=False)
    check_objective(train_cfg("optimized_metric=protocol/uf1", "allow_test_selection=true"), sweep=True)
    out = tmp_path / "allowed"
    train(train_cfg(*FAST, "optimized_metric=protocol/uf1", "allow_test_selection=true", out=out))
    assert (out / "results.md").read_text().startswith("> **Optimistic figures")
    proc = run_cli("mer_lightning.train", "-m", "seed=1,2", "optimized_metric=protocol/uf1",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2 and "error: optimized_metric=protocol/uf1 is a test figure" in proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "sweep").glob("*/results.json"))


def test_debug_runs_are_labelled_and_every_test_clip_is_checked(train_cfg, tmp_path, monkeypatch):
    out = tmp_path / "smoke"
    results = train(train_cfg("debug=fast_dev_run", out=out))
    assert not results["complete"] and "trainer.fast_dev_run=True" in results["not_a_protocol_result"][0]
    assert (out / "results.md").read_text().startswith("> **Not a protocol result**")
    partial = train(train_cfg("protocol=loso", "runner.folds=[0]", *FAST, out=tmp_path / "partial"))
    assert partial["not_a_protocol_result"] == ["runner.folds=[0]: 1 of 6 folds"]
    # a model that loses a test clip on the way: refused, never reported
    real = module.MERModule._gather_unique
    monkeypatch.setattr(module.MERModule, "_gather_unique", lambda self, local: {
        k: v[1:] for k, v in real(self, local).items()})
    with pytest.raises(MERError, match=r"do not cover its test clips exactly once \(1 missing"):
        train(train_cfg(*FAST, out=tmp_path / "lost"))
    assert not (tmp_path / "lost/results.json").exists()


def test_fold_seeds_are_independent_streams():
    seeds = {fold_seed(s, f) for s in range(20) for f in range(20)}
    assert len(seeds) == 400, "fold k+1 of seed s is not fold k of seed s+1"
    assert fold_seed(1, 0) == fold_seed(1, 0)


# -- one clear line per user error -----------------------------------------------------------------
@pytest.mark.parametrize("override, says", [
    ("model.loss=bogus", "model.loss=bogus: choose one of cross_entropy, focal"),
    ("data.face=bogus", "unknown data.face=bogus"),
    ("data.classes=[happiness]", "data.classes=['happiness'] gives 1 class(es)"),
    ("seed=null", "seed=None: give a non-negative integer"),
    ("protocol.val_subjects=two", "protocol.val_subjects=two: give a fraction"),
    ("protocol.test_subjects=[sub1O]", "protocol.test_subjects: ['sub1O'] not among this dataset's subjects"),
    ("model.backbone.name=resnet9000", "is not a timm model"),
])
def test_a_bad_input_is_one_line_and_exit_2(train_cfg, tmp_path, capsys, override, says):
    extra = ["model=timm", "data.image_size=32"] if "backbone.name" in override else []
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(train)(train_cfg(*extra, *FAST, override, out=tmp_path / "run"))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err, err
    assert "rerun the same command" not in err


def test_bad_input_on_the_command_line_has_no_traceback(tmp_path, tiny_root):
    proc = run_cli("mer_lightning.train", *TINY, f"data.root={tiny_root}", "model.loss=bogus",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "InstantiationException" not in proc.stderr
    assert "error: model.loss=bogus: choose one of cross_entropy, focal" in proc.stderr


# -- faults ----------------------------------------------------------------------------------------
def test_a_second_run_in_the_same_directory_is_refused(train_cfg, tmp_path):
    out = tmp_path / "run"
    cfg = train_cfg(*FAST, out=out)
    held = ReadWriteLock(out / ".mer.lock", is_singleton=False)  # another run holds the run directory
    held.acquire_write(timeout=0, blocking=False)
    (out / ".mer.lock.holder").write_text("pid 12345 on elsewhere")
    try:
        with pytest.raises(MERError, match=r"another run is using .*pid 12345.*hydra.run.dir"):
            train(cfg)
        with pytest.raises(MERError, match=r"another run is using"):  # a job array's fold job too
            train(train_cfg(*FAST, "runner.pool=false", out=out))
    finally:
        held.release()
        held.close()
    assert not (out / "folds").exists()
    train(cfg)  # released: the run goes ahead
    assert (out / "results.json").is_file()


def test_sigterm_in_a_sweep_records_the_job_as_preempted(tmp_path, tiny_root):
    import sys

    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "mer_lightning.train", "-m", *TINY, f"data.root={tiny_root}", "seed=1,2",
               "trainer.max_epochs=40", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
               f"hydra.sweep.dir={sweep}"]
    stopped = sigterm_once(command, ready=sweep / "0/folds/fold_00/checkpoints/last.ckpt")
    err = stopped.stderr
    assert stopped.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM in fold 0" in err and "Traceback" not in err
    job = json.loads((sweep / "0/results.json").read_text())
    assert job["status"] == "preempted" and "last.ckpt" in job["error"]
    report = pd.read_csv(sweep / "sweep.csv")
    assert list(report.status) == ["preempted"], "the sweep stops; its report says why"
    assert "preempted: stopped by SIGTERM" in (sweep / "sweep.md").read_text()


def test_a_search_whose_every_trial_fails_says_so(tmp_path, tiny_root):
    sweep = tmp_path / "optuna"
    proc = run_cli("mer_lightning.train", "hparams_search=optuna", *TINY, f"data.root={tiny_root}", "debug=limit",
                   "hydra.sweeper.n_trials=2", "model.loss=choice(bogus,hinge)", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: every trial of the search failed" in proc.stderr and "Traceback" not in proc.stderr
    assert list(pd.read_csv(sweep / "sweep.csv").status) == ["failed", "failed"]


def test_sigterm_during_validation_then_one_rerun_finishes(train_cfg, tmp_path, monkeypatch):
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import mer_lightning.runner.fold as fold_module

    class SigtermInValidation(pl.Callback):
        def on_validation_batch_start(self, trainer, *args, **kwargs):
            if trainer.current_epoch == 1 and not trainer.sanity_checking:
                raise SIGTERMException()  # what Lightning raises at a batch boundary after SIGTERM

    real = fold_module.instantiate_callbacks
    monkeypatch.setattr(fold_module, "instantiate_callbacks", lambda *a, **k: [*real(*a, **k), SigtermInValidation()])
    out = tmp_path / "run"
    overrides = ["protocol=loso", "runner.folds=[0]", "debug=limit", "trainer.max_epochs=3", "protocol.val_subjects=1"]
    with pytest.raises(SystemExit) as stop:
        train(train_cfg(*overrides, out=out))
    # refit: the SIGTERM came in the selection pass, whose last.ckpt the rerun resumes from
    assert stop.value.code == 143 and (out / "folds/fold_00/selection/split_0/checkpoints/last.ckpt").is_file()
    monkeypatch.setattr(fold_module, "instantiate_callbacks", real)
    results = train(train_cfg(*overrides, out=out))  # the first rerun finishes
    assert results["folds"][0]["metrics"]["n"] == 10
