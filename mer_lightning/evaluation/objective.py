"""The figure a sweep optimises (`optimized_metric`): validation by default, test only when asked.

A search that keeps the trial with the best *test* figure has selected on the test subjects, so
its best figure is optimistic. `protocol/val_uf1` (each fold's selected model on that fold's own
validation subjects, pooled over folds) is the default objective; a test metric (`protocol/uf1`,
`fold_mean/...`) is refused inside a multirun unless `allow_test_selection=true`, and
then every report says in its first line that the figures are optimistic.
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
    if sweep and metric in VALIDATION and cfg.protocol.get("val_subjects") in (None, 0):
        raise MERError(f"optimized_metric={metric} needs validation subjects, and protocol.val_subjects="
                       f"{cfg.protocol.get('val_subjects')} gives none; set protocol.val_subjects=0.2")


OPTIMISTIC = ("Optimistic figures: this run's settings were chosen on a test figure ({metric}, "
              "allow_test_selection=true), so its test results overstate what a new subject would see.")
