"""Look at a dataset before training on it: `python -m mer_lightning.inspect_data data=<name> data.root=<path>`.

    python -m mer_lightning.inspect_data data=casme2 data.root=/data/CASME2
    python -m mer_lightning.inspect_data data=samm data.root=/data/SAMM data.classes=all

Reads the annotation file and lists the frames (no decoding), applies the label scheme, and prints
subjects, clips per class, frames per clip (min / median / max) and every sample that was dropped or
skipped with the reason; the same goes to `summary.json` in the run directory.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mer_lightning.resolvers import register_resolvers
from mer_lightning.utils.errors import exit_on_user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.io import write_json
from mer_lightning.utils.rich_utils import print_data_summary
from mer_lightning.utils.run_dir import start_run

register_resolvers()


def inspect_data(cfg: DictConfig) -> dict:
    """The summary of `cfg.data` (also written to summary.json); raises MERError on bad input."""
    out_dir = start_run(cfg)
    datamodule = instantiate_strict(cfg.data, "data")
    table = datamodule.read()
    summary = {"dataset": datamodule.name, "root": str(datamodule.root), **table.summary()}
    total = summary["n_samples"] + len(summary["skipped"])
    summary["skipped_fraction"] = len(summary["skipped"]) / max(total, 1)
    summary["max_skipped_fraction"] = datamodule.max_skipped_fraction
    write_json(Path(out_dir) / "summary.json", summary)
    print_data_summary(summary)
    return summary


@hydra.main(version_base="1.3", config_path="conf", config_name="inspect.yaml")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(inspect_data)(cfg)


if __name__ == "__main__":
    main()
