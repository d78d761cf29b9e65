"""A protocol's folds in parallel: each fold in its own process (joblib's loky workers), on its own GPU
slot when there are GPUs, writing its `folds/fold_XX/` as the sequential runner does.

The parent has already read the data and built the cache; each worker reopens both (the cache is
memory-mapped, so nothing is preprocessed twice), rebuilds the same folds (seeded), trains its fold
with the same per-fold seed and writes it. The parent then reads every finished fold back from
disk, so the pooled result is the sequential one: with the same torch threads per fold
(`runner.threads_per_fold`) the predictions are identical. A failed fold does not stop the
others; the run then stops naming it, and a rerun trains only what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold
from mer_lightning.runner.fingerprint import fingerprint
from mer_lightning.runner.fold import run_fold
from mer_lightning.runner.folds import build_folds, debug_limits, fold_folder, runner_settings
from mer_lightning.runner.pack import packs, run_pack, spans
from mer_lightning.runner.store import write_fold
from mer_lightning.utils.errors import MERError, user_error
from mer_lightning.utils.instantiate import instantiate_strict

log = logging.getLogger(__name__)


def fold_threads(cfg: DictConfig, parallel: int) -> int | None:
    """torch threads for one fold: `runner.threads_per_fold`, else (in parallel) cores / parallel."""
    threads = runner_settings(cfg).get("threads_per_fold")
    if threads:
        return int(threads)
    return max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None


def log_progress(index: int | list[int], done: int, total: int, started: float) -> None:
    """One line per finished fold (or pack of folds): how many are done, and the protocol's ETA."""
    elapsed = time.time() - started
    if isinstance(index, list):
        what = f"folds {spans(index)}" if len(index) > 1 else f"fold {index[0]}"
    else:
        what = f"fold {index}"
    log.info("%s finished (%d/%d folds, %.0f s, ETA %.0f s)", what, done, total, elapsed,
             elapsed / done * (total - done))


def gpu_slots(cfg: DictConfig) -> list[int] | None:
    """One entry per fold that may run at once on a GPU: every visible GPU, `folds_per_gpu` times."""
    if str(cfg.trainer.get("accelerator", "")) not in ("gpu", "cuda", "auto"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    per_gpu = max(1, int(runner_settings(cfg).get("folds_per_gpu") or 1))
    return [gpu for gpu in range(torch.cuda.device_count()) for _ in range(per_gpu)]


def run_folds_in_parallel(cfg: DictConfig, folds: list[Fold], start_from: dict[int, str | None], parallel: int,
                          pack: int = 1) -> None:
    """Train `folds` with up to `parallel` worker processes; each writes its finished fold to disk. With
    `pack` > 1 a worker trains packs of folds together (`pack.py`) instead of one fold at a time."""
    from joblib import Parallel, delayed

    slots = gpu_slots(cfg)
    queue = None
    if slots:
        import multiprocessing

        manager = multiprocessing.Manager()
        queue = manager.Queue()
        for gpu in slots:
            queue.put(gpu)
        parallel = min(parallel, len(slots))
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    threads = fold_threads(cfg, parallel)
    groups = packs(folds, pack, parallel) if pack > 1 else [[f] for f in folds]
    log.info("Training %d fold(s), %d %s at a time%s, %s torch thread(s) each", len(folds), parallel,
             "pack(s) of folds" if pack > 1 else "fold(s)", f" on GPU slots {slots}" if slots else "",
             threads or "default")
    started, done, failed = time.time(), 0, []
    jobs = (delayed(train_fold_in_worker)(plain, [f.index for f in group], {f.index: start_from.get(f.index)
                                                                           for f in group}, threads, queue)
            for group in groups)
    for outcomes in Parallel(n_jobs=parallel, backend="loky", return_as="generator_unordered")(jobs):
        finished = []
        for outcome in outcomes:
            done += 1
            if outcome["error"]:
                failed.append(outcome)
                log.error("fold %d failed (%d/%d): %s", outcome["index"], done, len(folds), outcome["error"])
            else:
                finished.append(outcome["index"])
        if finished:
            log_progress(finished if len(finished) > 1 else finished[0], done, len(folds), started)
    if failed:
        names = ", ".join(f"fold {o['index']} ({o['error']})" for o in failed)
        raise MERError(f"{len(failed)} of {len(folds)} fold(s) failed: {names}. The others are saved under "
                       f"{Path(cfg.paths.output_dir) / 'folds'}; rerun the same command to train only what is missing.")


def train_fold_in_worker(plain: dict, indices: list[int], start_from: dict[int, str | None], threads: int | None,
                         queue) -> list[dict]:
    """Folds in a worker process (one, or a pack trained together): the same steps as the sequential
    runner, each fold written to disk."""
    import torch

    cfg = OmegaConf.create(plain)
    gpu = queue.get() if queue is not None else None
    try:
        if threads:
            torch.set_num_threads(threads)
        if gpu is not None:
            cfg.trainer.devices = [gpu]
        cfg.trainer.enable_progress_bar = False  # folds side by side: their logs say how far they are
        dm = instantiate_strict(cfg.data, "data")
        all_folds = build_folds(cfg, dm.load())
        folds = [f for f in all_folds if f.index in set(indices)]
        current = fingerprint(cfg, dm.preprocessing.options())
        out_dir = Path(cfg.paths.output_dir)
        if len(folds) > 1:
            runs = run_pack(cfg, dm, folds, out_dir, start_from, current)
        else:
            runs = {folds[0].index: run_fold(cfg, dm, folds[0], out_dir, start_from.get(folds[0].index), current,
                                             finished=0)}
        for fold in folds:
            write_fold(fold_folder(out_dir, fold.index), fold, runs[fold.index], dm.class_names, current,
                       debug_limits(cfg), all_folds)
        return [{"index": i, "error": ""} for i in indices]
    except Exception as err:  # noqa: BLE001 - reported by the parent, the other folds go on
        cause = user_error(err) or err
        return [{"index": i, "error": f"{type(cause).__name__}: {cause}"} for i in indices]
    finally:
        if queue is not None and gpu is not None:
            queue.put(gpu)
