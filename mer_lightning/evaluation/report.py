"""Run-directory reports: results.json, results.md, predictions.csv and the confusion matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rich
from rich.table import Table
from rich.text import Text

from mer_lightning.data.splits import OFFICIAL_TEST
from mer_lightning.utils.io import write_csv, write_json, write_text

MODES = {
    "refit": ("each fold's epoch count was chosen on validation subjects carved from its training subjects{inner}, "
              "then a fresh model trained on every training subject for that many epochs and was tested once"),
    "last": ("each fold's model trained on every training subject for a budget fixed before any subject was seen "
             "({epochs} epochs) and its last epoch was tested"),
    "val": ("each fold's tested checkpoint is the one that scored best on validation subjects carved from its "
            "training subjects, which it never trained on"),
}
NEVER_TEST = ("No fold's epoch, checkpoint or setting was chosen on its test subjects (published MER code often "
              "picks each fold's epoch on its test subject; this tool never does).")


def selection_sentence(results: dict) -> str:
    """How the tested models were chosen: the selection mode in words, and that the test subjects took no part."""
    folds = results["folds"]
    mode = (results.get("selection") or {}).get("mode")
    if mode not in MODES:  # an older run, eval or pool of older folds: what each fold recorded
        selections = sorted({f.get("selection") or "last epoch" for f in folds})
        text = f"Model selection: {'; '.join(selections)}"
        if any("best" in s for s in selections):
            official = any(f["test_subjects"] == [OFFICIAL_TEST] for f in folds)
            text += (", on the official validation part (never the test part)" if official else
                     ", on validation subjects carved from each fold's training subjects (never the test subjects)")
        return text + "."
    inner = (results.get("selection") or {}).get("inner_folds")
    epochs = sorted({(f.get("details") or {}).get("epochs") for f in folds} - {None})
    shown = "/".join(str(e) for e in epochs) or "?"
    text = MODES[mode].format(inner=f" ({inner} inner subject folds, pooled)" if inner else "", epochs=shown)
    if mode == "refit" and epochs:
        text += f" (epochs chosen per fold: {', '.join(str((f.get('details') or {}).get('epochs')) for f in folds)})"
    return f"Model selection (runner.selection={mode}): {text}. {NEVER_TEST}"


def results_markdown(results: dict, pictures: list[str] | tuple[str, ...] = ()) -> str:
    """A table a person would paste into a paper, with how each number was computed."""
    p, m, classes = results["pooled"], results["metrics"], results["classes"]
    reference = results.get("reference")
    lines = [f"> {line}" for line in warnings(results)] + [""] if warnings(results) else []
    lines += [
        f"# {results.get('title', 'Results')}",
        "",
        f"Protocol: **{results['protocol']['name']}**, {len(results['folds'])} fold(s), "
        f"{p['n']} test predictions. {selection_sentence(results)}",
        "",
    ]
    if reference:
        lines += ["| metric | pooled over folds (headline) | mean ± std over folds | reference: "
                  f"{reference['name']} (pooled) | model - reference |", "|---|---|---|---|---|"]
    else:
        lines += ["| metric | pooled over folds (headline) | mean ± std over folds |", "|---|---|---|"]
    for key, name in (("uf1", "UF1 (macro F1)"), ("uar", "UAR (macro recall)"), ("acc", "Accuracy")):
        mean, std = m.get(f"fold_mean/{key}"), m.get(f"fold_std/{key}")
        spread = f"{mean:.4f} ± {std:.4f}" if mean is not None else "n/a"
        row = f"| {name} | {m[f'protocol/{key}']:.4f} | {spread} |"
        if reference:
            row += f" {m[f'reference/{key}']:.4f} | {m[f'vs_reference/{key}']:+.4f} |"
        lines.append(row)
    lines += ["", "Pooled: metrics computed once on all folds' test predictions together (MEGC convention). "
              "Mean ± std: metrics computed per fold, then averaged. A class without test samples in a fold "
              "counts in that fold's mean only if the model predicts it (then as 0), as in scikit-learn."]
    if reference:
        lines += ["", f"Reference: `model={reference['name']}` (multinomial logistic regression on the onset -> apex "
                  f"optical flow pooled to a grid, {reference.get('features', '?')} features standardised per fold, "
                  "fitted to convergence) on the same folds, trained on "
                  f"{reference.get('trained_on', 'every training subject')}; its predictions are in "
                  "reference_predictions.csv. A model below it is a bug to find, not a result."
                  + (f" {reference['missing']} test clip(s) had no reference input and are left out of its figures."
                     if reference.get("missing") else "")]
    if results.get("optimistic"):
        lines += ["", f"> **{results['optimistic']['label']}**: pooled over each fold's best-test epoch, UF1 "
                  f"{m['optimistic/uf1']:.4f}, UAR {m['optimistic/uar']:.4f} (gap to the honest figures: UF1 "
                  f"{m['optimistic_gap/uf1']:+.4f}, UAR {m['optimistic_gap/uar']:+.4f}). What published code that picks "
                  "each fold's epoch on its test subject would print for this model; never used here to select, "
                  "save or report `protocol/*`."]
    if results.get("validation"):
        v, objective = results["validation"], results.get("objective") or {}
        lines += ["", f"Validation (each fold's validation predictions at the chosen epoch or checkpoint, on "
                  f"subjects carved from its training subjects, pooled): "
                  f"UF1 {m['protocol/val_uf1']:.4f}, UAR {m['protocol/val_uar']:.4f} ({v['n']} predictions). "
                  f"Objective for sweeps: `{objective.get('metric')}`."]
    lines += ["",
              "| class | precision | recall | F1 | test samples |", "|---|---|---|---|---|"]
    support = np.asarray(p["confusion"]).sum(axis=1)
    for i, name in enumerate(classes):
        lines.append(f"| {name} | {p['precision'][i]:.4f} | {p['recall'][i]:.4f} | {p['f1'][i]:.4f} | {int(support[i])} |")
    for source, figures in results.get("per_source", {}).items():
        if source == "_":
            continue
        lines.append(f"\n{source}: UF1 {figures['uf1']:.4f}, UAR {figures['uar']:.4f}, acc {figures['acc']:.4f} "
                     f"({figures['n']} samples, pooled)")
    ref_folds = {f["index"]: f for f in (reference or {}).get("folds", [])}
    header = "| fold | test subjects | n | acc | UF1 | UAR | epochs |" + (" reference UF1 |" if reference else "")
    lines += ["", header, "|" + "---|" * (header.count("|") - 1)]
    for fold in results["folds"]:
        fm, epochs = fold["metrics"], (fold.get("details") or {}).get("epochs", "")
        row = (f"| {fold['index']} | {', '.join(fold['test_subjects'])} | {fm['n']} | {fm['acc']:.4f} | "
               f"{fm['uf1']:.4f} | {fm['uar']:.4f} | {epochs} |")
        if reference:
            ref = ref_folds.get(fold["index"])
            row += f" {ref['uf1']:.4f} |" if ref else " |"
        lines.append(row)
    for picture in pictures:
        lines += ["", f"![{picture.rsplit('.', 1)[0].replace('_', ' ')}]({picture})"]
    return "\n".join(lines) + "\n"


def warnings(results: dict) -> list[str]:
    """The lines a report must open with: a debug/partial run, or figures chosen on a test figure."""
    out = []
    if results.get("not_a_protocol_result"):
        out.append("**Not a protocol result** (" + "; ".join(results["not_a_protocol_result"]) + "): a debug or "
                   "partial run; do not report these figures.")
    objective = results.get("objective") or {}
    if objective.get("optimistic"):
        from mer_lightning.evaluation.objective import OPTIMISTIC

        out.append("**" + OPTIMISTIC.format(metric=objective.get("metric")) + "**")
    return out


def confusion_png(path: Path, confusion, classes: list[str], title: str = "") -> None:
    """Counts and row-normalised confusion matrices side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 2.5 + 0.6 * len(classes)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, data, fmt, name in ((axes[0], counts, "{:.0f}", "counts"), (axes[1], normalised, "{:.2f}", "row-normalised")):
        ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({name})" if title else name)
        high = data.max() / 2 if data.size else 0
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, fmt.format(v), ha="center", va="center", color="white" if v > high else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out_dir: Path, results: dict, predictions: pd.DataFrame, classes: list[str]) -> None:
    """results.json / results.md / predictions.csv, the confusion matrix and the learning curves."""
    write_csv(out_dir / "predictions.csv", predictions)
    write_json(out_dir / "results.json", results)
    confusion_png(out_dir / "confusion_matrix.png", results["pooled"]["confusion"], classes, "pooled")
    pictures = ["confusion_matrix.png"]
    if curves_png(out_dir / "curves.png", results["folds"]):
        pictures.append("curves.png")
    write_text(out_dir / "results.md", results_markdown(results, pictures))


