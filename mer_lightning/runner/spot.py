"""Run a spotting protocol: every fold of the videos' subjects (LOSO per dataset by default), resuming
finished folds, optionally in parallel, then the pooled MEGC figures and the report.

The folds are the recognition runner's (`folds.build_folds` over the `VideoTable`: the protocol,
`runner.folds`, the leak guard; one folder per fold, `folds.fold_folder`). A fold: the spotter chooses
(and, if learned, trains) what it needs on the fold's training subjects (`spotting/spotters.py`), then
spots the intervals of its test videos; with `recognise=true` a recogniser trained on the training
subjects' labelled micro-expressions classifies the spotted ones (`runner/recognise.py`). A fold is
finished when its `fold.json` exists (written last, after `intervals.csv` and `curves.npz`); a rerun in
the same run directory reuses it when its configuration fingerprint is this run's (else it names the
differing keys), so a crash keeps every finished fold. `runner.parallel=N` measures the features of N
videos at a time and runs N folds at a time, each in its own process.

Bad input is reported, never fatal on its own: a video whose face cannot be found is skipped before the
folds (named, counted, its intervals not evaluated); frames that cannot be decoded are bridged and
listed (`gaps`); the readers' skipped rows are listed. `data.max_skipped_fraction` caps what is skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold
from mer_lightning.data.videos import VideoTable
from mer_lightning.runner.fingerprint import fingerprint
from mer_lightning.runner.folds import (
    build_folds,
    fold_folder,
    partial_reasons,
    runner_settings,
    select_folds,
)
from mer_lightning.runner.parallel import log_progress
from mer_lightning.runner.store import finished_folds, finished_record
from mer_lightning.spotting.features import FeatureOptions, FeatureStore
from mer_lightning.spotting.peaks import Spot
from mer_lightning.spotting.spotters import FoldContext, Spotter
from mer_lightning.utils.errors import MERError, Preempted, user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.io import write_csv, write_json

log = logging.getLogger(__name__)
INTERVAL_COLUMNS = ["video", "start", "end", "type", "score"]
TRUTH_COLUMNS = ["video", "start", "end", "type"]


@dataclass
class FoldSpots:
    """What one fold produced: its test videos' spotted intervals, the curves behind them, its choices."""

    intervals: pd.DataFrame
    curves: dict[str, dict[str, dict[str, np.ndarray]]]  # video -> type -> centres, curve, threshold
    details: dict = field(default_factory=dict)


def spot_fingerprint(cfg: DictConfig, options: FeatureOptions) -> dict:
    """What shapes a fold's intervals: the recognition fingerprint's data, protocol, runner, seed and trainer
    keys, the spotter and its feature options, `recognise`; the model and callbacks only when recognising."""
    current = fingerprint(cfg, {"features": options.key()})
    recognising = bool(cfg.get("recognise", False))
    if not recognising:
        current = {k: v for k, v in current.items() if not k.startswith(("model.", "callbacks."))}
    spotter = OmegaConf.to_container(cfg.spotter, resolve=True)
    current.update({f"spotter.{k}": v for k, v in spotter.items()})
    current["recognise"] = recognising
    return current


def drop_faceless(cfg: DictConfig, table: VideoTable, spotter: Spotter, store: FeatureStore,
                  max_fraction: float) -> VideoTable:
    """The table without the videos whose face cannot be found (each skipped with one line); their features
    never exist, so only videos whose features are not all cached are looked at."""
    ks = set()
    for fold in build_folds(cfg, table):
        ks |= set(spotter.windows([table[i] for i in (*fold.train, *fold.val)], store.options).values())
    faceless = store.faces(table.videos, sorted(ks))
    if not faceless:
        return table
    gone = {v.id for v, _ in faceless}
    for video, reason in faceless:
        table.skip(video.id, f"{reason}: the video is left out ({len(video.intervals)} interval(s) not evaluated)")
        log.warning("Skipped video %s: %s", video.id, reason)
    table.count("videos_without_face", len(gone))
    table.videos = [v for v in table.videos if v.id not in gone]
    if len(gone) / max(len(table) + len(gone), 1) > max_fraction:
        raise MERError(f"{len(gone)} video(s) have no face ({', '.join(sorted(gone)[:3])}, ...): more than "
                       f"data.max_skipped_fraction={max_fraction}; check the frames (or data.face)")
    return table


