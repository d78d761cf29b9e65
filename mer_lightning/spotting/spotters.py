"""The spotters (`conf/spotter/<name>.yaml`): a per-position score per type, then SOFTNet's peak detection.

Both measure the same features (`features.py`: the face once per video, flow between positions t and
t + k with the head's motion removed at the nose and the eyes masked) and find intervals the same way
(`peaks.py`); they differ in the score:

- `FlowPeaks` (`spotter=flow_peaks`), training-free: the largest mean flow magnitude over the face's
  regions of interest (brows, nose and cheeks, mouth and chin).
- `SoftNet` (`spotter=softnet`): a shallow CNN per type reads the flow window and regresses SOFTNet's
  pseudo-label (`softnet.py`), trained per fold on the training subjects' videos.

Everything a spotter chooses is chosen on the fold's training subjects only: k per type is
int((N + 1) / 2) grid steps with N the mean length of that type's intervals in the training subjects'
videos (SOFTNet's rule; N in frames / stride), and p per type is the value of `p_grid` with the best F1
of that type: for `FlowPeaks` on every training subject's videos, for `SoftNet` on the validation
subjects carved out of them (`protocol.val_subjects`; the models train without them), or on its
training videos when there are none. Macro first, then micro (a micro interval that overlaps a
spotted macro one is dropped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from omegaconf import DictConfig

from mer_lightning.data.splits import Fold
from mer_lightning.data.videos import TYPES, Video, VideoTable
from mer_lightning.spotting.features import FeatureOptions, FeatureStore
from mer_lightning.spotting.peaks import Spot, choose_p, drop_inside_macro, smooth, spots, threshold
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)
# a type without intervals in the training subjects: its nominal length in seconds (CAS(ME)^2's and SAMM-LV's
# typical micro- and macro-expression)
NOMINAL_SECONDS = {"micro": 0.4, "macro": 1.2}


@dataclass
class FoldContext:
    """What a spotter sees of one fold: the videos of its training part (`train`), validation part
    (`val`, carved from the training subjects) and test part, the features, where to write."""

    cfg: DictConfig
    fold: Fold
    table: VideoTable
    store: FeatureStore
    fold_dir: Path
    current: dict = field(default_factory=dict)

    @property
    def train(self) -> list[Video]:
        return [self.table[i] for i in self.fold.train]

    @property
    def val(self) -> list[Video]:
        return [self.table[i] for i in self.fold.val]

    @property
    def training_subjects(self) -> list[Video]:
        return self.train + self.val

    @property
    def test(self) -> list[Video]:
        return [self.table[i] for i in self.fold.test]


def window_k(videos: Sequence[Video], kind: str, stride_of) -> int:
    """SOFTNet's k of a type, in grid steps: int((N + 1) / 2) with N the mean length in frames of the type's
    intervals in `videos` (their nominal length when there are none), divided by the grid's stride."""
    lengths = [iv.length for v in videos for iv in v.of_type(kind)]
    stride = stride_of(videos[0]) if videos else 1
    fps = videos[0].fps if videos else 30.0
    mean = float(np.mean(lengths)) if lengths else NOMINAL_SECONDS[kind] * fps
    return max(1, int(round(int((mean + 1) / 2) / stride)))