def curves_png(path: Path, folds: list[dict]) -> bool:
    """Train / validation loss and validation UF1 per epoch, one line per fold, the chosen epoch marked;
    False when the folds recorded no curves.

    The training loss is the tested model's; the validation curves are those the choice was made on: the
    fold's own fit (`val`), its selection pass (`refit`: the carve-out, or the monitored figure pooled over
    inner folds), none for `last` (it has no validation subjects). Each fold records its curves itself
    (fold.json `details.curves`), whatever loggers the run had."""
    if not any((f.get("details") or {}).get("curves") for f in folds):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("train/loss", "training loss (tested model)"), ("val/loss", "validation loss"),
              ("val/uf1", "validation UF1"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for fold in folds:
        details = fold.get("details") or {}
        curves = details.get("curves") or {}
        tested, chosen_on = curves.get("tested") or {}, curves.get("chosen_on") or curves.get("tested") or {}
        series = {"train/loss": (tested.get("epoch", []), tested.get("train/loss"))}
        if details.get("mode") != "last":
            for key in ("val/loss", "val/uf1"):
                series[key] = (chosen_on.get("epoch", []), chosen_on.get(key))
            if details.get("splits", 1) > 1 and details.get("monitor") == "val/uf1" and details.get("scores"):
                series["val/uf1"] = (list(range(len(details["scores"]))), details["scores"])
        chosen = details.get("epochs", 0) - 1 if details.get("mode") == "refit" else details.get("selected_epoch")
        for ax, (key, _) in zip(axes, panels):
            epochs, values = series.get(key, ([], None))
            points = [(e, v) for e, v in zip(epochs, values or []) if v is not None]
            if not points:
                continue
            (line,) = ax.plot(*zip(*points), linewidth=1, label=f"fold {fold['index']}")
            marked = dict(points)
            if key == "val/uf1" and chosen in marked:
                ax.plot([chosen], [marked[chosen]], "o", color=line.get_color())
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].set_ylim(0, 1)
    if len(folds) <= 12 and axes[0].get_lines():
        axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("one line per fold; dot: the epoch chosen on validation subjects (never on test subjects)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def print_results(results: dict) -> None:
    """A short table: pooled headline figures, then mean and std over folds."""
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
    if results.get("optimistic"):
        rich.print(Text(f"{results['optimistic']['label']}: UF1 {m['optimistic/uf1']:.4f} "
                        f"({m['optimistic_gap/uf1']:+.4f}), UAR {m['optimistic/uar']:.4f}", style="yellow"))
