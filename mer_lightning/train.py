"""Train and evaluate a model over a whole protocol: `python -m mer_lightning.train [overrides]`.

    python -m mer_lightning.train                               # synthetic data, cnn_bilstm
    python -m mer_lightning.train model=cnn_bilstm data=samm    # a real dataset, LOSO
    python -m mer_lightning.train -m model=cnn,cnn_bilstm       # a sweep

Returns the metric named by `optimized_metric` (for sweepers).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mer_lightning.evaluation.protocol import run_protocol
from mer_lightning.utils.errors import exit_on_user_error
from mer_lightning.utils.resolvers import register_resolvers
from mer_lightning.utils.run import start_run

register_resolvers()


def train(cfg: DictConfig) -> dict:
    """Run the configured protocol; raises MERError on bad input (tests call this directly)."""
    start_run(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    return run_protocol(cfg, datamodule)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    results = exit_on_user_error(train)(cfg)
    metric = cfg.get("optimized_metric")
    return results["metrics"].get(metric) if metric else None


if __name__ == "__main__":
    main()
