"""Selection modes (runner.selection: refit / last / val), the converged linear reference and the
reference beside every result: the test subject takes no part in any training, validation or choice."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mer_lightning.data.datamodule import MERDataModule
from mer_lightning.evaluation.objective import check_objective
from mer_lightning.train import train
from mer_lightning.utils.errors import MERError

LOSO = ["protocol=loso", "runner.folds=[0,1]", "trainer.max_epochs=3", "trainer.limit_train_batches=2",
        "protocol.val_subjects=1"]


@pytest.fixture
def seen(monkeypatch):
    """Which subjects every fit trained and validated on, in order: [(train subjects, val subjects), ...]."""
    fits = []
    real_train = MERDataModule.train_dataloader

    def train_loader(self):
        subjects = lambda part: {self.table[i].subject for i in part}  # noqa: E731
        fits.append((subjects(self.fold.train), subjects(self.fold.val), self.fold.test_subjects))
        return real_train(self)

    monkeypatch.setattr(MERDataModule, "train_dataloader", train_loader)
    return fits


def _fold(out, index):
    return json.loads((out / f"folds/fold_{index:02d}/fold.json").read_text())


def test_refit_chooses_on_validation_then_trains_every_training_subject(train_cfg, tmp_path, seen):
    out = tmp_path / "refit"
    results = train(train_cfg(*LOSO, "runner.selection=refit", out=out))
    assert results["selection"] == {"mode": "refit", "inner_folds": None}
    assert len(seen) == 4  # per fold: the selection pass, then the refit
    for k, fold in enumerate(results["folds"]):
        (select_train, select_val, test), (final_train, final_val, _) = seen[2 * k], seen[2 * k + 1]
        assert test == fold["test_subjects"] and not set(test) & (select_train | select_val | final_train)
        assert len(select_val) == 1 and not select_train & select_val
        assert final_train == select_train | select_val and not final_val, "the refit trains every training subject"
        details = _fold(out, fold["index"])["details"]
        choice = json.loads((out / f"folds/fold_{k:02d}/selection/choice.json").read_text())
        best = max(choice["scores"])  # the longest budget of those that score best
        assert details["epochs"] == choice["epochs"] == max(e for e, v in enumerate(choice["scores"]) if v == best) + 1
        last = torch.load(out / f"folds/fold_{k:02d}/checkpoints/last.ckpt", weights_only=True)
        assert last["epoch"] == details["epochs"] - 1 and last["mer"]["stage"] == "final"
        # the objective: the selection pass's validation predictions at the chosen epoch, never a test subject
        val = pd.read_csv(out / f"folds/fold_{k:02d}/val_predictions.csv")
        assert set(val.subject) == select_val
    assert "protocol/val_uf1" in results["metrics"]
    assert "runner.selection=refit" in (out / "results.md").read_text()


def test_refit_with_inner_folds_validates_every_training_subject_once(train_cfg, tmp_path, seen):
    out = tmp_path / "inner"
    results = train(train_cfg(*LOSO, "runner.folds=[0]", "runner.inner_folds=2", out=out))
    selection, (final_train, _, test) = seen[:2], seen[2]
    assert len(seen) == 3 and not set(test) & final_train
    assert set().union(*(v for _, v, _ in selection)) == final_train, "each training subject validated once"
    for train_subjects, val_subjects, _ in selection:
        assert not train_subjects & val_subjects and train_subjects | val_subjects == final_train
    val = pd.read_csv(out / "folds/fold_00/val_predictions.csv")
    assert set(val.subject) == final_train and val.sample_id.is_unique
    assert results["folds"][0]["details"]["splits"] == 2


def test_last_trains_every_training_subject_for_the_fixed_budget(train_cfg, tmp_path, seen):
    out = tmp_path / "last"
    results = train(train_cfg(*LOSO, "runner.selection=last", out=out))
    assert len(seen) == 2
    for (train_subjects, val_subjects, test), fold in zip(seen, results["folds"]):
        assert len(train_subjects) == 5 and not val_subjects and not set(test) & train_subjects
        assert {k: fold["details"][k] for k in ("mode", "epochs")} == {"mode": "last", "epochs": 3}
        assert fold["details"]["curves"]["tested"]["epoch"] == [0, 1, 2] and "val/uf1" not in fold["details"]["curves"]["tested"]
    assert "protocol/val_uf1" not in results["metrics"] and not (out / "folds/fold_00/val_predictions.csv").exists()
    assert torch.load(out / "folds/fold_00/checkpoints/last.ckpt", weights_only=True)["epoch"] == 2


def test_val_tests_the_checkpoint_best_on_validation_subjects(train_cfg, tmp_path, seen):
    out = tmp_path / "val"
    results = train(train_cfg(*LOSO, "runner.selection=val", out=out))
    assert len(seen) == 2
    for (train_subjects, val_subjects, test), fold in zip(seen, results["folds"]):
        assert len(train_subjects) == 4 and len(val_subjects) == 1 and not set(test) & (train_subjects | val_subjects)
        assert fold["checkpoint"] == "checkpoints/best.ckpt" and fold["selection"].startswith("val: best val/uf1")


def test_an_interrupted_selection_pass_resumes(train_cfg, tmp_path, monkeypatch):
    """A crash after the selection pass keeps its predictions: the rerun trains only the refit."""
    import mer_lightning.runner.fold as fold_module

    out = tmp_path / "run"
    overrides = [*LOSO, "runner.folds=[0]"]
    real = fold_module.fit

    def crash_in_refit(*args, stage, **kwargs):
        if stage == "final":
            raise RuntimeError("simulated crash in the refit")
        return real(*args, stage=stage, **kwargs)

    monkeypatch.setattr(fold_module, "fit", crash_in_refit)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(train_cfg(*overrides, out=out))
    assert (out / "folds/fold_00/selection/split_0.json").is_file()
    stages = []
    monkeypatch.setattr(fold_module, "fit", lambda *a, stage, **k: stages.append(stage) or real(*a, stage=stage, **k))
    first = train(train_cfg(*overrides, out=out))
    assert stages == ["final"], "the finished selection pass is not trained again"
    fresh = train(train_cfg(*overrides, out=tmp_path / "fresh"))
    assert first["metrics"] == fresh["metrics"]


@pytest.mark.parametrize("mode", ["refit", "last", "val"])
def test_sweeps_refuse_a_test_objective_in_every_mode(train_cfg, mode):
    cfg = train_cfg(f"runner.selection={mode}", "optimized_metric=protocol/uf1")
    with pytest.raises(MERError, match="is a test figure"):
        check_objective(cfg, sweep=True)
    validation = train_cfg(f"runner.selection={mode}")
    if mode == "last":
        with pytest.raises(MERError, match="runner.selection=last .* no validation figure.*runner.selection=refit"):
            check_objective(validation, sweep=True)
    else:
        check_objective(validation, sweep=True)


def test_an_unknown_mode_and_a_moved_key_are_one_line(train_cfg, tmp_path):
    with pytest.raises(MERError, match="runner.selection=best: choose refit"):
        train(train_cfg(*LOSO, "runner.selection=best", out=tmp_path / "a"))
    from tests.conftest import run_cli

    proc = run_cli("mer_lightning.train", "protocol.parallel=2", f"hydra.run.dir={tmp_path / 'b'}")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "error: protocol.parallel is now runner.parallel (the runner's settings have their own group, "
        "conf/runner/default.yaml): use runner.parallel=2")


def test_linear_equals_scikit_learn_on_the_same_features(train_cfg, tmp_path):
    """model=linear through the runner: each fold's probabilities are scikit-learn's LogisticRegression
    (standardised on the fold's training samples) on the pooled flow of the same cached clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mer_lightning.utils.instantiate import instantiate_strict

    out = tmp_path / "linear"
    cfg = train_cfg("model=linear", "protocol=loso", "runner.folds=[0,1]", "runner.selection=last", out=out)
    results = train(cfg)
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    clips = torch.from_numpy(np.asarray(dm.clips, dtype=np.float32))
    n, t = clips.shape[:2]
    pooled = torch.nn.functional.adaptive_avg_pool2d((clips.flatten(0, 1) - 0.5) / 0.5, 8)
    features = pooled.reshape(n, t, -1).mean(1).double().numpy()  # Pooled per step, then the mean head over time
    predictions = pd.read_csv(out / "predictions.csv")
    ids = [s.id for s in table]
    for fold in results["folds"]:
        test = [i for i, s in enumerate(table) if s.subject in fold["test_subjects"]]
        trained = [i for i in range(len(table)) if i not in test]
        reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000))
        reference.fit(features[trained], table.labels[trained])
        mine = predictions[predictions.fold == fold["index"]].set_index("sample_id").loc[[ids[i] for i in test]]
        probs = mine[[f"p_{c}" for c in results["classes"]]].to_numpy()
        np.testing.assert_allclose(probs, reference.predict_proba(features[test]), atol=2e-4)