class Spotter:
    """What every spotter shares: its feature options, k per type, peak detection, the choice of p."""

    name = "spotter"

    def __init__(self, name: str, face_size: int, flow: str, window: int, stride: int, eye_margin: float,
                 nose_radius: float, p_grid: Sequence[float]):
        self.name = name
        self.settings = dict(face_size=int(face_size), flow=str(flow), window=int(window), stride=int(stride),
                             eye_margin=float(eye_margin), nose_radius=float(nose_radius))
        self.p_grid = [float(p) for p in p_grid]
        if not self.p_grid or not all(0.0 <= p <= 1.0 for p in self.p_grid):
            raise MERError(f"spotter.p_grid={list(p_grid)}: give threshold fractions p between 0 and 1 "
                           "(T = mean + p (max - mean)), e.g. [0.1, 0.2, ..., 0.9]")
        FeatureOptions(**self.settings)  # a MERError naming a bad option, before any data is read

    def feature_options(self, face: str) -> FeatureOptions:
        return FeatureOptions(face=face, **self.settings)

    def windows(self, videos: Sequence[Video], options: FeatureOptions) -> dict[str, int]:
        return {kind: window_k(videos, kind, lambda v: options.stride_for(v.fps)) for kind in TYPES}

    # -- per fold ---------------------------------------------------------------------------------
    def fit(self, ctx: FoldContext) -> dict:
        """Choose (and for a learned spotter, train) what the fold needs: {"k": ..., "p": ..., ...}."""
        raise NotImplementedError

    def raw_curves(self, ctx: FoldContext, state: dict, video: Video) -> dict[str, tuple[np.ndarray, object]]:
        """type -> (score per position, its VideoFeatures)."""
        raise NotImplementedError

    def curves(self, ctx: FoldContext, state: dict, video: Video) -> dict[str, tuple[np.ndarray, object]]:
        """type -> (smoothed score per position, its VideoFeatures)."""
        return {kind: (smooth(raw, state["k"][kind]), feats)
                for kind, (raw, feats) in self.raw_curves(ctx, state, video).items()}

    def detect(self, curves: dict, video: Video, p: dict[str, float]) -> list[Spot]:
        """The spotted intervals of a video from its smoothed curves: macro, then micro outside them."""
        found = {}
        for kind in ("macro", "micro"):
            curve, feats = curves[kind]
            found[kind] = spots(curve, feats.centres, feats.k, feats.stride, p[kind], kind, video.first, video.last)
        return found["macro"] + drop_inside_macro(found["micro"], found["macro"])

    def choose(self, curves: dict[str, dict], videos: Sequence[Video]) -> tuple[dict[str, float], dict[str, float]]:
        """p per type (macro first, micro given the macro intervals) maximising that type's pooled F1 on
        `videos` (whose smoothed `curves` are given: video id -> type -> (curve, features))."""
        truth = {kind: {v.id: [(iv.start, iv.end) for iv in v.of_type(kind)] for v in videos} for kind in TYPES}

        def macro_at(p: float) -> dict[str, list[Spot]]:
            return {v.id: spots(*_args(curves[v.id]["macro"]), p, "macro", v.first, v.last) for v in videos}

        p_macro, f1_macro, _ = choose_p(macro_at, truth["macro"], "macro", self.p_grid)
        macro = macro_at(p_macro)

        def micro_at(p: float) -> dict[str, list[Spot]]:
            return {v.id: drop_inside_macro(spots(*_args(curves[v.id]["micro"]), p, "micro", v.first, v.last),
                                            macro[v.id]) for v in videos}

        p_micro, f1_micro, _ = choose_p(micro_at, truth["micro"], "micro", self.p_grid)
        return {"macro": p_macro, "micro": p_micro}, {"macro": f1_macro, "micro": f1_micro}

    def predict(self, ctx: FoldContext, state: dict, video: Video) -> tuple[list[Spot], dict]:
        """The video's spotted intervals and, per type, what a picture shows (centres, curve, threshold)."""
        curves = self.curves(ctx, state, video)
        found = self.detect(curves, video, state["p"])
        shown = {kind: {"centres": feats.centres, "curve": curve, "threshold": threshold(curve, state["p"][kind])}
                 for kind, (curve, feats) in curves.items()}
        return found, shown


def _args(entry):
    curve, feats = entry
    return curve, feats.centres, feats.k, feats.stride


class FlowPeaks(Spotter):
    """Training-free: the region-of-interest flow magnitude, SOFTNet's peak detection; k and p chosen on the
    fold's training subjects (every one of them: nothing is trained)."""

    def __init__(self, name: str, face_size: int, flow: str, window: int, stride: int, eye_margin: float,
                 nose_radius: float, p_grid: Sequence[float]):
        super().__init__(name, face_size, flow, window, stride, eye_margin, nose_radius, p_grid)

    def fit(self, ctx: FoldContext) -> dict:
        videos = ctx.training_subjects
        state = {"k": self.windows(videos, ctx.store.options)}
        curves = {v.id: self.curves(ctx, state, v) for v in videos}
        state["p"], state["train_f1"] = self.choose(curves, videos)
        state["chosen_on"] = f"{len(videos)} video(s) of the fold's training subjects"
        return state

    def raw_curves(self, ctx: FoldContext, state: dict, video: Video) -> dict:
        out = {}
        for kind in TYPES:
            feats = ctx.store.get(video, state["k"][kind])
            out[kind] = (feats.score.astype(np.float64), feats)
        return out


