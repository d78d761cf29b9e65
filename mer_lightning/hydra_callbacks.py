"""Hydra callbacks: checks that must happen before Hydra creates the run directory (or starts a
sweep's first job), and the sweep report at the end of a multirun."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def _fail_unless_writable(path: Path, override: str) -> None:
    """Exit with one clear line when the run directory cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        ok = os.access(path, os.W_OK)
    except OSError as err:
        ok, reason = False, err.strerror
    else:
        reason = "permission denied"
    if not ok:
        print(f"error: output directory {path} is not writable ({reason}); choose another with "
              f"`{override}=...` or `paths.log_dir=...`", file=sys.stderr, flush=True)
        raise SystemExit(2)


class OutputDirCheck(Callback):
    """Refuse a non-writable output directory before any work starts."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _fail_unless_writable(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _fail_unless_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")
        _fail_on_test_objective(config)


def _fail_on_test_objective(config: DictConfig) -> None:
    """A sweep ranks (and Optuna selects) by `optimized_metric`: refuse a test figure before any job runs."""
    from mer_lightning.evaluation.objective import check_objective
    from mer_lightning.utils.errors import MERError

    try:
        check_objective(config, sweep=True)
    except MERError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


class SweepReport(Callback):
    """At the end of a multirun, collect every job's results into sweep.csv / sweep.md / sweep.png."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mer_lightning.sweep_report import write_sweep_report

        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            frame = write_sweep_report(sweep_dir)
            failed = int((frame.status != "ok").sum())
            print(f"Sweep report: {sweep_dir / 'sweep.md'} ({len(frame)} jobs, {failed} failed)", flush=True)
            if failed:  # the sweep's exit status says so too (scripts and CI check it)
                print(f"error: {failed} of {len(frame)} job(s) failed; their errors are in {sweep_dir / 'sweep.md'}",
                      file=sys.stderr, flush=True)
                raise SystemExit(1)