def run_spotting(cfg: DictConfig, data) -> dict:
    """Spot every selected fold (resuming finished ones) and write the pooled report (returns results.json)."""
    started = time.time()
    out_dir = Path(cfg.paths.output_dir)
    settings = runner_settings(cfg)
    spotter: Spotter = instantiate_strict(cfg.spotter, "spotter")
    table = data.videos()
    options = spotter.feature_options(data.preprocessing.face)
    store = FeatureStore(options, data.cache_dir, data.name)
    parallel = max(1, int(settings.get("parallel") or 1))
    table = drop_faceless(cfg, table, spotter, store, data.max_skipped_fraction)
    log.info("%s: %d video(s) of %d subject(s), %d frames; %d micro + %d macro intervals; %d skipped",
             data.name, len(table), len(table.subjects), sum(v.n_frames for v in table),
             sum(len(v.of_type("micro")) for v in table), sum(len(v.of_type("macro")) for v in table),
             len(table.skipped))
    all_folds = build_folds(cfg, table)
    folds = select_folds(cfg, all_folds)
    current = spot_fingerprint(cfg, options)
    resume = settings.get("resume", True)
    done: dict[int, FoldSpots] = finished_folds(
        folds, out_dir, lambda fold_dir, fold: load_fold(fold_dir, fold, table, current), resume)
    pending = [f for f in folds if f.index not in done]
    if bool(cfg.get("recognise", False)) and pending:
        data.load()  # the labelled micro-expressions as clips, preprocessed once (cached) before any fold
    ks = set()
    for fold in pending:
        ks |= set(spotter.windows([table[i] for i in (*fold.train, *fold.val)], options).values())
    timing = {"videos": 0, "frames": 0, "seconds": 0.0}
    if pending:
        missing = [v for v in table if not all(store.cached(v, k) for k in ks)]
        tick = time.perf_counter()
        store.ensure(table.videos, sorted(ks), jobs=parallel)
        timing = {"videos": len(missing), "frames": sum(v.n_frames for v in missing),
                  "seconds": time.perf_counter() - tick}
    if parallel > 1 and len(pending) > 1:
        run_folds_in_parallel(cfg, pending, [v.id for v in table], parallel)
        for fold in pending:
            done[fold.index] = load_fold(fold_folder(out_dir, fold.index), fold, table, current)
    else:
        for n, fold in enumerate(pending, start=1):
            done[fold.index] = spot_fold(cfg, data, spotter, table, store, fold, out_dir, current, all_folds)
            log_progress(fold.index, n, len(pending), started)
    from mer_lightning.evaluation.spot_report import pool_and_report

    partial = partial_reasons(cfg, [], 0, len(folds), len(all_folds))
    results = pool_and_report(cfg, data, table, folds, [done[f.index] for f in folds], out_dir, partial, timing,
                              time.time() - started)
    return results


def spot_fold(cfg: DictConfig, data, spotter: Spotter, table: VideoTable, store: FeatureStore, fold: Fold,
              out_dir: Path, current: dict, all_folds: list[Fold]) -> FoldSpots:
    """One fold in this process: choose / train on its training subjects, spot its test videos, write it."""
    fold_dir = fold_folder(out_dir, fold.index)
    fold_dir.mkdir(parents=True, exist_ok=True)
    ctx = FoldContext(cfg, fold, table, store, fold_dir, current)
    log.info("Spotting %s: %d training + %d validation video(s), %d test video(s)", fold.name, len(fold.train),
             len(fold.val), len(fold.test))
    tick = time.perf_counter()
    try:
        state = spotter.fit(ctx)
        rows, curves, gaps = [], {}, {}
        spotted: dict[str, list[Spot]] = {}
        for video in ctx.test:
            found, shown = spotter.predict(ctx, state, video)
            spotted[video.id] = found
            curves[video.id] = shown
            rows += [{"video": video.id, "start": s.start, "end": s.end, "type": s.type, "score": s.score}
                     for s in sorted(found, key=lambda s: s.start)]
            bridged = store.get(video, state["k"]["micro"]).gaps
            if bridged:
                gaps[video.id] = bridged
        intervals = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
        details = {"k": state["k"], "p": state["p"], "chosen_on": state.get("chosen_on", ""),
                   **{key: state[key] for key in ("train_f1", "val_f1", "trained_on") if key in state},
                   "stride": {v.id: store.get(v, state["k"]["micro"]).stride for v in ctx.test}, "gaps": gaps}
        if bool(cfg.get("recognise", False)):
            from mer_lightning.runner.recognise import recognise

            emotions, info = recognise(cfg, data, fold, table.videos, spotted, fold_dir, current)
            intervals["emotion"] = [emotions.get((r.video, int(r.start), int(r.end)), "") if r.type == "micro" else ""
                                    for r in intervals.itertuples()]
            details["recogniser"] = info
    except (Preempted, KeyboardInterrupt):
        raise
    except Exception as err:
        if type(err).__name__ == "SIGTERMException":  # Lightning stopped the learned spotter's training
            raise Preempted() from None
        cause = user_error(err)
        if cause is not None:
            raise cause from None
        raise RuntimeError(f"{fold.name} failed ({type(err).__name__}: {err}); finished folds are kept under "
                           f"{out_dir / 'folds'}: rerun the same command to resume from this fold") from err
    details["seconds"] = time.perf_counter() - tick
    result = FoldSpots(intervals, curves, details)
    write_fold(fold_dir, fold, result, current, all_folds)
    return result


