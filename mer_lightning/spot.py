"""Spot micro- and macro-expressions in long videos over a protocol: `python -m mer_lightning.spot [overrides]`.

    python -m mer_lightning.spot                                        # embedded long videos, flow_peaks, LOSO
    python -m mer_lightning.spot spotter=softnet                         # the learned per-frame score
    python -m mer_lightning.spot data=cas2 data.root=/data/CASME_sq      # CAS(ME)^2 (samm_lv, casme3_lv)
    python -m mer_lightning.spot recognise=true model=linear             # spot-then-recognise: STRS

Writes intervals.csv, ground_truth.csv, results.json (`spot/f1`, `spot/f1_micro`, `spot/f1_macro`, ...,
`str/strs`), results.md and a picture per video into the run directory; returns the results.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mer_lightning.resolvers import register_resolvers
from mer_lightning.utils.errors import Preempted, exit_on_user_error, sigterm_stops_run
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.run_dir import run_lock, start_run

register_resolvers()
log = logging.getLogger(__name__)


def spot(cfg: DictConfig) -> dict:
    """Run the configured spotting protocol; raises MERError on bad input (tests call this directly)."""
    from mer_lightning.runner.folds import drop_moved_keys
    from mer_lightning.runner.spot import run_spotting

    drop_moved_keys(cfg)
    out_dir = Path(cfg.paths.output_dir)
    with run_lock(out_dir), sigterm_stops_run():
        start_run(cfg)
        data = instantiate_strict(cfg.data, "data")
        try:
            return run_spotting(cfg, data)
        except Preempted:
            raise Preempted(f"stopped by SIGTERM; every finished fold is kept under {out_dir / 'folds'} and the "
                            "features measured so far in the cache. Resume: rerun the same command with "
                            f"hydra.run.dir={out_dir}") from None


@hydra.main(version_base="1.3", config_path="conf", config_name="spot.yaml")
def main(cfg: DictConfig) -> None:
    try:
        exit_on_user_error(spot)(cfg)
    except Preempted as stop:
        print(f"error: {stop}", file=sys.stderr, flush=True)
        raise


if __name__ == "__main__":
    main()