class SoftNet(Spotter):
    """SOFTNet-style: per type a shallow CNN on the flow windows regresses the pseudo-label (`softnet.py`),
    trained per fold on its training subjects' videos (`max_epochs`, `batch_size`, `lr`, ...); p chosen on
    out-of-fold scores of every training subject (`inner_folds`), or with `inner_folds: null` on the
    validation subjects carved from them (the models then train without those)."""

    def __init__(self, name: str, face_size: int, flow: str, window: int, stride: int, eye_margin: float,
                 nose_radius: float, p_grid: Sequence[float], max_epochs: int, batch_size: int, lr: float,
                 weight_decay: float, channels: int, dropout: float, inner_folds: int | None):
        super().__init__(name, face_size, flow, window, stride, eye_margin, nose_radius, p_grid)
        if int(window) < 8:
            raise MERError(f"spotter.window={window}: the learned spotter reads flow windows of that many pixels; "
                           "use 16-64 (32)")
        if inner_folds is not None and int(inner_folds) == 1:
            raise MERError("spotter.inner_folds=1: use null (p chosen on the validation subjects) or 2 or more "
                           "(p chosen on out-of-fold scores of every training subject)")
        self.inner_folds = int(inner_folds) if inner_folds else None
        self.max_epochs, self.batch_size = int(max_epochs), int(batch_size)
        self.model_options = dict(window=int(window), channels=int(channels), lr=float(lr),
                                  weight_decay=float(weight_decay), dropout=float(dropout))

    def fit(self, ctx: FoldContext) -> dict:
        if self.inner_folds:
            return self.fit_on_inner_folds(ctx)
        train, val = ctx.train, ctx.val
        state = {"k": self.windows(ctx.training_subjects, ctx.store.options), "models": {}}
        for kind in TYPES:
            state["models"][kind] = self.train_model(ctx, train, kind, state["k"][kind])
        chosen = val or train
        curves = {v.id: self.curves(ctx, state, v) for v in chosen}
        state["p"], state["val_f1" if val else "train_f1"] = self.choose(curves, chosen)
        state["chosen_on"] = (f"{len(val)} video(s) of validation subjects carved from the training subjects"
                              if val else f"its {len(train)} training video(s) (no validation subjects)")
        state["trained_on"] = len(train)
        return state

    def fit_on_inner_folds(self, ctx: FoldContext) -> dict:
        """`inner_folds=n`: the training subjects in n groups; each group's videos are scored by models trained
        on the other groups, p is chosen on those out-of-fold scores of every training video, then the models
        that spot the test videos train on every training subject (no subject wasted on validation alone)."""
        videos = ctx.training_subjects
        subjects = sorted({v.subject for v in videos})
        n = min(self.inner_folds, len(subjects))
        if n < 2:
            raise MERError(f"{ctx.fold.name}: spotter.inner_folds={self.inner_folds} needs 2 training subjects or "
                           f"more; it has {len(subjects)}")
        rng = np.random.default_rng([int(ctx.cfg.seed), ctx.fold.index])
        groups = np.array_split(rng.permutation(subjects), n)
        state = {"k": self.windows(videos, ctx.store.options), "models": {}}
        curves = {}
        for i, held in enumerate(groups):
            held = set(held.tolist())
            inner = {"k": state["k"], "models": {
                kind: self.train_model(ctx, [v for v in videos if v.subject not in held], kind, state["k"][kind],
                                       part=f"inner{i}") for kind in TYPES}}
            curves.update({v.id: self.curves(ctx, inner, v) for v in videos if v.subject in held})
        state["p"], state["val_f1"] = self.choose(curves, videos)
        state["chosen_on"] = (f"out-of-fold scores of its {len(videos)} training video(s) ({n} inner subject folds); "
                              f"the spotting models then trained on every training subject")
        for kind in TYPES:
            state["models"][kind] = self.train_model(ctx, videos, kind, state["k"][kind])
        state["trained_on"] = len(videos)
        return state

    def train_model(self, ctx: FoldContext, videos: Sequence[Video], kind: str, k: int, part: str = ""):
        import hydra
        import lightning.pytorch as pl
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        from mer_lightning.data.splits import fold_seed
        from mer_lightning.evaluation.dashboard import finish_wandb, fold_loggers
        from mer_lightning.spotting.softnet import SpotNet, pseudo_labels

        windows, labels = [], []
        for video in videos:
            feats = ctx.store.get(video, k)
            windows.append(feats.windows)
            labels.append(pseudo_labels(video, feats, kind))
        x, y = np.concatenate(windows), np.concatenate(labels)
        if not len(x):
            raise MERError(f"{ctx.fold.name}: no flow windows in its training videos to train the {kind} spotter on")
        pl.seed_everything(fold_seed(int(ctx.cfg.seed), ctx.fold.index) + (kind == "macro"), workers=True)
        model = SpotNet(**self.model_options)
        model.set_scale(x)
        loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=self.batch_size,
                            shuffle=True)
        suffix = f"_{part}" if part else ""
        loggers = fold_loggers(ctx.cfg, f"fold_{ctx.fold.index:02d}_{kind}{suffix}", ctx.fold, f"spotter_{kind}{suffix}")
        trainer = hydra.utils.instantiate(ctx.cfg.trainer, max_epochs=self.max_epochs, min_epochs=1,
                                          logger=loggers or False, callbacks=[], enable_checkpointing=False,
                                          enable_progress_bar=False, enable_model_summary=False,
                                          limit_val_batches=0, num_sanity_val_steps=0,
                                          default_root_dir=str(ctx.fold_dir))
        trainer.fit(model, train_dataloaders=loader)
        for lg in loggers:
            lg.finalize("success")
        finish_wandb(loggers)
        log.info("%s: %s spotter%s trained on %d windows of %d video(s) (%.0f%% positive), %d epoch(s)", ctx.fold.name,
                 kind, f" ({part})" if part else "", len(x), len(videos), 100 * float(y.mean()), self.max_epochs)
        return model

    def raw_curves(self, ctx: FoldContext, state: dict, video: Video) -> dict:
        out = {}
        for kind in TYPES:
            feats = ctx.store.get(video, state["k"][kind])
            out[kind] = (state["models"][kind].score(feats.windows).astype(np.float64), feats)
        return out