def write_fold(fold_dir: Path, fold: Fold, result: FoldSpots, current: dict, all_folds: list[Fold]) -> None:
    """intervals.csv and curves.npz first, fold.json (what makes the fold finished) last."""
    write_csv(fold_dir / "intervals.csv", result.intervals)
    arrays, index = {}, []
    for i, (video, per_type) in enumerate(result.curves.items()):
        index.append(video)
        for kind, shown in per_type.items():
            arrays[f"{i}_{kind}_centres"] = np.asarray(shown["centres"], np.float64)
            arrays[f"{i}_{kind}_curve"] = np.asarray(shown["curve"], np.float32)
            arrays[f"{i}_{kind}_threshold"] = np.asarray(shown["threshold"], np.float64)
    import os
    import uuid

    tmp = fold_dir / f".curves.{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
    try:
        np.savez_compressed(tmp, videos=np.asarray(index), **arrays)
        os.replace(tmp, fold_dir / "curves.npz")
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise MERError(f"could not write {fold_dir / 'curves.npz'} ({err.strerror or err}); finished folds are kept; "
                       "free some disk space, then rerun the same command") from err
    write_json(fold_dir / "fold.json", {"index": fold.index, "test_subjects": fold.test_subjects,
                                        "details": result.details, "fingerprint": current,
                                        "protocol_folds": [f.test_subjects for f in all_folds]})


def load_fold(fold_dir: Path, fold: Fold, table: VideoTable, current: dict) -> FoldSpots | None:
    """A finished fold, if made by this configuration for exactly this fold's test subjects."""
    path = fold_dir / "intervals.csv"
    record = finished_record(fold_dir, path, current, "spot every fold again")
    if record is None:
        return None
    if record.get("test_subjects") != fold.test_subjects:
        raise MERError(f"{fold_dir} holds {record.get('test_subjects')}, not {fold.name}'s test subjects (the data or "
                       "protocol changed since it was written). Use a new output directory or runner.resume=false.")
    intervals = pd.read_csv(path, keep_default_na=False, float_precision="round_trip")
    curves: dict = {}
    with np.load(fold_dir / "curves.npz", allow_pickle=False) as saved:
        for i, video in enumerate(saved["videos"].tolist()):
            curves[video] = {kind: {"centres": saved[f"{i}_{kind}_centres"], "curve": saved[f"{i}_{kind}_curve"],
                                    "threshold": float(saved[f"{i}_{kind}_threshold"])}
                             for kind in ("micro", "macro") if f"{i}_{kind}_curve" in saved}
    return FoldSpots(intervals, curves, record.get("details") or {})


def run_folds_in_parallel(cfg: DictConfig, folds: list[Fold], kept: list[str], parallel: int) -> None:
    """Spot `folds`, `parallel` at a time, each in its own process (the features are on disk already);
    a failed fold does not stop the others, the run then stops naming it."""
    from joblib import Parallel, delayed

    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    log.info("Spotting %d fold(s), %d at a time", len(folds), parallel)
    started, failed = time.time(), []
    jobs = (delayed(spot_fold_in_worker)(plain, f.index, kept) for f in folds)
    for n, outcome in enumerate(Parallel(n_jobs=parallel, backend="loky", return_as="generator_unordered")(jobs),
                                start=1):
        if outcome["error"]:
            failed.append(outcome)
            log.error("fold %d failed (%d/%d): %s", outcome["index"], n, len(folds), outcome["error"])
        else:
            log_progress(outcome["index"], n, len(folds), started)
    if failed:
        names = ", ".join(f"fold {o['index']} ({o['error']})" for o in failed)
        raise MERError(f"{len(failed)} of {len(folds)} fold(s) failed: {names}. The others are saved under "
                       f"{Path(cfg.paths.output_dir) / 'folds'}; rerun the same command to spot only what is missing.")


def spot_fold_in_worker(plain: dict, index: int, kept: list[str]) -> dict:
    """One fold in a worker process: the same steps as in the parent, the fold written to disk."""
    import torch

    cfg = OmegaConf.create(plain)
    try:
        torch.set_num_threads(1)
        data = instantiate_strict(cfg.data, "data")
        spotter = instantiate_strict(cfg.spotter, "spotter")
        table = data.videos()
        keep = set(kept)
        table = VideoTable([v for v in table.videos if v.id in keep], table.skipped, table.notes)
        options = spotter.feature_options(data.preprocessing.face)
        store = FeatureStore(options, data.cache_dir, data.name)
        all_folds = build_folds(cfg, table)
        fold = next(f for f in all_folds if f.index == index)
        spot_fold(cfg, data, spotter, table, store, fold, Path(cfg.paths.output_dir), spot_fingerprint(cfg, options),
                  all_folds)
        return {"index": index, "error": ""}
    except Exception as err:  # noqa: BLE001 - reported by the parent, the other folds go on
        cause = user_error(err) or err
        return {"index": index, "error": f"{type(cause).__name__}: {cause}"}
