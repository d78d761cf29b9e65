"""Build the preprocessing cache of a dataset: `python -m mer_lightning.preprocess data=<name> data.root=<path>`.

    python -m mer_lightning.preprocess                                  # the synthetic data, default options
    python -m mer_lightning.preprocess data=casme2 data.root=/data/CASME2 data.face=dlib data.input=flow
    python -m mer_lightning.preprocess data.num_frames=1 export=flow_png  # and write the inputs as files

Reads the dataset, aligns faces (`data.face=dlib`), selects frames, computes diff / optical flow
(`data.input`) and writes the memory-mapped arrays under `paths.cache_dir`, then prints what was
done: clips processed, faces found, clips skipped and why, time taken. Training with the same
data options reuses the cache; `train` also builds it by itself on first need.

`export=<folder>` also writes every kept clip's input as a file (PNG for one step of 1 or 3 channels,
`.npy` in full precision otherwise; `export_format=png|npy` forces one) with a manifest that
`data=precomputed` reads as it is (`mer_lightning/data/export.py`), and prints the command that does.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mer_lightning.resolvers import register_resolvers
from mer_lightning.utils.errors import exit_on_user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.io import write_json
from mer_lightning.utils.run_dir import start_run

register_resolvers()


def preprocess(cfg: DictConfig) -> dict:
    """Build (or find) the cache for `cfg.data`; returns the report (also written to preprocess.json)."""
    out_dir = start_run(cfg)
    datamodule = instantiate_strict(cfg.data, "data")
    table = datamodule.load()
    report = asdict(datamodule.cache_report)
    report.update(samples=len(table), subjects=len(table.subjects), classes=table.class_counts(),
                  skipped_all=[s.as_dict() for s in table.skipped])
    if cfg.get("export"):
        from mer_lightning.data.export import export_inputs

        report["export"] = export_inputs(datamodule, cfg.export, cfg.get("export_format", "auto"),
                                         classes=cfg.data.get("classes"))
    write_json(Path(out_dir) / "preprocess.json", report)
    print(datamodule.cache_report.summary())
    reader_skips = len(table.skipped) - len(datamodule.cache_report.skipped)
    print(f"  {len(table)} sample(s) ready ({len(table.subjects)} subjects, classes {table.class_counts()})"
          + (f"; {reader_skips} more skipped while reading the annotations (see the log)" if reader_skips else ""),
          flush=True)
    if "export" in report:
        export = report["export"]
        files = ", ".join(f"{n} {kind}" for kind, n in sorted(export["files"].items())) or "no files"
        print(f"exported {export['clips']} clip(s) to {export['folder']} ({files}, T x C x H x W = "
              f"{' x '.join(map(str, export['shape']))}) with {export['folder']}/manifest.csv; read them back with:\n"
              f"  {export['read_back']}", flush=True)
    return report


@hydra.main(version_base="1.3", config_path="conf", config_name="preprocess.yaml")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(preprocess)(cfg)


if __name__ == "__main__":
    main()
