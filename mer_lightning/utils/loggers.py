"""The loggers' lifecycle around a protocol: one run per fold, then one summary run with the pooled figures."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.evaluation.results import results_frame
from mer_lightning.utils.instantiate import instantiate_loggers

log = logging.getLogger(__name__)


def log_summary(cfg: DictConfig, results: dict) -> None:
    """Pooled and per-fold figures to the loggers, as one summary run (`fold/<k>/...`, `protocol/...`)."""
    group = cfg.get("experiment_name") or cfg.task_name
    loggers = instantiate_loggers(cfg.get("logger"), version="summary", group=group)
    if not loggers:
        return
    figures = {k: v for k, v in results["metrics"].items()}
    for fold in results["folds"]:
        for k in ("acc", "uf1", "uar"):
            figures[f"fold/{fold['index']}/{k}"] = fold["metrics"][k]
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        lg.log_metrics(figures, step=0)
        if type(lg).__name__ == "WandbLogger":
            import wandb

            out_dir = Path(cfg.paths.output_dir)
            images = {name: wandb.Image(str(out_dir / f"{name}.png")) for name in ("confusion_matrix", "curves")
                      if (out_dir / f"{name}.png").is_file()}
            lg.experiment.log({**images, "results": wandb.Table(dataframe=results_frame(results)),
                               "predictions": wandb.Table(dataframe=pd.read_csv(out_dir / "predictions.csv"))})
        lg.finalize("success")
    finish_wandb(loggers)


def finish_wandb(loggers) -> None:
    """One W&B run per fold: close this fold's run before the next starts (one log line each)."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            run = wandb.run
            if run is not None:
                offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
                where = f"offline in {run.dir} (upload later: wandb sync)" if offline else run.url
                log.info("W&B run %s: %s", run.name, where)
            wandb.finish()
