"""Packed folds (`runner.pack=K`): K folds' models trained together in one process, as one stacked model
(`models/stacked.py`), by one Lightning training loop (`pack_module.py`: the members, the loop, their
checkpoints); here: which runs can be packed, and a pack's phases (selection, final training, tests).

Small MER models spend most of a fold's time on what surrounds the arithmetic: the training loop, the
optimizer's per-parameter work, the data loader, and setting up a Trainer, loggers and checkpoints for
every fit. A pack pays those once for K folds: every step of the one loop draws a batch for every
fold still training, from that fold's own training subjects, and one optimizer steps every fold's
parameters at once. Everything a fold produces is what it produces alone: its `folds/fold_XX/`
(checkpoint, fold.json, predictions, selection pass), its logger runs, its resume.

**Each fold is the experiment it is alone.** A member (one fit: a fold's selection split, or its final
training) is built exactly as `fold.fit` builds it (the fold's seed, the same initial weights) and
keeps its own random stream (a `torch.Generator` that makes the draws the global generator makes in a
fit of its own: the data loader's seeds, the sampler's permutation, dropout), its own augmentation
stream (the fold's seed), its own optimizer state and step count, learning-rate schedule, BatchNorm
statistics, gradient clipping (its own norm), validation, early stopping, best checkpoint and epoch
budget (in `refit` the folds' budgets differ: a fold whose budget is reached stops changing, its
parameters, optimizer state and statistics frozen, while the others go on).

Execution (`runner.pack_execution`): `loop` runs each member's own forward and backward in turn on
views of the stacks, so on CPU its arithmetic, and its predictions, are bitwise the sequential ones;
`vmap` runs every member at once through `torch.func.vmap` (one grouped kernel per layer: what fills a
GPU), equal to rounding (float sums in another order; the LSTM in plain ops instead of the fused
kernel); `auto`: vmap on a GPU, loop on CPU (where it measured faster: `benchmarks/bench_pack.py`).

What a pack cannot run falls back to one fold after another, saying why (`pack_size`): the linear
reference model (a converged L-BFGS fit: already milliseconds), Lightning debug runs, gradient
accumulation, step or time budgets, mid-epoch validation, 16-bit mixed precision (one loss scaler
would skip every fold's step), several devices per fold, callbacks other than checkpoints, early
stopping and the learning-rate monitor.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mer_lightning.data.splits import Fold, fold_seed
from mer_lightning.evaluation.dashboard import fold_loggers, log_checkpoint
from mer_lightning.models.factory import build_model
from mer_lightning.runner.checkpoints import check_fold, read_meta
from mer_lightning.runner.fold import (
    FoldRun,
    check_predictions,
    close,
    final_run,
    settle_choice,
    stage_callbacks,
    val_run,
)
from mer_lightning.runner.folds import debug_limits, fold_folder, runner_settings
from mer_lightning.runner.pack_module import (
    Member,
    PackedModule,
    checkpoint_epochs,
)
from mer_lightning.runner.selection import (
    Choice,
    EpochPredictions,
    every_training_subject,
    inner_folds,
    load_split,
    save_split,
    selection_mode,
    selection_splits,
)
from mer_lightning.utils.errors import MERError, Preempted, raise_if_preempted, user_error
from mer_lightning.utils.instantiate import instantiate_callbacks

log = logging.getLogger(__name__)
# callbacks a pack emulates per member; any other is a reason to train one fold after another
KNOWN_CALLBACKS = ("ModelCheckpoint", "EarlyStopping", "LearningRateMonitor", "RichProgressBar", "TQDMProgressBar",
                   "ModelSummary", "RichModelSummary")


# -- settings -----------------------------------------------------------------------------------------
def pack_setting(cfg: DictConfig) -> int:
    """`runner.pack`: how many folds train together (1: one after another)."""
    value = runner_settings(cfg).get("pack", 1)
    if value in (None, 0):
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MERError(f"runner.pack={value}: give the number of folds trained together as one stacked model "
                       "(an integer >= 1; 1: one after another)")
    return value




def pack_size(cfg: DictConfig, dm) -> tuple[int, str | None]:
    """The pack size this run can use and, when it must train one fold after another, why."""
    size = pack_setting(cfg)
    if size == 1:
        return 1, None
    reason = unpackable(cfg, dm)
    return (1, reason) if reason else (size, None)


def unpackable(cfg: DictConfig, dm) -> str | None:
    """Why this configuration cannot be packed (None: it can)."""
    if not cfg.get("train", True):
        return "train=false tests saved models"
    if OmegaConf.select(cfg, "protocol.optimistic", default=False):
        return "protocol.optimistic tests every epoch in a fold's own Lightning loop"
    target = str(OmegaConf.select(cfg, "model._target_", default=""))
    if target.endswith("LogisticRegression"):
        return "model=linear is a converged L-BFGS fit per fold (milliseconds; nothing to pack)"
    trainer = cfg.get("trainer") or {}
    for key, bad in (("fast_dev_run", lambda v: bool(v)), ("overfit_batches", lambda v: bool(v)),
                     ("accumulate_grad_batches", lambda v: v not in (None, 1)),
                     ("max_steps", lambda v: v not in (None, -1)), ("min_steps", lambda v: v not in (None, 0, -1)),
                     ("max_time", lambda v: v is not None),
                     ("val_check_interval", lambda v: v not in (None, 1, 1.0)),
                     ("precision", lambda v: str(v).startswith("16")),
                     ("strategy", lambda v: v not in (None, "auto", "single_device")),
                     ("num_nodes", lambda v: v not in (None, 1))):
        if key in trainer and bad(trainer.get(key)):
            return f"trainer.{key}={trainer.get(key)} is not available to packed folds"
    devices = trainer.get("devices")
    if isinstance(devices, int) and devices > 1 or (not isinstance(devices, (int, str)) and devices is not None
                                                   and len(list(devices)) > 1):
        return f"trainer.devices={devices}: a pack runs on one device"
    for name, conf in (cfg.get("callbacks") or {}).items():
        target = str(conf.get("_target_", "")) if isinstance(conf, DictConfig) else ""
        if target and not target.endswith(KNOWN_CALLBACKS):
            return f"callbacks.{name} ({target}) runs only in a fold's own Lightning loop"
    return None


def packs(folds: list[Fold], size: int, workers: int = 1) -> list[list[Fold]]:
    """`folds` in consecutive packs of at most `size`, at least one per worker when there are enough folds."""
    size = max(1, min(size, math.ceil(len(folds) / max(1, workers))))
    return [folds[i:i + size] for i in range(0, len(folds), size)]


# -- a pack's phases ---------------------------------------------------------------------------------------
def build_member(cfg: DictConfig, dm, m: Member, augments: dict) -> None:
    """The member's model as `fold.fit` builds it (the fold's seed, its part's class weights) and its own
    random stream from there."""
    seed = fold_seed(cfg.seed, m.fold.index)
    pl.seed_everything(seed, workers=True, verbose=False)
    m.cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    dm.set_fold(m.part)
    model = build_model(OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True)), dm)
    model.compile_backbone = False  # a packed member runs eagerly
    m.model = model
    m.rng = torch.Generator()
    m.rng.set_state(torch.get_rng_state())
    if dm.train_transform is not None:
        if m.fold.index not in augments:
            augments[m.fold.index] = dm.train_transform.seeded(seed)
        m.augment = augments[m.fold.index]
    if m.stage == "select":
        m.recorder = EpochPredictions()
    selector = None  # as `trainer.checkpoint_callback`: the first ModelCheckpoint
    for cb in instantiate_callbacks(stage_callbacks(cfg, m.stage), m.where, has_logger=True):
        kind = type(cb).__name__
        if kind == "EarlyStopping" and m.part.val and m.stopper is None:
            m.stopper = cb
        elif kind == "ModelCheckpoint" and selector is None:
            selector = cb
    if m.stage == "val" and selector is not None and selector.monitor:
        m.best = {"monitor": selector.monitor, "mode": selector.mode, "filename": selector.filename or "best"}


def last_filename(cfg: DictConfig, stage: str) -> str | None:
    """The file name of the every-epoch checkpoint (the callbacks' ModelCheckpoint without a monitor)."""
    for conf in (stage_callbacks(cfg, stage) or {}).values():
        if isinstance(conf, DictConfig) and str(conf.get("_target_", "")).endswith("ModelCheckpoint") \
                and not conf.get("monitor"):
            return str(conf.get("filename") or "last")
    return None


def train_members(cfg: DictConfig, dm, members: list[Member], current: dict, augments: dict) -> PackedModule:
    """One Lightning fit of the members together (each resumed from its checkpoint when it has one)."""
    started = time.time()
    for m in members:
        build_member(cfg, dm, m, augments)
    module = PackedModule(cfg, dm, members, None, current, members[0].stage)
    module.last_name = last_filename(cfg, members[0].stage)
    offset = 0
    if any(m.start for m in members):
        epochs = {}
        for m in members:  # where each member stands (restored again, fully, on the device)
            if m.start:
                epochs[id(m)] = resumed_epochs(m.start)
        offset = min(epochs.get(id(m), 0) for m in members)
    module.offset = offset
    budget = max(m.budget for m in members)
    overrides = dict(callbacks=[], logger=False, max_epochs=max(budget - offset, 1), min_epochs=0,
                     limit_train_batches=None, limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=None,
                     enable_checkpointing=False, enable_model_summary=False, accumulate_grad_batches=1)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, **overrides)
    log.info("Training %d model(s) as one stacked model (%s, folds %s)", len(members), members[0].stage,
             spans(sorted({m.fold.index for m in members})))
    module.packed_trainer = trainer
    trainer.fit(module)  # (members that have nothing left to train are set up, then the loop stops)
    raise_if_preempted()
    log.info("%d model(s) trained together in %.1f s (%s execution)", len(members), time.time() - started,
             module.execution)
    return module


