"""A stand-in for Lightning's WandbLogger that records what it is given (`logger.wandb._target_=
tests.fake_wandb.WandbLogger`): its init arguments, hyper-parameters, metrics, metric definitions,
summary and logged media, one JSON line per call in `$FAKE_WANDB_LOG` (so runs in subprocesses,
such as a multirun's jobs, can be read back). The class is named `WandbLogger` on purpose: the
runner recognises W&B loggers by that name."""

from __future__ import annotations

import json
import os
from typing import Any

from lightning.pytorch.loggers.logger import Logger


def _record(event: str, **data: Any) -> None:
    path = os.environ.get("FAKE_WANDB_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, **data}, default=str) + "\n")


class _Settings:
    mode, _offline = "offline", True


class _Summary(dict):
    def __init__(self, run: "_Run"):
        super().__init__()
        self.run = run

    def update(self, values=(), **more) -> None:  # type: ignore[override]
        values = dict(values, **more)
        super().update(values)
        _record("summary", run=self.run.name, values=values)


class _Run:
    settings = _Settings()

    def __init__(self, name: str):
        self.name, self.id, self.dir = name, f"fake-{abs(hash(name)) % 10**8}", "fake"
        self.summary = _Summary(self)

    def define_metric(self, name: str, **kwargs) -> None:
        _record("define_metric", run=self.name, name=name, **kwargs)

    def log(self, values: dict, **kwargs) -> None:
        _record("log", run=self.name, keys=sorted(values), types={k: type(v).__name__ for k, v in values.items()})

    def log_artifact(self, artifact, aliases=()) -> None:
        _record("artifact", run=self.name, metadata=artifact.metadata, aliases=list(aliases))


class WandbLogger(Logger):
    def __init__(self, name: str | None = None, group: str | None = None, job_type: str | None = None,
                 tags: list | None = None, log_model: bool = False, **kwargs):
        super().__init__()
        self._name = name or "run"
        self._run = _Run(self._name)
        _record("init", name=name, group=group, job_type=job_type, tags=list(tags or []), log_model=log_model,
                **{k: v for k, v in kwargs.items() if k in ("project", "offline")})

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._name

    @property
    def experiment(self) -> _Run:
        return self._run

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        _record("config", run=self._name, params=dict(params))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        _record("metrics", run=self._name, keys=sorted(metrics), step=step)


def read(path) -> list[dict]:
    """Every recorded call, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
