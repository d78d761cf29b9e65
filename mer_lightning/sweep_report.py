"""Collect a multirun's jobs into one comparison: `python -m mer_lightning.sweep_report <multirun dir>`.

Reads every job's `results.json` (and `.hydra/overrides.yaml`) under the sweep directory and writes
`sweep.csv`, `sweep.md` and `sweep.png` there: one row per job with its overrides, its objective
(`optimized_metric`: pooled validation UF1 by default), the pooled test UF1 / UAR / accuracy beside
it (reported, never used to rank) and run time, ranked by the objective; failed and preempted jobs
are listed with their error. It also runs by itself at the end of every multirun (a Hydra callback).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from mer_lightning.utils.io import write_csv, write_text

HIDDEN = ("hydra.", "paths.", "extras.")


def job_row(job_dir: Path) -> dict | None:
    results_path, overrides_path = job_dir / "results.json", job_dir / ".hydra" / "overrides.yaml"
    if not overrides_path.is_file():
        return None
    overrides = [o for o in yaml.safe_load(overrides_path.read_text()) or [] if not o.lstrip("+~").startswith(HIDDEN)]
    row = {"job": job_dir.name, "overrides": " ".join(overrides)}
    if not results_path.is_file():
        return {**row, "status": "failed", "error": "no results.json (the job did not finish)"}
    results = json.loads(results_path.read_text())
    if results.get("status") in ("failed", "preempted"):
        return {**row, "status": results["status"], "error": results.get("error", "")}
    metrics, objective = results.get("metrics", {}), results.get("objective") or {}
    value = objective.get("value")
    status = "ok" if value is not None or not objective else "failed"
    note = "; ".join(results.get("not_a_protocol_result") or [])
    return {**row, "status": status, "objective": objective.get("metric"), "objective_value": value,
            "val_uf1": metrics.get("protocol/val_uf1"), "uf1": metrics.get("protocol/uf1"),
            "uar": metrics.get("protocol/uar"), "acc": metrics.get("protocol/acc"),
            "reference_uf1": metrics.get("reference/uf1"), "vs_reference_uf1": metrics.get("vs_reference/uf1"),
            "optimistic_uf1": metrics.get("optimistic/uf1"),
            "selection": (results.get("selection") or {}).get("mode"),
            "folds": len(results.get("folds", [])), "time_s": results.get("elapsed_s"),
            "optimistic": bool(objective.get("optimistic")),
            "error": "" if status == "ok" else f"no value for the objective {objective.get('metric')}",
            "note": f"not a protocol result: {note}" if note else ""}


def collect(sweep_dir: Path) -> pd.DataFrame:
    rows = [r for d in sorted(Path(sweep_dir).iterdir(), key=lambda p: (len(p.name), p.name)) if d.is_dir()
            for r in [job_row(d)] if r is not None]
    columns = ["job", "status", "overrides", "selection", "objective", "objective_value", "val_uf1", "uf1", "uar", "acc",
               "reference_uf1", "vs_reference_uf1", "optimistic_uf1", "folds", "time_s", "optimistic", "error", "note"]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    frame["_ok"] = frame.status == "ok"
    frame = frame.sort_values(["_ok", "objective_value"], ascending=[False, False], na_position="last")
    return frame.drop(columns="_ok").reset_index(drop=True)


def first_line(text) -> str:
    """An error's first non-empty line (a traceback or a multi-line message would break the table)."""
    lines = [line.strip() for line in str(text if isinstance(text, str) else "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def cell(text, limit: int | None = None) -> str:
    """Text that stays inside one markdown table cell: one line, `|` escaped, at most `limit` characters."""
    text = " ".join(str(text if isinstance(text, str) else "").split())
    if limit and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|")


def sweep_markdown(frame: pd.DataFrame) -> str:
    objectives = sorted({str(o) for o in frame.objective.dropna()}) or ["optimized_metric"]
    lines = ["# Sweep", ""]
    if frame.optimistic.map(lambda v: v is True or v == 1).any():
        lines += [f"> **Optimistic figures**: ranked by a test figure ({', '.join(objectives)}, "
                  "allow_test_selection=true); the best job's test figures overstate what a new subject would see.", ""]
    if frame.optimistic_uf1.notna().any():
        lines += ["> Some jobs ran with protocol.optimistic=true: their `optimistic_uf1` in sweep.csv is the epoch chosen "
                  "on the test subject, as in published code; not a result, never used to rank.", ""]
    lines += [f"Ranked by the objective ({', '.join(objectives)}; pooled over each job's folds). The test "
              "figures beside it are reported, never used to rank or select. Reference: the classical reference "
              "(`model=linear`, converged) on each job's folds, and the job's test UF1 minus it.", "",
              "| rank | job | overrides | selection | objective | test UF1 | test UAR | test acc | reference UF1 | "
              "vs reference | folds | time (s) | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, spec=".4f": "" if pd.isna(v) else format(v, spec)  # noqa: E731
    ok, failed = frame[frame.status == "ok"], frame[frame.status != "ok"]
    for rank, row in enumerate(ok.itertuples(index=False), start=1):
        status = f"ok ({row.note})" if isinstance(row.note, str) and row.note else "ok"
        lines.append(f"| {rank} | {row.job} | `{cell(row.overrides)}` | {row.selection if isinstance(row.selection, str) else ''} "
                     f"| {fmt(row.objective_value)} | {fmt(row.uf1)} | {fmt(row.uar)} | {fmt(row.acc)} | "
                     f"{fmt(row.reference_uf1)} | {fmt(row.vs_reference_uf1, '+.4f')} | {fmt(row.folds, '.0f')} | "
                     f"{fmt(row.time_s, '.1f')} | {status} |")
    if ok.empty:
        lines.append("| | | no job finished | | | | | | | | | | |")
    if not failed.empty:
        lines += ["", f"## {len(failed)} job(s) failed or stopped (not ranked)", "", "| job | overrides | status |",
                  "|---|---|---|"]
        lines += [f"| {row.job} | `{cell(row.overrides)}` | {row.status}: {cell(first_line(row.error), 200)} |"
                  for row in failed.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def sweep_plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = frame[frame.status == "ok"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.45 * max(len(ok), 1)))
    labels = [f"#{j} {o}"[:70] for j, o in zip(ok.job, ok.overrides)]
    ax.barh(range(len(ok)), ok.objective_value, color="tab:blue", label="objective (ranks)")
    ax.scatter(ok.uf1, range(len(ok)), color="tab:orange", zorder=3, label="test UF1 (reported)")
    if ok.reference_uf1.notna().any():
        ax.scatter(ok.reference_uf1, range(len(ok)), color="black", marker="|", s=200, zorder=3,
                   label="reference (linear) test UF1")
    ax.set_yticks(range(len(ok)), labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pooled over folds")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sweep_report(sweep_dir: str | Path) -> pd.DataFrame:
    sweep_dir = Path(sweep_dir)
    frame = collect(sweep_dir)
    write_csv(sweep_dir / "sweep.csv", frame)
    write_text(sweep_dir / "sweep.md", sweep_markdown(frame))
    if (frame.status == "ok").any():  # no picture of nothing
        sweep_plot(frame, sweep_dir / "sweep.png")
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (outputs/train/multiruns/<date>_<time>)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.exit(2, f"error: {args.sweep_dir} is not a directory\n")
    if (args.sweep_dir / "results.json").is_file() or (args.sweep_dir / "folds").is_dir():
        parser.exit(2, f"error: {args.sweep_dir} is a single run (its report is results.md there); give a multirun "
                       "directory, whose numbered job folders each hold .hydra/overrides.yaml "
                       "(outputs/train/multiruns/<date>_<time>)\n")
    frame = write_sweep_report(args.sweep_dir)
    if frame.empty:
        parser.exit(2, f"error: no job folders in {args.sweep_dir}: expected numbered folders holding "
                       ".hydra/overrides.yaml (a multirun directory: outputs/train/multiruns/<date>_<time>)\n")
    print(sweep_markdown(frame))
    print(f"wrote {args.sweep_dir / 'sweep.csv'}, sweep.md" + (" and sweep.png" if (frame.status == "ok").any() else ""))


if __name__ == "__main__":
    main()
