"""Multiruns: one report over the jobs, failures recorded without stopping the sweep, launchers compose."""

import json
import re

import pandas as pd
import pytest

from mer_lightning.sweep_report import main as report_main
from tests.conftest import TINY, compose_cfg, run_cli


def test_failing_job_does_not_stop_the_sweep_and_report_lists_it(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    # the second job asks for a fold that does not exist: it fails, the others go on
    proc = run_cli("mer_lightning.train", "-m", *TINY, f"data.root={tiny_root}", "debug=limit",
                   "trainer.max_epochs=1", "protocol=loso", "protocol.val_subjects=1",
                   "runner.folds=[0],[99],[1]", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: 1 of 3 job(s) failed" in proc.stderr, "the exit status and one line say so"
    table = pd.read_csv(sweep / "sweep.csv")
    assert sorted(table.job) == [0, 1, 2]
    failed = table[table.status == "failed"]
    assert list(failed.job) == [1] and "no fold(s) [99]" in failed.error.iloc[0]
    ok = table[table.status == "ok"]
    assert list(ok.objective_value) == sorted(ok.objective_value, reverse=True), "best objective first"
    assert set(ok.objective) == {"protocol/val_uf1"} and ok.uf1.notna().all(), "test figures shown beside it"
    assert table.status.iloc[-1] == "failed", "failed jobs come last"
    md = (sweep / "sweep.md").read_text()
    assert "## 1 job(s) failed or stopped (not ranked)" in md and "| 3 |" not in md, "2 ranked, 1 apart"
    assert (sweep / "sweep.md").read_text().count("| ") > 10 and (sweep / "sweep.png").stat().st_size > 1000
    for job in (0, 2):
        results = json.loads((sweep / str(job) / "results.json").read_text())
        assert results["elapsed_s"] > 0


def test_report_command_on_a_sweep_dir(tmp_path, tiny_root, capsys):
    sweep = tmp_path / "sweep"
    proc = run_cli("mer_lightning.train", "-m", "model=cnn,cnn_bilstm", *TINY, f"data.root={tiny_root}",
                   "debug=fast_dev_run", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep / "sweep.csv").unlink()
    report_main([str(sweep)])
    table = pd.read_csv(sweep / "sweep.csv")
    assert set(table.overrides.str.extract(r"model=(\w+)")[0]) == {"cnn", "cnn_bilstm"}
    assert "wrote" in capsys.readouterr().out
    # the classical reference beside every job, with the difference, and how each job's models were chosen
    assert table.reference_uf1.notna().all() and (table.selection == "refit").all()
    assert (table.uf1 - table.reference_uf1 - table.vs_reference_uf1).abs().max() < 1e-9
    assert "| reference UF1 | vs reference |" in (sweep / "sweep.md").read_text()


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local", "submitit_slurm"])
def test_launchers_compose(tmp_path, launcher):
    cfg = compose_cfg("train.yaml", tmp_path, [f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.rsplit(".", 1)[-1] in {
        "BasicLauncher", "JoblibLauncher", "LocalLauncher", "SlurmLauncher"}


def test_optuna_search_composes(tmp_path):
    cfg = compose_cfg("train.yaml", tmp_path, ["hparams_search=optuna"])
    assert cfg.optimized_metric == "protocol/val_uf1"
    assert cfg.hydra.sweeper.direction == "maximize" and "model.optimizer.lr" in cfg.hydra.sweeper.params


def test_optuna_optimises_validation_and_survives_a_failed_trial(tmp_path, tiny_root):
    import yaml

    sweep = tmp_path / "optuna"
    # one value of the search space fails (model.loss=bogus): told to Optuna as failed, the search goes on
    proc = run_cli("mer_lightning.train", "hparams_search=optuna", *TINY, f"data.root={tiny_root}",
                   "debug=limit", "trainer.max_epochs=1", "hydra.sweeper.n_trials=4",
                   "hydra.sweeper.sampler.n_startup_trials=4", "hydra.sweeper.sampler.seed=3",
                   "model.loss=choice(cross_entropy,bogus)", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]  # the search ran to the end; a trial failed: exit 1
    assert "job(s) failed" in proc.stderr and "Traceback" not in proc.stderr
    table = pd.read_csv(sweep / "sweep.csv")
    assert len(table) == 4
    failed, ok = table[table.status == "failed"], table[table.status == "ok"]
    assert len(failed) >= 1 and len(ok) >= 1, table[["overrides", "status"]]
    assert failed.overrides.str.contains("model.loss=bogus").all() and failed.error.str.contains("model.loss").all()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [json.loads((sweep / str(j) / "results.json").read_text())["metrics"]["protocol/val_uf1"] for j in ok.job]
    assert best["best_value"] == pytest.approx(max(values)), "the objective is pooled validation UF1"
    assert "Ranked by the objective (protocol/val_uf1" in (sweep / "sweep.md").read_text()


def test_report_on_a_single_run_says_what_it_expected(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        report_main([str(tmp_path)])
    assert stop.value.code == 2 and "is a single run" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        report_main([str(empty)])
    assert "no job folders" in capsys.readouterr().err


def test_sweep_table_stays_a_table_whatever_the_error(tmp_path):
    """A failed job's multi-line error (with `|` in it) is one escaped line of sweep.md; no FutureWarning."""
    import json
    import warnings

    from mer_lightning.sweep_report import write_sweep_report

    sweep = tmp_path / "sweep"
    for job, results in (("0", {"status": "failed", "error": "ValueError: bad | value\nTraceback (most recent...)\n  x"}),
                         ("1", {"metrics": {"protocol/uf1": 0.5, "protocol/val_uf1": 0.6}, "folds": [{}],
                                "objective": {"metric": "protocol/val_uf1", "value": 0.6}})):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- model=m{job}\n")
        (sweep / job / "results.json").write_text(json.dumps(results))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        write_sweep_report(sweep)
    md = (sweep / "sweep.md").read_text()
    failed = [line for line in md.splitlines() if line.startswith("| 0 |")]
    assert failed == ["| 0 | `model=m0` | failed: ValueError: bad \\| value |"]
    for line in md.splitlines():
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) in (4, 14), line
