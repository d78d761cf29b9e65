"""Instantiation: configs with their keys checked (`instantiate_strict`), and callbacks and loggers
from their config groups, one fresh set per fold."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from mer_lightning.utils.errors import MERError, unknown_key

if TYPE_CHECKING:  # Lightning is imported by the callers that build callbacks and loggers, not here
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import Logger

log = logging.getLogger(__name__)
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def check_keys(target: Any, keys: Iterable[str], where: str, *, shown_known: Iterable[str] | None = None,
               also: Iterable[str] = ()) -> None:
    """Raise a MERError naming every key of `keys` that `target` (a class or function) takes no keyword
    argument for: `data.imagesize is not a key of data (MERDataModule); known: ...`.

    `where` is the config path the keys sit at (`data`, `data.reader`, `protocol`); `also`: keys
    that are valid there but used by someone else (`runner.folds`); `shown_known` narrows the
    known keys the message lists. A target that takes `**kwargs`, or has no signature, passes.
    """
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)] + list(also)
    unknown = [k for k in keys if k not in accepted]
    if not unknown:
        return
    known = list(shown_known) + list(also) if shown_known is not None else accepted
    name = getattr(target, "__name__", type(target).__name__)
    hints = [f"{k} -> {m[0]}" for k in unknown if (m := difflib.get_close_matches(k, accepted, n=1, cutoff=0.8))]
    subject = ", ".join(f"{where}.{k}" for k in unknown)
    verb = "is not a key" if len(unknown) == 1 else "are not keys"
    raise MERError(f"{subject} {verb} of {where} ({name}); known: {', '.join(known)}"
                   + (f" (did you mean {', '.join(hints)}?)" if hints else ""))


def check_config_keys(node: Any, where: str) -> None:
    """`check_keys` on every `_target_` config in `node` (itself and nested ones, e.g. `data.reader`)
    against the parameters of its target. A partial's required parameters (what its caller passes,
    e.g. a reader's `root`) are accepted but not listed as keys."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str):
            try:
                obj = hydra.utils.get_object(target)
            except Exception:  # noqa: BLE001 - Hydra's own instantiation says what cannot be imported
                obj = None
            if obj is not None:
                shown = None
                if node.get("_partial_"):
                    try:
                        shown = [p.name for p in inspect.signature(obj).parameters.values()
                                 if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
                    except (TypeError, ValueError):
                        shown = None
                check_keys(obj, [str(k) for k in node if k not in HYDRA_KEYS], where, shown_known=shown)
        for key, value in node.items():
            if key not in HYDRA_KEYS:
                check_config_keys(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_config_keys(value, f"{where}[{i}]")


def instantiate_strict(node: DictConfig, where: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(node, **kwargs)`, refusing keys that nothing takes.

    Every key of `node` and of its nested `_target_` configs is checked first (a partial's keyword
    arguments would otherwise only fail when it is called); a TypeError "unexpected keyword
    argument" that still comes out of Hydra becomes the same MERError naming `where.<key>`.
    """
    check_config_keys(node, where)
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except Exception as err:
        key = unknown_key(err)
        if key is None:
            raise
        raise MERError(f"{key} is not a key of {where} or of a config nested in it: check its spelling in "
                       "the config or on the command line") from None


def instantiate_callbacks(cfg: DictConfig | None, fold_dir: Path, has_logger: bool) -> list[Callback]:
    """Every `_target_` entry of the callbacks group; checkpoints go under the fold's folder."""
    callbacks = []
    for conf in (cfg or {}).values():
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            continue
        if conf._target_.endswith("LearningRateMonitor") and not has_logger:
            log.info("No logger configured: the learning-rate monitor is off")
            continue
        extra = {"dirpath": str(fold_dir / "checkpoints")} if conf._target_.endswith("ModelCheckpoint") else {}
        callbacks.append(hydra.utils.instantiate(conf, **extra))
    return callbacks


_ANNOUNCED: set[str] = set()


def wandb_mode_line(conf: DictConfig) -> str:
    """Where this run's W&B runs go, said once: the mode that applies and why."""
    where = f"{conf.save_dir}/wandb"
    mode = os.environ.get("WANDB_MODE")
    if mode:
        upload = f"; upload later with `wandb sync {where}/offline-run-*`" if mode in ("offline", "dryrun") else ""
        return f"W&B: WANDB_MODE={mode}: runs are written to {where}{upload}"
    if conf.get("offline"):
        return (f"W&B: no API key (WANDB_API_KEY or `wandb login`) and no WANDB_MODE: logging offline to {where}; "
                f"upload later with `wandb sync {where}/offline-run-*`")
    return f"W&B: logging online to project {conf.get('project')} (local copy in {where})"


def instantiate_loggers(cfg: DictConfig | None, version: str, wandb: dict | None = None) -> list[Logger]:
    """Every `_target_` entry of the logger group, named for one fit (or the protocol summary).

    CSV and TensorBoard write `<output_dir>/<logger>/<version>`; W&B gets `wandb` (name, group, job
    type, tags: `evaluation.dashboard` decides them) and never uploads checkpoints by itself (the
    runner logs each fold's tested one when `log_model` is set). The W&B mode is said once per run
    directory.
    """
    loggers = []
    for conf in (cfg or {}).values():
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            continue
        if conf._target_.endswith("WandbLogger"):
            # W&B's own start and summary blocks repeat per fold: silenced, the run log has one line per fold
            os.environ.setdefault("WANDB_SILENT", "true")
            extra = {**(wandb or {}), "log_model": False}
            if str(conf.save_dir) not in _ANNOUNCED:
                _ANNOUNCED.add(str(conf.save_dir))
                log.info("%s", wandb_mode_line(conf))
        else:
            extra = {"version": version}
        loggers.append(hydra.utils.instantiate(conf, **extra))
    return loggers
