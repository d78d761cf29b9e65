"""Train and evaluate a model over a whole protocol: `python -m mer_lightning.train [overrides]`.

    python -m mer_lightning.train                               # synthetic data, cnn_bilstm
    python -m mer_lightning.train model=cnn_bilstm data=samm    # a real dataset, LOSO
    python -m mer_lightning.train -m model=cnn,cnn_bilstm       # a sweep

Returns the metric named by `optimized_metric` (for sweepers).
"""

from __future__ import annotations

import logging
import math
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from mer_lightning.evaluation.protocol import run_protocol
from mer_lightning.evaluation.report import write_json
from mer_lightning.utils.ddp import end_job_processes
from mer_lightning.utils.errors import exit_on_user_error
from mer_lightning.utils.resolvers import register_resolvers
from mer_lightning.utils.run import start_run

register_resolvers()
log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Run the configured protocol; raises MERError on bad input (tests call this directly)."""
    start_run(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    return run_protocol(cfg, datamodule)


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def join_sweep(cfg: DictConfig) -> None:
    """Jobs of one sweep share a logger group (the sweep) and get their overrides as tags."""
    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith(("hydra.", "paths."))]
    with open_dict(cfg):
        cfg.experiment_name = f"{cfg.experiment_name}/{Path(hydra_cfg.sweep.dir).name}"
        cfg.tags = list(cfg.tags or []) + overrides


def run_sweep_job(cfg: DictConfig) -> float | None:
    """One job of a multirun: a failure is recorded in its results.json and the sweep goes on."""
    join_sweep(cfg)
    try:
        results = train(cfg)
    except Exception as err:  # noqa: BLE001 - one failing job must not stop the others
        log.error("Job failed: %s", err)
        write_json(Path(cfg.paths.output_dir) / "results.json",
                   {"status": "failed", "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        return math.nan
    finally:
        end_job_processes()
    metric = cfg.get("optimized_metric")
    return results["metrics"].get(metric) if metric else None


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    if is_multirun():
        return run_sweep_job(cfg)
    results = exit_on_user_error(train)(cfg)
    metric = cfg.get("optimized_metric")
    return results["metrics"].get(metric) if metric else None


if __name__ == "__main__":
    main()
