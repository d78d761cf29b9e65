"""Start-of-run chores shared by the entry points: checks, printing, saving the resolved config."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mer_lightning.utils.errors import MERError
from mer_lightning.utils.rich_utils import print_config_tree

log = logging.getLogger(__name__)


def start_run(cfg: DictConfig) -> Path:
    """Check paths, save `config.yaml` (resolved) in the run directory, print the config tree."""
    out_dir = Path(cfg.paths.output_dir)
    if not os.access(out_dir, os.W_OK):
        raise MERError(f"output directory {out_dir} is not writable; choose another with "
                       "`hydra.run.dir=...` or `paths.log_dir=...`")
    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(ckpt).is_file():
        raise MERError(f"ckpt_path={ckpt} does not exist")
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config"):
        print_config_tree(cfg, save_to=out_dir / "config_tree.log")
    return out_dir