def test_every_run_reports_the_reference_beside_the_model(train_cfg, tmp_path):
    out = tmp_path / "run"
    results = train(train_cfg(*LOSO, "report.reference=linear", out=out))
    m = results["metrics"]
    assert m["vs_reference/uf1"] == pytest.approx(m["protocol/uf1"] - m["reference/uf1"])
    reference = pd.read_csv(out / "reference_predictions.csv")
    assert sorted(reference.sample_id) == sorted(pd.read_csv(out / "predictions.csv").sample_id)
    from sklearn.metrics import f1_score

    assert m["reference/uf1"] == pytest.approx(f1_score(reference.y_true, reference.y_pred, average="macro"), abs=1e-6)
    md = (out / "results.md").read_text()
    assert "reference: linear (pooled) | model - reference" in md and "reference_predictions.csv" in md
    # model=linear is its own reference
    alone = train(train_cfg(*LOSO, "model=linear", "report.reference=linear", out=tmp_path / "linear"))
    assert "reference/uf1" not in alone["metrics"]
    none = train(train_cfg(*LOSO, "report.reference=null", out=tmp_path / "none"))
    assert "reference" not in none and not (tmp_path / "none/reference_predictions.csv").exists()


def test_pixels_flow_scaling_keeps_the_amplitude():
    from mer_lightning.data.preprocessing import normalise_flow

    small = np.zeros((1, 3, 4, 4), np.float32)
    small[:, 0, 0, 0], small[:, 2, 0, 0] = 0.5, 0.05
    large = small * 4
    for how in ("maxabs", "minmax"):  # per clip: the two clips look the same
        np.testing.assert_allclose(normalise_flow(small, how), normalise_flow(large, how), atol=1e-6)
    scaled_small, scaled_large = normalise_flow(small, "pixels", 2.0), normalise_flow(large, "pixels", 2.0)
    assert scaled_small[0, 0, 0, 0] == pytest.approx(0.5 + 0.5 / 4) and scaled_large[0, 0, 0, 0] == pytest.approx(1.0)
    assert scaled_small[0, 0, 1, 1] == pytest.approx(0.5), "no motion is 0.5"
    assert scaled_large[0, 2, 0, 0] == pytest.approx(4 * scaled_small[0, 2, 0, 0])


