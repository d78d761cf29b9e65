"""Spotting: find every micro- and macro-expression interval in long videos (MEGC 2019-2025).

- `features.py`: per video, once: the face (dlib on the first frame, or the crop as it is), frames
  streamed on a grid of `stride` frames, optical flow between positions t and t + k with the head's
  motion removed at the nose and the eyes masked, a region-of-interest magnitude score per position
  and the flow windows a learned spotter reads; cached on disk per (video, k).
- `peaks.py`: smoothing, the threshold mean + p (max - mean), peaks k apart -> intervals, micro vs macro.
- `spotters.py`: `FlowPeaks` (training-free) and `SoftNet` (a per-position score learned per fold,
  `softnet.py`), both with k and p chosen on the fold's training subjects only.

The runner is `mer_lightning/runner/spot.py` (spot-then-recognise, a recogniser trained per fold through
the recognition path: `runner/recognise.py`); the metric and STRS `mer_lightning/evaluation/spotting.py`;
the entry point `python -m mer_lightning.spot` (`mer-spot`).
"""
