"""Train and evaluate a model over a whole protocol: `python -m mer_lightning.train [overrides]`.

    python -m mer_lightning.train                               # synthetic data, cnn_bilstm
    python -m mer_lightning.train model=cnn_bilstm data=samm    # a real dataset, LOSO
    python -m mer_lightning.train -m model=cnn,cnn_bilstm       # a sweep

Returns the metric named by `optimized_metric` (for sweepers; a validation figure by default).
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mer_lightning.evaluation.objective import check_objective
from mer_lightning.resolvers import register_resolvers
from mer_lightning.utils.errors import Preempted, exit_on_user_error, sigterm_stops_run, user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.run_dir import run_lock, start_run

register_resolvers()
log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Run the configured protocol; raises MERError on bad input (tests call this directly)."""
    # torch and Lightning are imported here, once the config composed: a config error is reported at once
    # (and Lightning's console lines go through Hydra's logging)
    from mer_lightning.runner.folds import drop_moved_keys
    from mer_lightning.runner.run import run_protocol

    drop_moved_keys(cfg)
    check_objective(cfg, sweep=is_multirun())
    fold_job = not cfg.runner.get("pool", True)  # a job array's task: its folds only, pooled later
    with run_lock(Path(cfg.paths.output_dir), shared=fold_job), sigterm_stops_run():
        start_run(cfg)
        datamodule = instantiate_strict(cfg.data, "data")
        return run_protocol(cfg, datamodule)


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_sweep_job(cfg: DictConfig) -> float | None:
    """One job of a multirun: a failure is recorded in its results.json and the sweep goes on;
    SIGTERM records the job as preempted, writes the sweep report so far and stops the sweep (143)."""
    from mer_lightning.utils.ddp import end_job_processes
    from mer_lightning.utils.io import write_json

    out_dir = Path(cfg.paths.output_dir)
    try:
        results = train(cfg)
    except Preempted as stop:
        write_json(out_dir / "results.json", {"status": "preempted", "error": str(stop)})
        from mer_lightning.sweep_report import write_sweep_report

        write_sweep_report(HydraConfig.get().sweep.dir)
        print(f"error: {stop}", file=sys.stderr, flush=True)
        raise
    except Exception as err:  # noqa: BLE001 - one failing job must not stop the others
        cause = user_error(err) or err
        log.error("Job failed: %s", cause)
        write_json(out_dir / "results.json",
                   {"status": "failed", "error": f"{type(cause).__name__}: {cause}", "traceback": traceback.format_exc()})
        return math.nan
    finally:
        end_job_processes()
    return objective(cfg, results)


def objective(cfg: DictConfig, results: dict) -> float | None:
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    value = results["metrics"].get(metric)
    return math.nan if value is None else value


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    if is_multirun():
        return run_sweep_job(cfg)
    try:
        results = exit_on_user_error(train)(cfg)
    except Preempted as stop:
        print(f"error: {stop}", file=sys.stderr, flush=True)
        raise
    return objective(cfg, results)


if __name__ == "__main__":
    main()