@pytest.mark.parametrize("mode", ["last", "val"])
def test_the_papers_protocol_is_reported_beside_ours_and_changes_nothing(train_cfg, tmp_path, mode):
    """protocol.optimistic=true: each fold's best-test epoch, pooled and labelled; the honest run is the
    same run to the last prediction (the extra test passes draw no random numbers of the training's)."""
    from sklearn.metrics import f1_score

    common = [*LOSO, f"runner.selection={mode}", "report.reference=null"]
    honest = train(train_cfg(*common, out=tmp_path / "honest"))
    both = train(train_cfg(*common, "protocol.optimistic=true", out=tmp_path / "both"))
    assert (tmp_path / "honest/predictions.csv").read_text() == (tmp_path / "both/predictions.csv").read_text()
    assert {k: v for k, v in both["metrics"].items() if not k.startswith("optimistic")} == honest["metrics"]
    m = both["metrics"]
    frames = [pd.read_csv(tmp_path / f"both/folds/fold_{k:02d}/optimistic_predictions.csv") for k in (0, 1)]
    pooled = pd.concat(frames)
    assert m["optimistic/uf1"] == pytest.approx(f1_score(pooled.y_true, pooled.y_pred, average="macro"), abs=1e-6)
    assert m["optimistic_gap/uf1"] == pytest.approx(m["optimistic/uf1"] - m["protocol/uf1"])
    for fold in both["folds"]:
        chosen = fold["details"]["optimistic"]
        scores = chosen["test_uf1_per_epoch"]
        assert len(scores) == 3 and scores[chosen["epoch"]] == max(scores)
    md = (tmp_path / "both/results.md").read_text()
    assert "Optimistic: epoch chosen on the test subject, as in published code; not a result" in md
