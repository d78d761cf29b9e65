"""Printing: the config tree at start-up and the results table at the end."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

ORDER = ("data", "model", "protocol", "callbacks", "logger", "trainer", "paths", "extras")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in ORDER if f in cfg] + [f for f in cfg if f not in ORDER]
    for field in fields:
        branch = tree.add(field, style="bold", guide_style="dim")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as f:
            rich.print(tree, file=f)


def print_results(results: dict) -> None:
    """A short table: pooled headline figures, then mean and std over folds."""
    table = Table(title=f"Results ({results['protocol']['name']}, {len(results['folds'])} fold(s), "
                        f"{results['pooled']['n']} test samples)")
    table.add_column("metric")
    table.add_column("pooled", justify="right")
    table.add_column("fold mean ± std", justify="right")
    for key in ("acc", "uf1", "uar"):
        mean, std = results["fold_mean"].get(key), results["fold_std"].get(key)
        spread = f"{mean:.4f} ± {std:.4f}" if mean is not None else "-"
        table.add_row(key, f"{results['pooled'][key]:.4f}", spread)
    rich.print(table)