def spans(indices: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    parts, start = [], None
    for i, k in enumerate(indices):
        if start is None:
            start = k
        if i + 1 == len(indices) or indices[i + 1] != k + 1:
            parts.append(f"{start}-{k}" if k > start else str(k))
            start = None
    return ", ".join(parts)


def resumed_epochs(path: str) -> int:
    return checkpoint_epochs(torch.load(path, map_location="cpu", weights_only=True))




def replay_logs(cfg: DictConfig, m: Member, extra: dict | None = None):
    """The member's per-epoch figures, sent to its own logger runs as its own fit would have sent them."""
    loggers = fold_loggers(cfg, m.version, m.fold, m.stage)
    if loggers:
        steps = 0
        per_epoch = max(1, m.steps // max(1, m.epochs))
        for epoch, row in enumerate(m.history):
            steps += per_epoch
            values = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if values:
                for lg in loggers:
                    lg.log_metrics({**values, "epoch": epoch}, step=steps - 1)
        if extra:
            for lg in loggers:
                lg.log_metrics(extra, step=max(steps - 1, 0))
    return loggers


def test_frames(module: PackedModule, m: Member) -> dict:
    with module.packed_trainer.precision_plugin.test_step_context():
        return module.predict([m], "test")[0]["predictions"]


def run_pack(cfg: DictConfig, dm, folds: list[Fold], out_dir: Path, start_from: dict, current: dict) -> dict[int, FoldRun]:
    """Train and test the folds of one pack as `runner.selection` says; every fold's run, checked."""
    mode = selection_mode(cfg)
    augments: dict = {}
    try:
        if mode == "val":
            runs = _val_folds(cfg, dm, folds, out_dir, start_from, current, augments)
        else:
            choices = _select(cfg, dm, folds, out_dir, current, augments) if mode == "refit" else {}
            runs = _final_folds(cfg, dm, folds, out_dir, start_from, current, augments, choices)
    except (Preempted, SIGTERMExceptionType()):
        names = spans([f.index for f in folds])
        raise Preempted(f"stopped by SIGTERM while folds {names} trained as one pack: each keeps the checkpoint of "
                        f"its last finished epoch (folds/fold_XX/checkpoints/last.ckpt, or its selection split's), "
                        f"finished folds are kept under {out_dir / 'folds'}. Resume: rerun the same command with "
                        f"hydra.run.dir={out_dir}") from None
    except KeyboardInterrupt:
        raise
    except Exception as err:
        cause = user_error(err)
        if cause is not None:
            raise cause from None
        names = spans([f.index for f in folds])
        raise RuntimeError(f"the pack of folds {names} failed ({type(err).__name__}: {err}); finished folds are "
                           f"saved under {out_dir / 'folds'}; rerun the same command to resume") from err
    limited_run = bool(debug_limits(cfg))
    for fold in folds:
        check_predictions(dm, fold, runs[fold.index].test, limited_run)
    return runs


def SIGTERMExceptionType():
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return SIGTERMException


def _select(cfg: DictConfig, dm, folds: list[Fold], out_dir: Path, current: dict, augments: dict) -> dict[int, Choice]:
    """`refit`'s selection passes of every fold of the pack, together; then each fold's epoch count."""
    k = inner_folds(cfg)
    splits = {f.index: selection_splits(f, dm.table, k, int(cfg.seed)) for f in folds}
    members = []
    for fold in folds:
        where = fold_folder(out_dir, fold.index) / "selection"
        for i, split in enumerate(splits[fold.index]):
            if load_split(where / f"split_{i}.json") is not None:
                continue
            split_dir = where / f"split_{i}"
            last = split_dir / "checkpoints" / "last.ckpt"
            resume = None
            if last.is_file():
                check_fold(last, read_meta(last), fold, current or {})
                resume = str(last)
            suffix = f"inner_{i}" if k else "select"
            members.append(Member(fold, split, "select", split_dir, f"fold_{fold.index:02d}_{suffix}",
                                  int(cfg.trainer.max_epochs), resume, i))
    if members:
        train_members(cfg, dm, members, current, augments)
        for m in members:
            where = fold_folder(out_dir, m.fold.index) / "selection"
            save_split(where / f"split_{m.split}.json", m.recorder.epochs, m.curves.as_lists())
            close(replay_logs(cfg, m))
            shutil.rmtree(m.where, ignore_errors=True)
    choices = {}
    for fold in folds:
        where = fold_folder(out_dir, fold.index) / "selection"
        done = [load_split(where / f"split_{i}.json") for i in range(len(splits[fold.index]))]
        per_split = [d[0] for d in done]
        choices[fold.index] = settle_choice(cfg, dm, fold, splits[fold.index], per_split, done[0][1], where)
    return choices


def _final_folds(cfg: DictConfig, dm, folds: list[Fold], out_dir: Path, start_from: dict, current: dict,
                 augments: dict, choices: dict[int, Choice]) -> dict[int, FoldRun]:
    """`refit` / `last`: every training subject for the fold's budget, together; each tested once."""
    members = []
    for fold in folds:
        fold_dir = fold_folder(out_dir, fold.index)
        start = start_from.get(fold.index)
        if start and read_meta(start).get("stage") == "select":
            raise MERError(f"{start} is a selection-pass checkpoint (trained without the validation subjects): "
                           "a refit fold resumes its final training only from checkpoints/last.ckpt")
        choice = choices.get(fold.index)
        budget = choice.epochs if choice else int(cfg.trainer.max_epochs)
        members.append(Member(fold, every_training_subject(fold), "final", fold_dir, f"fold_{fold.index:02d}",
                              budget, start))
    module = train_members(cfg, dm, members, current, augments)
    runs = {}
    for m in members:
        fold_dir = fold_folder(out_dir, m.fold.index)
        run = final_run(dm, m.fold, fold_dir, choices.get(m.fold.index), m.budget, m.curves.as_lists(),
                        test_frames(module, m))
        loggers = replay_logs(cfg, m)
        last = fold_dir / "checkpoints" / "last.ckpt"
        log_checkpoint(cfg, loggers, last if last.is_file() else None, m.fold, run.details)
        close(loggers)
        runs[m.fold.index] = run
    return runs


def _val_folds(cfg: DictConfig, dm, folds: list[Fold], out_dir: Path, start_from: dict, current: dict,
               augments: dict) -> dict[int, FoldRun]:
    """`val`: training minus validation subjects, together; each fold's best checkpoint on its validation
    subjects tested once."""
    from mer_lightning.evaluation.results import fold_frame

    members = [Member(f, f, "val", fold_folder(out_dir, f.index), f"fold_{f.index:02d}", int(cfg.trainer.max_epochs),
                      start_from.get(f.index)) for f in folds]
    module = train_members(cfg, dm, members, current, augments)
    runs = {}
    for row, m in enumerate(members):
        best = m.best.get("path") if m.best else None
        if best:
            module.stacked.load_member_state(row, m.best["state"])
        val, extra = None, None
        if m.fold.val:
            with module.packed_trainer.precision_plugin.val_step_context():
                result = module.predict([m], "val")[0]
            val = fold_frame(dm, m.fold, result["predictions"])
            extra = {"selected/val_loss": result["loss"],
                     **{k.replace("val/", "selected/val_", 1): v for k, v in result["figures"].items()}}
        fold_dir = fold_folder(out_dir, m.fold.index)
        run = val_run(dm, m.fold, fold_dir, m.best.get("monitor") if best else None, best, m.epochs,
                      m.curves.as_lists(), test_frames(module, m), val)
        loggers = replay_logs(cfg, m, extra)
        log_checkpoint(cfg, loggers, fold_dir / run.checkpoint if run.checkpoint else None, m.fold, run.details)
        close(loggers)
        runs[m.fold.index] = run
    return runs
