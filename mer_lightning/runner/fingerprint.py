"""What shapes a fold's result, so that finished work is reused only by the same configuration.

`fingerprint(cfg, dm)` flattens every setting that changes a fold's predictions (data and
preprocessing options with their code versions, the model, the protocol, the trainer's epochs,
batch limits and precision, model selection callbacks, the seed, train/test-only) into
`{"model.optimizer.lr": 0.001, ...}`. It is stored in each fold's `fold.json` and in every
checkpoint; a resume compares it key by key and names what differs.

Left out, because they do not change a result: where things are (`data.root`, the readers'
`*_root` / `roots.*`, `cache_dir`; `annotation_file` is kept: it picks the labels), loader workers,
loggers, which folds run and how (`runner.folds`, `resume`, `parallel`, `folds_per_gpu`, `pool`, `pack`,
`pack_execution`: a packed fold is the fold trained alone, the same seeds, weights, batches and draws,
bitwise with `loop` execution and to rounding with `vmap`, as on another device;
`runner.selection`, `inner_folds` and `threads_per_fold` are kept: they change the model, and float sums
depend on the threads), and the devices (accelerator, devices, strategy).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mer_lightning.utils.errors import MERError

IGNORED = {
    "data": ("cache_dir", "num_workers", "pin_memory"),
    "runner": ("folds", "resume", "parallel", "folds_per_gpu", "pool", "pack", "pack_execution"),
}
TRAINER = ("max_epochs", "min_epochs", "max_steps", "min_steps", "limit_train_batches", "limit_val_batches",
           "limit_test_batches", "fast_dev_run", "overfit_batches", "accumulate_grad_batches", "gradient_clip_val",
           "gradient_clip_algorithm", "precision", "check_val_every_n_epoch", "val_check_interval")
COSMETIC_CALLBACKS = ("lr_monitor", "rich_progress_bar", "model_summary")
# what must match for a checkpoint given by hand (`ckpt_path=`) to continue its fold: the samples
# and inputs; the rest (epochs, learning rate) may change on purpose when resuming by hand
SAME_FOLD = ("data.", "preprocessing.", "protocol.")


def _flat(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def fingerprint(cfg: DictConfig, preprocessing: dict) -> dict[str, Any]:
    """The flattened settings that shape a fold's result (see the module docstring)."""
    parts: dict[str, Any] = {"seed": cfg.get("seed"), "train": bool(cfg.get("train", True))}
    for group in ("data", "model", "protocol", "runner"):
        conf = OmegaConf.to_container(cfg[group], resolve=True) if group in cfg else {}
        parts[group] = {k: v for k, v in conf.items() if k not in IGNORED.get(group, ())}
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True) if "trainer" in cfg else {}
    parts["trainer"] = {k: trainer.get(k) for k in TRAINER if k in trainer}
    callbacks = OmegaConf.to_container(cfg.callbacks, resolve=True) if cfg.get("callbacks") else {}
    parts["callbacks"] = {k: v for k, v in callbacks.items() if k not in COSMETIC_CALLBACKS}
    parts["preprocessing"] = preprocessing
    flat: dict[str, Any] = {}
    _flat("", parts, flat)
    return {k: v for k, v in flat.items() if not _is_location(k)}


def _is_location(key: str) -> bool:
    """`data.root`, `data.reader.samm_root`, `data.reader.roots.casme3`: where data is, not what it is."""
    parts = key.split(".")
    return parts[0] == "data" and (parts[-1] == "root" or parts[-1].endswith("_root") or "roots" in parts[:-1])


def differences(stored: dict | None, current: dict, only: tuple[str, ...] = ()) -> list[str]:
    """`key: stored -> current` for every key that differs (restricted to the `only` prefixes)."""
    if stored is None:
        return ["(no fingerprint: written by an older version of mer_lightning)"]
    keys = sorted(set(stored) | set(current))
    if only:
        keys = [k for k in keys if k.startswith(only)]
    missing = object()
    return [f"{k}: {_show(stored.get(k, missing))} -> {_show(current.get(k, missing))}"
            for k in keys if stored.get(k, missing) != current.get(k, missing)]


def _show(value) -> str:
    return "(unset)" if not isinstance(value, (str, int, float, bool, list, type(None))) else repr(value)


def check_same(what: str, stored: dict | None, current: dict, fix: str, only: tuple[str, ...] = ()) -> None:
    """Raise a MERError naming the differing keys when `stored` is not `current`."""
    diff = differences(stored, current, only)
    if diff:
        shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise MERError(f"{what} was made with another configuration ({shown}). {fix}")
