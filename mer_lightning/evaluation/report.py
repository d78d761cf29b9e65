"""Run-directory reports: results.json, results.md, predictions.csv and the confusion matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mer_lightning.data.splits import OFFICIAL_TEST
from mer_lightning.utils.io import write_csv, write_json, write_text


def selection_sentence(folds: list[dict]) -> str:
    """How the tested models were chosen, from what each fold recorded."""
    selections = sorted({f.get("selection") or "last epoch" for f in folds})
    text = f"Model selection: {'; '.join(selections)}"
    if any(s.startswith("best") for s in selections):
        official = any(f["test_subjects"] == [OFFICIAL_TEST] for f in folds)
        text += (", on the official validation part (never the test part)" if official else
                 ", on validation subjects carved from each fold's training subjects (never the test subjects)")
    return text + "."


def results_markdown(results: dict, pictures: list[str] | tuple[str, ...] = ()) -> str:
    """A table a person would paste into a paper, with how each number was computed."""
    p, m, classes = results["pooled"], results["metrics"], results["classes"]
    lines = [f"> {line}" for line in warnings(results)] + [""] if warnings(results) else []
    lines += [
        f"# {results.get('title', 'Results')}",
        "",
        f"Protocol: **{results['protocol']['name']}**, {len(results['folds'])} fold(s), "
        f"{p['n']} test predictions. {selection_sentence(results['folds'])}",
        "",
        "| metric | pooled over folds (headline) | mean ± std over folds |",
        "|---|---|---|",
    ]
    for key, name in (("uf1", "UF1 (macro F1)"), ("uar", "UAR (macro recall)"), ("acc", "Accuracy")):
        mean, std = m.get(f"fold_mean/{key}"), m.get(f"fold_std/{key}")
        spread = f"{mean:.4f} ± {std:.4f}" if mean is not None else "n/a"
        lines.append(f"| {name} | {m[f'protocol/{key}']:.4f} | {spread} |")
    lines += ["", "Pooled: metrics computed once on all folds' test predictions together (MEGC convention). "
              "Mean ± std: metrics computed per fold, then averaged. A class without test samples in a fold "
              "counts in that fold's mean only if the model predicts it (then as 0), as in scikit-learn."]
    if results.get("validation"):
        v, objective = results["validation"], results.get("objective") or {}
        lines += ["", f"Validation (each fold's selected model on its own validation subjects, pooled): "
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
    lines += ["", "| fold | test subjects | n | acc | UF1 | UAR |", "|---|---|---|---|---|---|"]
    for fold in results["folds"]:
        m = fold["metrics"]
        lines.append(f"| {fold['index']} | {', '.join(fold['test_subjects'])} | {m['n']} | {m['acc']:.4f} | "
                     f"{m['uf1']:.4f} | {m['uar']:.4f} |")
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
    """results.json / results.md / predictions.csv, the confusion matrix and (from the CSV logger's
    files, when there are any) the learning curves."""
    write_csv(out_dir / "predictions.csv", predictions)
    write_json(out_dir / "results.json", results)
    confusion_png(out_dir / "confusion_matrix.png", results["pooled"]["confusion"], classes, "pooled")
    pictures = ["confusion_matrix.png"]
    if curves_png(out_dir / "curves.png", out_dir / "csv", results["folds"]):
        pictures.append("curves.png")
    write_text(out_dir / "results.md", results_markdown(results, pictures))


def curves_png(path: Path, csv_dir: Path, folds: list[dict]) -> bool:
    """Train / validation loss and validation UF1 per epoch, one line per fold, the tested epoch marked
    (the best val/uf1 for a best-checkpoint selection, else the last); False when there are no logs."""
    logs = {f["index"]: csv_dir / f"fold_{f['index']:02d}" / "metrics.csv" for f in folds}
    logs = {i: path_ for i, path_ in logs.items() if path_.is_file()}
    if not logs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("train/loss", "training loss"), ("val/loss", "validation loss"), ("val/uf1", "validation UF1"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    selection = {f["index"]: f.get("selection") or "" for f in folds}
    for index, log_path in logs.items():
        frame = pd.read_csv(log_path)
        if "epoch" not in frame:
            continue
        for ax, (key, _) in zip(axes, panels):
            if key not in frame:
                continue
            per_epoch = frame[["epoch", key]].dropna().groupby("epoch")[key].last()
            if per_epoch.empty:
                continue
            (line,) = ax.plot(per_epoch.index, per_epoch.values, linewidth=1, label=f"fold {index}")
            if key == "val/uf1":
                tested = per_epoch.idxmax() if selection[index].startswith("best") else per_epoch.index[-1]
                ax.plot([tested], [per_epoch[tested]], "o", color=line.get_color())
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].set_ylim(0, 1)
    if len(logs) <= 12:
        axes[2].legend(fontsize=7, loc="lower right")
    fig.suptitle("one line per fold; dot: the epoch tested (selected on validation subjects)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
