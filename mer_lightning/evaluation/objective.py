"""The figure a sweep optimises (`optimized_metric`): validation by default, test only when asked.

A search that keeps the trial with the best *test* figure has selected on the test subjects, so
its best figure is optimistic. `protocol/val_uf1` (each fold's validation predictions at the chosen
epoch, on validation subjects carved from its training subjects, pooled over folds: the selection
pass of `runner.selection=refit`, the selected checkpoint of `val`) is the default objective; a test
metric (`protocol/uf1`, `fold_mean/...`) is refused inside a multirun in every selection mode unless
`allow_test_selection=true`, and then every report says in its first line that the figures are
optimistic. `runner.selection=last` keeps no validation subjects: a sweep on a validation figure is
refused with it, naming the modes that have one.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mer_lightning.utils.errors import MERError

VALIDATION = ("protocol/val_uf1", "protocol/val_uar", "protocol/val_acc")
TEST = tuple(f"{prefix}/{k}" for prefix in ("protocol", "fold_mean") for k in ("uf1", "uar", "acc"))


def selects_on_test(cfg: DictConfig) -> bool:
    """True when the run's objective is a test figure and the user allowed selecting on it."""
    return cfg.get("optimized_metric") in TEST and bool(cfg.get("allow_test_selection", False))


def check_objective(cfg: DictConfig, sweep: bool) -> None:
    """Refuse an unknown objective, and a test objective in a sweep unless explicitly allowed."""
    metric = cfg.get("optimized_metric")
    if not metric:
        return
    if metric not in VALIDATION + TEST:
        raise MERError(f"optimized_metric={metric} is not a figure the run reports; use one of {list(VALIDATION)} "
                       "(or a test figure with allow_test_selection=true)")
    if sweep and metric in TEST and not cfg.get("allow_test_selection", False):
        raise MERError(f"optimized_metric={metric} is a test figure: a sweep that keeps its best value selects on "
                       "the test subjects. Optimise protocol/val_uf1 (the default), or say allow_test_selection=true "
                       "and every report will call the figures optimistic.")
    if not (sweep and metric in VALIDATION):
        return
    runner = cfg.get("runner") or {}
    mode = runner.get("selection", "val")
    if mode == "last":
        raise MERError(f"optimized_metric={metric}: runner.selection=last trains every training subject and keeps no "
                       "validation subjects, so it has no validation figure to optimise. Sweep with "
                       "runner.selection=refit (its selection pass gives protocol/val_uf1, then every training subject "
                       "trains) or runner.selection=val.")
    inner = runner.get("inner_folds") if mode == "refit" else None
    if cfg.protocol.get("val_subjects") in (None, 0) and not inner:
        raise MERError(f"optimized_metric={metric} needs validation subjects, and protocol.val_subjects="
                       f"{cfg.protocol.get('val_subjects')} gives none; set protocol.val_subjects=0.2"
                       + (" or runner.inner_folds=5" if mode == "refit" else ""))


OPTIMISTIC = ("Optimistic figures: this run's settings were chosen on a test figure ({metric}, "
              "allow_test_selection=true), so its test results overstate what a new subject would see.")
