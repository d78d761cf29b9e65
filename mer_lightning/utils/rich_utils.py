"""Printing: the config tree at start-up and `inspect`'s tables (the results table is evaluation's:
`evaluation.report.print_results`)."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

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


def print_video_summary(summary: dict) -> None:
    """`inspect`'s tables for long videos: videos, frames and intervals per subject, then lengths, fps, notes and
    what was skipped."""
    table = Table(title=f"{summary['dataset']}: {summary['n_videos']} videos, {summary['n_subjects']} subjects, "
                        f"{summary['frames']['total']} frames ({summary['root']})")
    for column in ("subject", "videos", "frames", "micro", "macro"):
        table.add_column(column, justify="left" if column == "subject" else "right")
    for name, row in summary["subjects"].items():
        table.add_row(name, *(str(row[k]) for k in ("videos", "frames", "micro", "macro")))
    table.add_row("all", str(summary["n_videos"]), str(summary["frames"]["total"]), str(summary["intervals"]["micro"]),
                  str(summary["intervals"]["macro"]), style="bold")
    rich.print(table)
    f = summary["frames"]
    rich.print(f"frames per video: min {f['min']}, median {f['median']:g}, max {f['max']}")
    for kind, lengths in summary["interval_frames"].items():
        rich.print(f"{kind} intervals: {summary['intervals'][kind]}, frames min {lengths['min']}, median "
                   f"{lengths['median']:g}, max {lengths['max']}; emotions {summary['emotions'][kind]}")
    rich.print("fps: " + ", ".join(f"{k} {'/'.join(f'{r:g}' for r in v)}" for k, v in summary["fps"].items()))
    if summary["gaps"]["videos"]:
        rich.print(f"gaps in the frame numbers: {summary['gaps']['frames_missing']} frame(s) missing in "
                   f"{summary['gaps']['videos']} video(s)")
    for note, n in summary["notes"].items():
        rich.print(f"{note}: {n}")
    if summary["skipped"]:
        listing = Table(title=f"{len(summary['skipped'])} skipped (sheet rows or videos)")
        listing.add_column("what")
        listing.add_column("reason")
        for skip in summary["skipped"]:
            listing.add_row(skip["sample"], skip["reason"])
        rich.print(listing)
