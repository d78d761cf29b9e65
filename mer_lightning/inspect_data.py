"""Look at a dataset before training on it: `python -m mer_lightning.inspect_data data=<name> data.root=<path>`.

    python -m mer_lightning.inspect_data data=casme2 data.root=/data/CASME2
    python -m mer_lightning.inspect_data data=samm data.root=/data/SAMM data.classes=all

Reads the annotation file and lists the frames (no decoding), applies the label scheme, and prints
subjects, clips per class, frames per clip (min / median / max) (for a long-video dataset, `data=cas2`,
`samm_lv`, `casme3_lv`, `synthetic_lv`: videos and frames per subject, intervals per type and their
lengths, emotions, gaps in the frame numbers), what the dataset registry says of
each dataset read (frame rates, default label scheme and protocol: `registered`) and every sample that
was dropped or skipped with the reason; the same goes to `summary.json` in the run directory.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import rich
from omegaconf import DictConfig

from mer_lightning.data.readers import dataset, dataset_names
from mer_lightning.resolvers import register_resolvers
from mer_lightning.utils.errors import exit_on_user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.io import write_json
from mer_lightning.utils.rich_utils import print_data_summary, print_video_summary
from mer_lightning.utils.run_dir import start_run

register_resolvers()


def inspect_data(cfg: DictConfig) -> dict:
    """The summary of `cfg.data` (also written to summary.json); raises MERError on bad input."""
    out_dir = start_run(cfg)
    datamodule = instantiate_strict(cfg.data, "data")
    if hasattr(datamodule, "videos"):  # long videos (spotting): videos, frames, intervals per type
        return inspect_videos(datamodule, Path(out_dir))
    table = datamodule.read()
    summary = {"dataset": datamodule.name, "root": str(datamodule.root), **table.summary()}
    total = summary["n_samples"] + len(summary["skipped"])
    summary["skipped_fraction"] = len(summary["skipped"]) / max(total, 1)
    summary["max_skipped_fraction"] = datamodule.max_skipped_fraction
    summary["registered"] = registered(summary)
    write_json(Path(out_dir) / "summary.json", summary)
    print_data_summary(summary)
    for name, info in summary["registered"].items():
        rates = "/".join(f"{f:g}" for f in info["fps"]) or "no"
        other = "/".join(f"{f:g}" for f in sorted(set(summary["fps"][name]) - set(info["fps"]) - {0.0}))
        rich.print(f"registered: {name} ({info['title']}) {rates} fps{f' (read: {other})' if other else ''}, "
                   f"default classes {info['classes']}, protocol {info['protocol']}")
    return summary


def inspect_videos(datamodule, out_dir: Path) -> dict:
    """The summary of a long-video dataset (also written to summary.json): videos, frames, intervals per type
    and their lengths, emotions, fps, gaps in the frame numbers, notes and what was skipped."""
    table = datamodule.videos()
    summary = {"dataset": datamodule.name, "root": str(datamodule.root), **table.summary()}
    summary["registered"] = registered(summary)
    write_json(out_dir / "summary.json", summary)
    print_video_summary(summary)
    return summary


def registered(summary: dict) -> dict:
    """What the dataset registry says of each registered dataset (a composite's sources) in `summary`."""
    found = {}
    for name in summary["fps"]:
        if name in dataset_names():
            d = dataset(name)
            found[name] = {"title": d.title, "fps": list(d.fps), "classes": d.classes, "protocol": d.protocol,
                           "folder": d.folder}
    return found


@hydra.main(version_base="1.3", config_path="conf", config_name="inspect.yaml")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(inspect_data)(cfg)


if __name__ == "__main__":
    main()
