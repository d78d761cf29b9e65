"""A spotting run's report: pooled MEGC figures (and STRS), `intervals.csv`, `ground_truth.csv`, `results.json`,
`results.md`, a picture per video, the printed table and the loggers' summary run.

- `intervals.csv`: every spotted interval of every tested video, `video,start,end,type,score` (and
  `emotion`, the recogniser's class, with `recognise=true`); inclusive frame numbers as in the release;
  `video` is the video's id `<dataset>/<subject>/<video>`.
- `ground_truth.csv`: the annotated intervals of the same videos, `video,start,end,type` (and `emotion`:
  the class under `data.classes`, or the release's emotion when it is outside them).
- `results.json`: `metrics` (`spot/f1`, `spot/f1_micro`, `spot/f1_macro`, precision, recall, TP / FP / FN
  overall and per type, pooled over every dataset; `str/*` with `recognise=true`), `per_dataset`, `folds`
  (each fold's choices and figures), `str` (the analysis per class), `throughput`, `skipped`, `notes`,
  `gaps`, `complete`.
- `videos/<dataset>_<subject>_<video>.png`: per video the score curve of each type, its threshold, the
  true and the spotted intervals.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import rich
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from rich.text import Text

from mer_lightning.data.labels import class_of, scheme_lookup
from mer_lightning.data.videos import TYPES, VideoTable
from mer_lightning.evaluation.dashboard import log_spot_summary
from mer_lightning.evaluation.spotting import spotting_metrics, strs
from mer_lightning.utils.io import write_csv, write_json, write_text

log = logging.getLogger(__name__)
MDMD = {"cas2": (0.1196, 0.0082, 0.0376), "samm_lv": (0.0629, 0.0364, 0.0445)}  # macro / micro / overall F1


def ground_truth(table: VideoTable, videos: list[str], classes_option=None) -> pd.DataFrame:
    """The annotated intervals of `videos` (ids), with the emotion as a class of `classes_option` when given."""
    lookup, classes = None, None
    if classes_option is not None:
        classes, lookup = scheme_lookup(classes_option, {iv.emotion for v in table for iv in v.intervals} or {"x", "y"})
    wanted = set(videos)
    rows = []
    for video in table:
        if video.id not in wanted:
            continue
        for iv in video.intervals:
            row = {"video": video.id, "start": iv.start, "end": iv.end, "type": iv.type}
            if lookup is not None:
                label = class_of(lookup, iv.emotion, video.origin)
                row["emotion"] = classes[label] if label is not None else iv.emotion
            rows.append(row)
    columns = ["video", "start", "end", "type"] + (["emotion"] if lookup is not None else [])
    return pd.DataFrame(rows, columns=columns)


def pool_and_report(cfg: DictConfig, data, table: VideoTable, folds, fold_results, out_dir: Path,
                    partial: list[str], timing: dict, elapsed: float) -> dict:
    """Pool the folds, compute the figures and write every output (see the module doc); returns results."""
    recognising = bool(cfg.get("recognise", False))
    tested = [table[i].id for f in folds for i in f.test]
    intervals = pd.concat([r.intervals for r in fold_results], ignore_index=True) if fold_results else pd.DataFrame()
    columns = ["video", "start", "end", "type", "score"] + (["emotion"] if recognising else [])
    intervals = intervals.reindex(columns=columns).fillna({"emotion": ""} if recognising else {})
    truth = ground_truth(table, tested, data.classes_option if recognising else None)
    scored = spotting_metrics(truth, intervals, tested)
    metrics = dict(scored["metrics"])
    analysis = None
    if recognising:
        classes = list(data.class_names)
        figures = strs(truth, intervals, classes, tested)
        metrics.update(figures["metrics"])
        analysis = figures["analysis"]
    per_fold = []
    for fold, result in zip(folds, fold_results):
        videos = [table[i].id for i in fold.test]
        mine = spotting_metrics(truth[truth.video.isin(videos)], result.intervals, videos)["metrics"]
        per_fold.append({"index": fold.index, "test_subjects": fold.test_subjects, "videos": len(videos),
                         "f1": mine["spot/f1"], "f1_micro": mine["spot/f1_micro"], "f1_macro": mine["spot/f1_macro"],
                         **{k: v for k, v in result.details.items() if k != "gaps"}})
    gaps = {video: lines for r in fold_results for video, lines in (r.details.get("gaps") or {}).items()}
    for video, lines in gaps.items():
        log.warning("%s: %d frame(s) could not be read and were bridged with the previous one (first: %s)", video,
                    len(lines), lines[0])
    seconds = timing.get("seconds") or 0.0
    results = {
        "title": f"spot: {data.name} / {cfg.spotter.name}" + (f" + {cfg.model.get('name', '')}" if recognising else ""),
        "complete": not partial, "not_a_protocol_result": list(partial),
        "metrics": metrics, "per_dataset": scored["per_dataset"], "str": analysis,
        "folds": per_fold, "spotter": OmegaConf.to_container(cfg.spotter, resolve=True),
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True), "recognise": recognising,
        "videos": len(tested), "intervals": {t: int((truth.type == t).sum()) for t in TYPES},
        "throughput": {**timing, "frames_per_second": timing["frames"] / seconds if seconds else None},
        "skipped": [s.as_dict() for s in table.skipped], "notes": dict(table.notes), "gaps": gaps,
        "elapsed_s": elapsed,
    }
    write_csv(out_dir / "intervals.csv", intervals)
    write_csv(out_dir / "ground_truth.csv", truth)
    write_json(out_dir / "results.json", results)
    pictures = video_pictures(out_dir / "videos", table, tested, fold_results, truth, intervals)
    write_text(out_dir / "results.md", results_markdown(results, data.name, pictures))
    log_spot_summary(cfg, results, out_dir, pooled_frame(results))
    print_spot_results(results)
    m = results["metrics"]
    log.info("Spotting F1 %.4f (micro %.4f, macro %.4f) over %d video(s)%s. Results: %s", m["spot/f1"],
             m["spot/f1_micro"], m["spot/f1_macro"], len(tested),
             f"; STRS {m['str/strs']:.4f}" if recognising else "", out_dir)
    return results


def _counts(m: dict, suffix: str = "") -> str:
    return f"{m[f'spot/tp{suffix}']} / {m[f'spot/fp{suffix}']} / {m[f'spot/fn{suffix}']}"


def results_markdown(results: dict, dataset: str, pictures: list[str]) -> str:
    """The table to paste into a paper, with how each figure was computed."""
    m = results["metrics"]
    lines = []
    if results["not_a_protocol_result"]:
        lines += [f"> **Not a protocol result** ({'; '.join(results['not_a_protocol_result'])}): a partial run; do "
                  "not report these figures.", ""]
    spotter = results["spotter"]
    lines += [f"# {results['title']}", "",
              f"Protocol: **{results['protocol']['name']}** over the videos' subjects, {len(results['folds'])} "
              f"fold(s), {results['videos']} test video(s), {results['intervals']['micro']} micro + "
              f"{results['intervals']['macro']} macro ground-truth intervals. Spotter `{spotter['name']}`: k per type "
              "from the training subjects' interval lengths, p per type chosen on the training subjects (fold 0: on "
              f"{(results['folds'][0].get('chosen_on') if results['folds'] else '') or '-'}); never on a test "
              "subject.", "",
              "| type | F1 | precision | recall | TP / FP / FN |", "|---|---|---|---|---|"]
    for name, suffix in (("micro", "_micro"), ("macro", "_macro"), ("overall", "")):
        lines.append(f"| {name} | {m[f'spot/f1{suffix}']:.4f} | {m[f'spot/precision{suffix}']:.4f} | "
                     f"{m[f'spot/recall{suffix}']:.4f} | {_counts(m, suffix)} |")
    lines += ["", "MEGC metric: a spotted interval hits a ground truth of its type when their IoU over inclusive "
              "frames is at least 0.5; each ground truth counts once; TP / FP / FN are summed over the videos "
              "(per dataset, then over datasets) before precision, recall and F1; overall sums micro and macro."]
    if len(results["per_dataset"]) > 1:
        lines += ["", "| dataset | F1 micro | F1 macro | F1 overall |", "|---|---|---|---|"]
        for name, f in results["per_dataset"].items():
            lines.append(f"| {name} | {f['f1_micro']:.4f} | {f['f1_macro']:.4f} | {f['f1']:.4f} |")
    known = MDMD.get(dataset)
    if known:
        lines += ["", f"For scale, the MEGC 2020 baseline (MDMD) on the real {dataset}: F1 macro {known[0]}, micro "
                  f"{known[1]}, overall {known[2]}."]
    if results.get("str"):
        a = results["str"]
        lines += ["", f"Spot-then-recognise: STRS **{m['str/strs']:.4f}** = F1 spot (micro) {m['str/f1_spot']:.4f} x "
                  f"F1 analysis {m['str/f1_analysis']:.4f} (on {a['n']} spotted ground truths with an emotion in the "
                  f"classes); UF1 {m['str/uf1']:.4f}, UAR {m['str/uar']:.4f} (the mean recall: the reference script "
                  "reports the mean precision as UAR).", "", "| class | precision | recall | F1 | pairs |",
                  "|---|---|---|---|---|"]
        for name, c in a["per_class"].items():
            lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    t = results["throughput"]
    if t.get("frames_per_second"):
        lines += ["", f"Features measured on {t['videos']} video(s), {t['frames']} frames in {t['seconds']:.1f} s: "
                  f"{t['frames_per_second']:.0f} frames/s (decoding, face crop, flow, scores)."]
    lines += ["", "| fold | test subjects | videos | F1 | F1 micro | F1 macro | k micro / macro | p micro / macro |",
              "|---|---|---|---|---|---|---|---|"]
    for f in results["folds"]:
        k, p = f.get("k") or {}, f.get("p") or {}
        lines.append(f"| {f['index']} | {', '.join(f['test_subjects'])} | {f['videos']} | {f['f1']:.4f} | "
                     f"{f['f1_micro']:.4f} | {f['f1_macro']:.4f} | {k.get('micro')} / {k.get('macro')} | "
                     f"{p.get('micro')} / {p.get('macro')} |")
    if results["skipped"]:
        lines += ["", f"{len(results['skipped'])} skipped (rows or videos):", ""]
        lines += [f"- {s['sample']}: {s['reason']}" for s in results["skipped"][:50]]
    if results["gaps"]:
        lines += ["", "Frames bridged with the previous one (could not be read):", ""]
        lines += [f"- {video}: {len(g)} frame(s), first: {g[0]}" for video, g in results["gaps"].items()]
    if pictures:
        lines += ["", f"Per video: score curves, thresholds, true and spotted intervals in `videos/` "
                  f"({len(pictures)} pictures), e.g.", "", f"![{pictures[0]}]({pictures[0]})"]
    return "\n".join(lines) + "\n"


def picture_name(video: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", video) + ".png"


def video_pictures(folder: Path, table: VideoTable, tested: list[str], fold_results, truth: pd.DataFrame,
                   intervals: pd.DataFrame) -> list[str]:
    """One PNG per tested video (score curve and threshold per type, true and spotted intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {video: shown for r in fold_results for video, shown in r.curves.items()}
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    by_truth = {v: part for v, part in truth.groupby("video")}
    by_spot = {v: part for v, part in intervals.groupby("video")} if len(intervals) else {}
    videos = {v.id: v for v in table}
    for video in tested:
        shown = curves.get(video) or {}
        fig, axes = plt.subplots(len(TYPES), 1, figsize=(12, 5), sharex=True)
        for ax, kind in zip(axes, TYPES):
            entry = shown.get(kind)
            if entry is not None:
                ax.plot(entry["centres"], entry["curve"], lw=0.9, color="C0", label="score (smoothed)")
                ax.axhline(float(entry["threshold"]), color="C3", ls="--", lw=0.8, label="threshold")
            for part, colour, label in ((by_truth.get(video), "C2", "ground truth"), (by_spot.get(video), "C1", "spotted")):
                if part is None:
                    continue
                for i, row in enumerate(part[part.type == kind].itertuples()):
                    ax.axvspan(row.start, row.end, ymin=0.0 if label == "ground truth" else 0.5,
                               ymax=0.5 if label == "ground truth" else 1.0, color=colour, alpha=0.25,
                               label=label if i == 0 else None)
            ax.set_ylabel(kind)
            ax.legend(fontsize=7, loc="upper right")
        v = videos.get(video)
        axes[-1].set_xlabel(f"frame ({v.fps:g} fps)" if v else "frame")
        fig.suptitle(f"{video}: lower half of a band = ground truth, upper half = spotted", fontsize=9)
        fig.tight_layout()
        name = picture_name(video)
        fig.savefig(folder / name, dpi=80)
        plt.close(fig)
        names.append(f"videos/{name}")
    return names


def print_spot_results(results: dict) -> None:
    """A short table: F1, precision, recall and counts per type; STRS when recognising."""
    if results["not_a_protocol_result"]:
        rich.print(Text("Not a protocol result: " + "; ".join(results["not_a_protocol_result"]), style="bold red"))
    m = results["metrics"]
    table = Table(title=f"Spotting ({results['protocol']['name']}, {len(results['folds'])} fold(s), "
                        f"{results['videos']} videos)")
    for column in ("type", "F1", "precision", "recall", "TP / FP / FN"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for name, suffix in (("micro", "_micro"), ("macro", "_macro"), ("overall", "")):
        table.add_row(name, f"{m[f'spot/f1{suffix}']:.4f}", f"{m[f'spot/precision{suffix}']:.4f}",
                      f"{m[f'spot/recall{suffix}']:.4f}", _counts(m, suffix))
    rich.print(table)
    if "str/strs" in m:
        rich.print(f"STRS {m['str/strs']:.4f} = F1 spot {m['str/f1_spot']:.4f} x F1 analysis {m['str/f1_analysis']:.4f}; "
                   f"UF1 {m['str/uf1']:.4f}, UAR {m['str/uar']:.4f}")


def pooled_frame(results: dict) -> pd.DataFrame:
    """The per-fold table and the pooled row (W&B's table)."""
    rows = [{"fold": str(f["index"]), "test_subjects": " ".join(f["test_subjects"]), "videos": f["videos"],
             "f1": f["f1"], "f1_micro": f["f1_micro"], "f1_macro": f["f1_macro"]} for f in results["folds"]]
    m = results["metrics"]
    rows.append({"fold": "pooled", "test_subjects": "all", "videos": results["videos"], "f1": m["spot/f1"],
                 "f1_micro": m["spot/f1_micro"], "f1_macro": m["spot/f1_macro"]})
    return pd.DataFrame(rows)

