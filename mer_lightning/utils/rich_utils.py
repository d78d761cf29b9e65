"""Printing: the config tree at start-up and the results table at the end."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from rich.text import Text

ORDER = ("data", "model", "protocol", "callbacks", "logger", "trainer", "paths", "extras")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None, show: bool = True) -> None:
    """The resolved config as a tree: printed when `show`, written to `save_to` always."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in ORDER if f in cfg] + [f for f in cfg if f not in ORDER and f != "hydra"]
    for field in fields:
        branch = tree.add(field, style="bold", guide_style="dim")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    if show:
        rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as f:
            rich.print(tree, file=f)


def print_results(results: dict) -> None:
    """A short table: pooled headline figures, then mean and std over folds."""
    from mer_lightning.evaluation.report import warnings

    for line in warnings(results):  # first: a debug / partial run, figures chosen on a test figure
        rich.print(Text(line.replace("**", ""), style="bold red"))
    table = Table(title=f"Results ({results['protocol']['name']}, {len(results['folds'])} fold(s), "
                        f"{results['pooled']['n']} test samples)")
    table.add_column("metric")
    table.add_column("pooled", justify="right")
    table.add_column("fold mean ± std", justify="right")
    m, reference = results["metrics"], results.get("reference")
    if reference:
        table.add_column(f"reference: {reference['name']}", justify="right")
        table.add_column("model - reference", justify="right")
    for key in ("acc", "uf1", "uar"):
        mean, std = m.get(f"fold_mean/{key}"), m.get(f"fold_std/{key}")
        spread = f"{mean:.4f} ± {std:.4f}" if mean is not None else "-"
        extra = [f"{m[f'reference/{key}']:.4f}", f"{m[f'vs_reference/{key}']:+.4f}"] if reference else []
        table.add_row(key, f"{m[f'protocol/{key}']:.4f}", spread, *extra)
    rich.print(table)
    mode = (results.get("selection") or {}).get("mode")
    if mode:
        rich.print(f"runner.selection={mode}: no fold's model or epoch was chosen on its test subjects")


def print_data_summary(summary: dict) -> None:
    """`inspect`'s tables: clips per subject and class, then frame counts, notes and skipped samples."""
    classes = list(summary["class_counts"])
    table = Table(title=f"{summary['dataset']}: {summary['n_samples']} samples, {summary['n_subjects']} subjects "
                        f"({summary['root']})")
    rows, what = (summary["subjects"], "subject") if summary["subjects"] else (summary["parts"], "part")
    table.add_column(what)
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for name, counts in rows.items():
        table.add_row(name, *[str(counts[c]) for c in classes], str(sum(counts.values())))
    table.add_row("all", *[str(summary["class_counts"][c]) for c in classes], str(summary["n_samples"]),
                  style="bold")
    rich.print(table)
    frames = summary["frames_per_clip"]
    rich.print(f"frames per clip: min {frames['min']}, median {frames['median']:g}, max {frames['max']}")
    if summary.get("fps"):  # per source; 0 = unknown or still images
        rich.print("fps: " + ", ".join(f"{k} {'/'.join(f'{r:g}' for r in v)}" for k, v in summary["fps"].items()))
    for note, n in summary["notes"].items():
        rich.print(f"{note}: {n}")
    skipped = summary["skipped"]
    if skipped:
        listing = Table(title=f"{len(skipped)} skipped ({summary['skipped_fraction']:.1%}; training stops above "
                              f"data.max_skipped_fraction={summary['max_skipped_fraction']})")
        listing.add_column("sample")
        listing.add_column("reason")
        for skip in skipped:
            listing.add_row(skip["sample"], skip["reason"])
        rich.print(listing)
