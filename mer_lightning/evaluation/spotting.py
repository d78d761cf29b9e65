"""The MEGC spotting metric and the spot-then-recognise score (STRS), exactly as the challenges compute them.

Spotting (MEGC 2020/2021 organisers' code, `Baseline-project-for-MEGC2020_spotting`'s `result_helper.py`;
MEGC 2019 the same for micro only): for each dataset and type (micro, macro), per video,

    iou(a, b) = |a ∩ b| / |a ∪ b| over inclusive frame numbers (a frame counts once)
    hit       = the ground truths g with some prediction p of the type, iou(p, g) >= 0.5  (each g once)
    TP += |hit|;  FP += |P| - |hit|;  FN += |G| - |hit|

pooled over the dataset's videos (counts summed, not F1 averaged per video); precision, recall and F1
from the pooled counts; the overall F1 sums the micro and macro counts first. `spotting_metrics` gives
these per dataset and pooled over every dataset in the frames (counts summed).

Check figure (CAS(ME)^2, MDMD baseline): 130 ground truths found, 6,558 predictions, 357 ground
truths -> F1 0.0376. The three numbers are what `result_helper.pred_clips_analysis` prints
(`N_find_labels`, `N_clips`, `N_labels`): TP 130, FP 6,428, FN 227. (Read as TP / FP / FN they would
give 0.0362.)

STRS (MEGC 2023-2025, `genbing99/STRS-Metric`): F1_spot is the micro spotting F1 above; the analysis is
on matched pairs, each ground truth found paired with its best-IoU prediction, kept when the ground
truth's emotion is one of the classes: per class c, one-vs-rest precision P_c and recall R_c (0 when
undefined), F1_analysis = 2 mean(P) mean(R) / (mean(P) + mean(R)), STRS = F1_spot x F1_analysis. UF1
(mean of the per-class F1) and UAR (mean of the per-class recall) are reported as they are defined;
the reference script reports the mean precision as "UAR".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

TYPES = ("micro", "macro")
IOU_THRESHOLD = 0.5


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two inclusive frame intervals (start, end)."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Counts:
    """Pooled spotting counts and the figures from them (0 where undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def match_video(truth: Sequence[tuple[int, int]], predicted: Sequence[tuple[int, int]],
                threshold: float = IOU_THRESHOLD) -> tuple[Counts, list[tuple[int, int, float]]]:
    """One video, one type: the counts, and the pairs (truth index, best prediction index, IoU) of every
    ground truth found (the MEGC formula: each ground truth counts once)."""
    pairs = []
    for g, gt in enumerate(truth):
        scores = [iou(p, gt) for p in predicted]
        best = int(np.argmax(scores)) if scores else -1
        if best >= 0 and scores[best] >= threshold:
            pairs.append((g, best, scores[best]))
    return Counts(len(pairs), len(predicted) - len(pairs), len(truth) - len(pairs)), pairs


def dataset_of(video: str) -> str:
    """The dataset of a video id `<dataset>/<subject>/<video>`."""
    return str(video).split("/", 1)[0]


def _spans(frame: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(frame.start.astype(int), frame.end.astype(int)))


def spotting_counts(truth: pd.DataFrame, predicted: pd.DataFrame, videos: Iterable[str] | None = None
                    ) -> dict[str, dict[str, Counts]]:
    """dataset -> type -> pooled Counts, over `videos` (default: every video with ground truth or
    predictions). Frames have columns video, start, end, type (inclusive frame numbers)."""
    names = sorted(set(videos) if videos is not None else set(truth.video) | set(predicted.video))
    by_truth = {key: part for key, part in truth.groupby(["video", "type"])}
    by_pred = {key: part for key, part in predicted.groupby(["video", "type"])}
    empty = truth.iloc[:0]
    out: dict[str, dict[str, Counts]] = {}
    for video in names:
        per_type = out.setdefault(dataset_of(video), {t: Counts() for t in TYPES})
        for kind in TYPES:
            counts, _ = match_video(_spans(by_truth.get((video, kind), empty)), _spans(by_pred.get((video, kind), empty)))
            per_type[kind] = per_type[kind] + counts
    return out


def figures(per_type: dict[str, Counts], prefix: str) -> dict[str, float]:
    """`<prefix>f1`, `<prefix>f1_micro`, `<prefix>f1_macro`, precision, recall and TP / FP / FN of each and overall."""
    overall = per_type["micro"] + per_type["macro"]
    out = {}
    for suffix, counts in (("", overall), ("_micro", per_type["micro"]), ("_macro", per_type["macro"])):
        for key, value in counts.as_dict().items():
            out[f"{prefix}{key}{suffix}"] = value
    return out


def spotting_metrics(truth: pd.DataFrame, predicted: pd.DataFrame, videos: Iterable[str] | None = None) -> dict:
    """`metrics`: pooled over every dataset (`spot/f1`, `spot/f1_micro`, `spot/f1_macro`, `spot/precision`,
    `spot/recall`, `spot/tp`, ... per type); `per_dataset`: dataset -> the same figures without the prefix."""
    counts = spotting_counts(truth, predicted, videos)
    pooled = {t: sum((c[t] for c in counts.values()), Counts()) for t in TYPES}
    return {"metrics": figures(pooled, "spot/"),
            "per_dataset": {name: figures(per_type, "") for name, per_type in counts.items()}}


def analysis_pairs(truth: pd.DataFrame, predicted: pd.DataFrame, kind: str = "micro") -> pd.DataFrame:
    """The matched (ground truth, prediction) pairs of `kind` with both emotions: columns video, start, end
    (the ground truth's), true, predicted, iou. Each ground truth found once, with its best-IoU prediction."""
    rows = []
    truth, predicted = truth[truth.type == kind], predicted[predicted.type == kind]
    by_pred = {video: part for video, part in predicted.groupby("video")}
    for video, part in truth.groupby("video"):
        mine = by_pred.get(video, predicted.iloc[:0])
        _, pairs = match_video(_spans(part), _spans(mine))
        for g, p, score in pairs:
            gt, pr = part.iloc[g], mine.iloc[p]
            rows.append({"video": video, "start": int(gt.start), "end": int(gt.end), "true": gt.get("emotion", ""),
                         "predicted": pr.get("emotion", ""), "iou": score})
    return pd.DataFrame(rows, columns=["video", "start", "end", "true", "predicted", "iou"])


def analysis_figures(pairs: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Per-class one-vs-rest precision / recall / F1 on the pairs whose true class is one of `classes`; their
    means, F1_analysis (from the mean precision and recall), UF1 and UAR."""
    kept = pairs[pairs.true.isin(list(classes))] if len(pairs) else pairs
    per_class = {}
    for name in classes:
        truth = (kept.true == name).to_numpy() if len(kept) else np.zeros(0, bool)
        guess = (kept.predicted == name).to_numpy() if len(kept) else np.zeros(0, bool)
        c = Counts(int((truth & guess).sum()), int((~truth & guess).sum()), int((truth & ~guess).sum()))
        per_class[name] = {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": int(truth.sum())}
    p = float(np.mean([v["precision"] for v in per_class.values()])) if per_class else 0.0
    r = float(np.mean([v["recall"] for v in per_class.values()])) if per_class else 0.0
    return {"n": int(len(kept)), "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "uf1": float(np.mean([v["f1"] for v in per_class.values()])) if per_class else 0.0,
            "uar": r, "accuracy": float((kept.true == kept.predicted).mean()) if len(kept) else 0.0,
            "per_class": per_class}


def strs(truth: pd.DataFrame, predicted: pd.DataFrame, classes: Sequence[str],
         videos: Iterable[str] | None = None) -> dict:
    """The spot-then-recognise figures: `str/strs`, `str/f1_spot` (micro), `str/f1_analysis`, `str/uf1`,
    `str/uar`, `str/precision_analysis`, `str/recall_analysis`, `str/pairs`; `analysis` has the per-class
    detail. Frames need an `emotion` column (class names; '' when none was given)."""
    counts = spotting_counts(truth, predicted, videos)
    micro = sum((c["micro"] for c in counts.values()), Counts())
    pairs = analysis_pairs(truth, predicted)
    analysis = analysis_figures(pairs, classes)
    metrics = {"str/strs": micro.f1 * analysis["f1"], "str/f1_spot": micro.f1, "str/f1_analysis": analysis["f1"],
               "str/uf1": analysis["uf1"], "str/uar": analysis["uar"], "str/accuracy": analysis["accuracy"],
               "str/precision_analysis": analysis["precision"], "str/recall_analysis": analysis["recall"],
               "str/pairs": analysis["n"]}
    return {"metrics": metrics, "analysis": analysis}
