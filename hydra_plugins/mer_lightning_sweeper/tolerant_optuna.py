"""Hydra's Optuna sweeper, except that a failed trial is told to the study as failed and the search goes on.

The plugin (hydra-optuna-sweeper 1.2) tells Optuna every trial's value as COMPLETE; a failed job
returns NaN (`mer_lightning.train` records the failure and returns NaN), Optuna refuses a NaN value
with an exception, and the plugin re-raises it: the whole search stops at the first failed trial.
Here a NaN (or missing) value is told as `TrialState.FAIL` instead; the sampler skips it, the next
trials run, and the sweep report lists the trial as failed. When every trial failed the search
ends with one line saying so (exit status 1) after writing the sweep report.

Hydra only instantiates sweepers that live in the `hydra_plugins` package, hence this module's place.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, List
from unittest import mock

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

# optuna is imported when a search starts: Hydra imports every plugin module at each start-up


def tell_failed_as_failed(tell):
    """Wrap `Study.tell`: a NaN/None value of a finished job is told as FAIL (once)."""
    import optuna

    def tolerant_tell(study: Any, trial: Any, values: Any = None, state: Any = None, **kw):
        numbers = [values] if isinstance(values, (int, float)) else list(values or [])
        if state in (None, optuna.trial.TrialState.COMPLETE) and (not numbers or any(
                v is None or (isinstance(v, float) and math.isnan(v)) for v in numbers)):
            state, values = optuna.trial.TrialState.FAIL, None
        number = trial if isinstance(trial, int) else trial.number
        if state == optuna.trial.TrialState.FAIL and study.trials[number].state.is_finished():
            return None  # already told as failed
        return tell(study, trial, values=values, state=state, **kw)

    return tolerant_tell


class TolerantOptunaSweeper(OptunaSweeper):
    """`hydra/sweeper=optuna` that keeps searching past failed trials (see the module docstring)."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        import optuna

        with mock.patch.object(optuna.study.Study, "tell", tell_failed_as_failed(optuna.study.Study.tell)):
            try:
                return super().sweep(arguments)
            except ValueError as err:
                if "No trials are completed yet" not in str(err):
                    raise
        from mer_lightning.sweep_report import write_sweep_report

        write_sweep_report(self.sweep_dir)
        print(f"error: every trial of the search failed; see {self.sweep_dir / 'sweep.md'} for each error",
              file=sys.stderr, flush=True)
        raise SystemExit(1)
