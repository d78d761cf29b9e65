"""Build callbacks and loggers from their config groups, one fresh set per fold."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None, fold_dir: Path, has_logger: bool) -> list[Callback]:
    """Every `_target_` entry of the callbacks group; checkpoints go under the fold's folder."""
    callbacks = []
    for conf in (cfg or {}).values():
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            continue
        if conf._target_.endswith("LearningRateMonitor") and not has_logger:
            log.info("No logger configured: the learning-rate monitor is off")
            continue
        extra = {"dirpath": str(fold_dir / "checkpoints")} if conf._target_.endswith("ModelCheckpoint") else {}
        callbacks.append(hydra.utils.instantiate(conf, **extra))
    return callbacks


def instantiate_loggers(cfg: DictConfig | None, version: str, group: str) -> list[Logger]:
    """Every `_target_` entry of the logger group, named for one fold (or the protocol summary).

    CSV and TensorBoard write `<output_dir>/<logger>/<version>`; W&B gets one run per fold,
    grouped by the experiment.
    """
    loggers = []
    for conf in (cfg or {}).values():
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            continue
        if conf._target_.endswith("WandbLogger"):
            extra = {"name": f"{group}/{version}", "group": group, "job_type": version.split("_")[0]}
            if conf.get("offline"):
                log.warning("W&B: no API key and no WANDB_MODE set, logging offline to %s. "
                            "Upload later with `wandb sync %s/wandb/offline-run-*`.", conf.save_dir, conf.save_dir)
        else:
            extra = {"version": version}
        loggers.append(hydra.utils.instantiate(conf, **extra))
    return loggers
