"""From a per-position score to spotted intervals (SOFTNet's peak detection), and the choice of p.

For one type (micro or macro) and its window k (grid steps):

1. **Smooth**: the mean of the scores over positions [t - k, t + k] (fewer at the ends).
2. **Threshold**: T = mean + p (max - mean) of the smoothed curve, per video.
3. **Peaks**: local maxima above T at least k positions apart (`scipy.signal.find_peaks`).
4. **Intervals**: each peak, placed at its window's centre c (a frame number), becomes
   [c - k stride, c + k stride] (clipped to the video): 2 k stride + 1 frames, about the mean length of
   the type's intervals (k = int((N + 1) / 2)), typed as the pass's type and scored by the peak's
   height. Of intervals of one type that overlap, the highest peak's is kept (as the MEGC 2020
   baseline's non-maximum suppression; measured on the embedded videos: in-sample F1 0.67 -> 0.77).
5. **Micro vs macro**: by length, through the window: the micro pass (k from micro lengths) spots
   micro-length intervals, the macro pass macro-length ones; a micro interval that overlaps a spotted
   macro interval is dropped (a macro-expression's onset and offset are fast motions too).

`choose_p` picks p per type on the training subjects' videos: the value of a grid that maximises the
pooled F1 of that type (ties: the middle of the tied values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.signal import find_peaks

from mer_lightning.evaluation.spotting import Counts, match_video


@dataclass(frozen=True)
class Spot:
    """A spotted interval: inclusive frame numbers, its type and the score of its peak."""

    start: int
    apex: int
    end: int
    type: str
    score: float


def smooth(curve: np.ndarray, k: int) -> np.ndarray:
    """The mean over positions [t - k, t + k] (fewer at the ends)."""
    curve = np.asarray(curve, np.float64)
    if not len(curve) or k < 1:
        return curve
    kernel = np.ones(2 * k + 1)
    return np.convolve(curve, kernel, "same") / np.convolve(np.ones_like(curve), kernel, "same")


def threshold(curve: np.ndarray, p: float) -> float:
    """mean + p (max - mean) of `curve` (inf when it is empty)."""
    if not len(curve):
        return float("inf")
    mean = float(np.mean(curve))
    return mean + p * (float(np.max(curve)) - mean)


def spots(curve: np.ndarray, centres: np.ndarray, k: int, stride: int, p: float, kind: str, first: int,
          last: int) -> list[Spot]:
    """The intervals of one (already smoothed) curve: peaks above the threshold at least k apart, each
    [c - k stride, c + k stride] around its window's centre c, overlapping ones reduced to the highest
    (see the module doc)."""
    if not len(curve):
        return []
    found, _ = find_peaks(np.concatenate([[-np.inf], curve, [-np.inf]]), height=threshold(curve, p),
                          distance=max(1, int(k)))
    out = []
    half = k * stride
    for index in found - 1:
        centre = float(centres[index])
        start, end = max(first, int(round(centre - half))), min(last, int(round(centre + half)))
        if end >= start:
            out.append(Spot(start, min(max(int(round(centre)), start), end), end, kind, float(curve[index])))
    return keep_highest(out)


def keep_highest(found: list[Spot]) -> list[Spot]:
    """Of spots that overlap, the one with the highest score (ties: the earlier); in time order."""
    kept: list[Spot] = []
    for spot in sorted(found, key=lambda s: (-s.score, s.start)):
        if not any(overlaps(spot, other) for other in kept):
            kept.append(spot)
    return sorted(kept, key=lambda s: s.start)


def overlaps(a: Spot, b: Spot) -> bool:
    return a.start <= b.end and b.start <= a.end


def drop_inside_macro(micro: list[Spot], macro: list[Spot]) -> list[Spot]:
    """The micro intervals that overlap no macro interval."""
    return [m for m in micro if not any(overlaps(m, big) for big in macro)]


def type_f1(predicted: dict[str, list[Spot]], truth: dict[str, list[tuple[int, int]]], kind: str) -> Counts:
    """Pooled counts of `kind` over the videos of `truth` (video -> its ground truths of that type)."""
    total = Counts()
    for video, spans in truth.items():
        counts, _ = match_video(spans, [(s.start, s.end) for s in predicted.get(video, []) if s.type == kind])
        total = total + counts
    return total


def choose_p(candidates, truth: dict[str, list[tuple[int, int]]], kind: str, grid: Sequence[float]
             ) -> tuple[float, float, list[float]]:
    """(p, its F1, the F1 of every p of `grid`): `candidates(p)` gives video -> spots for a p."""
    scores = [type_f1(candidates(p), truth, kind).f1 for p in grid]
    best = max(scores) if scores else 0.0
    tied = [p for p, s in zip(grid, scores) if s == best]
    return float(tied[len(tied) // 2]), float(best), scores
