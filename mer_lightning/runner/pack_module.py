"""What one pack trains (`runner.pack=K`, `pack.py` runs it): its members (one fit each: a fold's selection
split or its final training, with the random streams, batches and augmentation it would have alone), the
clips in memory as tensors (`ClipBank`), `PackedModule` (the one Lightning loop that steps every member's
slice of the stacked model), and each member's checkpoint, written and restored as its own fold's.
"""
from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig

from mer_lightning.data.splits import Fold
from mer_lightning.models.stacked import EXECUTIONS, StackedModels, VmapForward
from mer_lightning.runner.fold import (
    FoldInfo,
)
from mer_lightning.runner.folds import runner_settings
from mer_lightning.runner.selection import (
    EpochCurves,
    EpochPredictions,
)
from mer_lightning.utils.errors import MERError, raise_if_preempted, user_error

log = logging.getLogger(__name__)


def execution_of(cfg: DictConfig, device: torch.device) -> str:
    """`runner.pack_execution`: loop / vmap, or auto (vmap on a GPU, loop on CPU)."""
    value = str(runner_settings(cfg).get("pack_execution", "auto") or "auto")
    if value == "auto":
        return "vmap" if device.type == "cuda" else "loop"
    if value not in EXECUTIONS:
        raise MERError(f"runner.pack_execution={value}: choose auto, loop (each fold's own forward in turn: "
                       "bitwise the sequential arithmetic) or vmap (all folds in one vmapped call: fills a GPU)")
    return value


def checkpoint_epochs(checkpoint: dict) -> int:
    """The epochs a checkpoint's fit had finished: a packed one says so; a Lightning one saved mid-epoch
    (SIGTERM) has that epoch done again from its weights."""
    packed = checkpoint.get("packed") or {}
    if packed:
        return int(packed["epochs"])
    progress = checkpoint.get("loops", {}).get("fit_loop", {})
    finished = progress.get("epoch_loop.batch_progress", {}).get("is_last_batch", True)
    processed = progress.get("epoch_progress", {}).get("current", {}).get("processed")
    if finished and processed is not None:
        return int(processed)
    return int(checkpoint.get("epoch", -1)) + (1 if finished else 0)


# -- members ----------------------------------------------------------------------------------------
@dataclass
class Member:
    """One fit of a pack: a fold's selection split (`select`), its final training (`final`) or its fit on
    training minus validation subjects (`val`), with everything it keeps to itself."""

    fold: Fold
    part: Fold  # what it trains (and validates) on
    stage: str
    where: Path  # its checkpoints go to where/checkpoints
    version: str  # its logger runs' name
    budget: int  # epochs to train
    start: str | None = None  # a checkpoint to resume from
    split: int = 0
    # set when the pack is built
    model: object = None
    rng: torch.Generator | None = None
    cuda_rng: torch.Tensor | None = None
    augment: object = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    epochs: int = 0  # epochs done
    steps: int = 0  # optimizer steps done
    done: bool = False
    stopper: object = None  # EarlyStopping (its state and its criterion)
    best: dict = field(default_factory=dict)  # val: the best checkpoint's score, epoch, path, state
    curves: EpochCurves = field(default_factory=EpochCurves)
    recorder: EpochPredictions | None = None
    history: list = field(default_factory=list)  # per epoch: what the loggers get
    batches: list = field(default_factory=list)  # this epoch's batches (positions into part.train)
    loss_sum: torch.Tensor | None = None
    loss_n: int = 0
    last_batches: int = 0  # batches of its last epoch
    params: list = field(default_factory=list)  # its parameters (views of the stacks)
    info: object = None  # its FoldInfo (the `mer` record of its checkpoints)

    @property
    def name(self) -> str:
        return self.version


def val_batches(cfg: DictConfig, n: int, batch_size: int) -> int:
    return limited(n, batch_size, (cfg.get("trainer") or {}).get("limit_val_batches"))


def limited(n: int, batch_size: int, limit) -> int:
    """How many of a loader's batches Lightning runs under `limit_*_batches` (None: all; a float: that
    fraction, an int: at most that many)."""
    batches = math.ceil(n / batch_size) if n else 0
    if limit is None:
        return batches
    if isinstance(limit, float):
        return min(batches, int(batches * limit))
    return min(batches, int(limit))


def draw(generator: torch.Generator) -> int:
    """One draw of what a DataLoader or a RandomSampler takes from the global generator."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def epoch_batches(member: Member, batch_size: int, limit) -> list[list[int]]:
    """The batches one epoch of the member's own shuffled DataLoader gives (as `fit` alone would: the
    loader's base seed, then the sampler's seed, then a permutation from it)."""
    n = len(member.part.train)
    draw(member.rng)  # the DataLoader iterator's base seed
    sampler = torch.Generator()
    sampler.manual_seed(draw(member.rng))  # RandomSampler's own generator
    order = torch.randperm(n, generator=sampler).tolist()
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return batches[: limited(n, batch_size, limit)]


@contextmanager
def member_random(member: Member, device: torch.device):
    """The global generators set to the member's own streams while its forward pass runs (dropout and any
    other random layer draw what they would in a fit of its own)."""
    cpu = torch.default_generator
    saved = cpu.get_state()
    cpu.set_state(member.rng.get_state())
    cuda = torch.cuda.default_generators[device.index or 0] if device.type == "cuda" else None
    cuda_saved = None
    if cuda is not None:
        cuda_saved = cuda.get_state()
        cuda.set_state(member.cuda_rng)
    try:
        yield
    finally:
        member.rng.set_state(cpu.get_state())
        cpu.set_state(saved)
        if cuda is not None:
            member.cuda_rng = cuda.get_state()
            cuda.set_state(cuda_saved)


@contextmanager
def member_generators(members: list[Member], device: torch.device):
    """The generators dropout draws from on `device`, one per member (its own stream: CPU, or CUDA as the
    default CUDA generator of a fit of its own)."""
    if device.type != "cuda":
        yield [m.rng for m in members]
        return
    generators = []
    for m in members:
        g = torch.Generator(device=device)
        g.set_state(m.cuda_rng)
        generators.append(g)
    try:
        yield generators
    finally:
        for m, g in zip(members, generators):
            m.cuda_rng = g.get_state()


class ClipBank:
    """The dataset's clips in memory as the normalised float tensors `ClipDataset` serves (one read of the
    cache); augmented batches are built clip by clip through the fold's own augmentation stream."""

    def __init__(self, dm, device: torch.device):
        from mer_lightning.data.datamodule import ClipDataset

        self.clips = dm.clips
        self.shaper = ClipDataset(dm.clips, dm.table.labels, [], dm.mean, dm.std)
        self.raw = self.shaper._rows
        self.x = self.shaper._normalised(np.asarray(self.raw)).to(device)
        self.y = torch.as_tensor(np.asarray(dm.table.labels), dtype=torch.long, device=device)
        self.device = device

    @classmethod
    def of(cls, dm, device: torch.device) -> "ClipBank":
        """The data's bank on `device`, made once (the selection passes and final trainings share it)."""
        bank = getattr(dm, "_clip_bank", None)
        if bank is None or bank.device != device or bank.clips is not dm.clips:
            bank = cls(dm, device)
            dm._clip_bank = bank
        return bank

    def batch(self, indices: list[int], augment=None) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        if augment is None:
            return self.x.index_select(0, index), self.y.index_select(0, index)
        clips = [self.shaper._normalised(augment(self.raw[i])) for i in indices]
        return torch.stack(clips).to(self.device), self.y.index_select(0, index)


# -- the packed module ---------------------------------------------------------------------------------
class Steps:
    """The pack's training batches of one epoch, as Lightning's training loader: step s holds batch s of
    every member that has one (members' epochs differ in length; the longest sets the epoch's)."""

    def __init__(self, module: "PackedModule", length: int):
        self.module, self.length = module, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        members = [m for m in self.module.members if m.batches]
        for s in range(max((len(m.batches) for m in members), default=0)):
            yield [(i, m.batches[s]) for i, m in enumerate(self.module.members) if s < len(m.batches)]


class PackedModule(pl.LightningModule):
    """The members of one pack in one Lightning training loop (manual optimisation: one optimizer step
    over every member that had a batch, each with its own learning rate, state and step count)."""

    def __init__(self, cfg: DictConfig, dm, members: list[Member], bank: ClipBank | None, current: dict,
                 mode: str):
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.dm, self.members, self.current, self.mode = cfg, dm, members, current, mode
        self.bank = bank
        self.stacked: StackedModels | None = None
        self.vmapped: VmapForward | None = None
        self.execution = "loop"
        trainer = cfg.get("trainer") or {}
        self.batch_size = int(dm.batch_size)
        self.limit_train = trainer.get("limit_train_batches")
        self.check_val_every = int(trainer.get("check_val_every_n_epoch") or 1)
        self.clip_value = trainer.get("gradient_clip_val")
        self.clip_algorithm = str(trainer.get("gradient_clip_algorithm") or "norm")
        self.min_epochs = int(trainer.get("min_epochs") or 0)
        self._merged: torch.optim.Optimizer | None = None
        self.state: dict = defaultdict(dict)  # every member's optimizer state, by parameter (shared by the per-epoch optimizers)
        self.last_name: str | None = None  # the every-epoch checkpoint's file name (None: not written)
        self.offset = 0  # the members' epoch at the loop's epoch 0 (> 0 when every member resumes)
        self.packed_trainer: pl.Trainer | None = None

    def member_epoch(self) -> int:
        return self.current_epoch + self.offset

    # set-up (on the device Lightning chose) --------------------------------------------------------
    def configure_optimizers(self):
        if self._merged is not None:
            return self._merged
        device = self.device
        self.execution = execution_of(self.cfg, device)
        self.stacked = StackedModels([m.model for m in self.members], device)
        if self.bank is None or self.bank.device != device:
            self.bank = ClipBank.of(self.dm, device)
        for row, m in enumerate(self.members):
            optimizers = m.model.configure_optimizers()
            if isinstance(optimizers, dict):
                m.optimizer = optimizers["optimizer"]
                scheduler = optimizers.get("lr_scheduler")
                m.scheduler = scheduler["scheduler"] if isinstance(scheduler, dict) else scheduler
            else:
                m.optimizer, m.scheduler = optimizers, None
            if m.start:
                restore(m, self.stacked, row, device)
            m.params = list(m.model.parameters())
            self.state.update(m.optimizer.state)
            m.optimizer.state.clear()
        self._merged = self.merged_optimizer(self.members)
        if self.execution == "vmap":
            try:
                self.vmapped = VmapForward(self.stacked, objective)
                self._vmap_dry_run()
            except Exception as err:  # noqa: BLE001 - an op vmap cannot batch: say so on one line
                cause = user_error(err)
                first_line = str(cause or err).strip().splitlines()[0][:200] if str(cause or err).strip() else \
                    type(err).__name__
                why = (f"runner.pack_execution=vmap cannot run model {self.cfg.model.get('name')} under "
                       f"torch.func.vmap ({type(err).__name__}: {first_line})")
                if str(runner_settings(self.cfg).get("pack_execution", "auto")) == "vmap":
                    raise MERError(f"{why}; use runner.pack_execution=loop or runner.parallel") from None
                log.warning("%s: its folds run in turn instead (runner.pack_execution=loop)", why)
                self.execution, self.vmapped = "loop", None
        for m in self.members:
            m.model.train()
            m.done = m.epochs >= m.budget
            m.info = FoldInfo(m.fold, self.dm.class_names, self.cfg, self.current, m.stage)
        return self._merged

    def merged_optimizer(self, members: list[Member]) -> torch.optim.Optimizer:
        """One optimizer of the members' class over the members' parameters: their param groups merged where
        their hyper-parameters agree (the members of an epoch share its learning rate), every parameter
        with its own state and step count (`self.state`), a parameter without a gradient (a member that had
        no batch) skipped as it would be alone; one `foreach` loop over all their tensors (on CPU the same
        per-tensor kernels as a member's own optimizer)."""
        import inspect

        first = members[0].optimizer
        merged: dict[tuple, dict] = {}
        for m in members:
            for g, group in enumerate(m.optimizer.param_groups):
                hyper = {k: v for k, v in group.items() if k != "params"}
                key = (g, repr(sorted(hyper.items())))
                if key not in merged:
                    merged[key] = {**hyper, "params": []}
                    if merged[key].get("foreach") is None and not merged[key].get("fused") and "foreach" in hyper:
                        merged[key]["foreach"] = True
                merged[key]["params"] += list(group["params"])
        accepted = inspect.signature(type(first).__init__).parameters
        defaults = {k: v for k, v in first.defaults.items() if k in accepted}
        optimizer = type(first)(list(merged.values()), **defaults)
        optimizer.state = self.state  # (a defaultdict keyed by parameter, as the optimizer's own)
        return optimizer

    def _vmap_dry_run(self) -> None:
        """One vmapped forward on zeros in eval mode: an op vmap cannot batch fails here, before any training."""
        x = self.bank.x[:1].unsqueeze(0).expand(len(self.members), *self.bank.x[:1].shape).contiguous()
        y = torch.zeros(len(self.members), 1, dtype=torch.long, device=self.device)
        with torch.no_grad():
            self.vmapped(None, x, y, [], self.stacked.params, training=False)

    def train_dataloader(self):
        longest = max((limited(len(m.part.train), self.batch_size, self.limit_train) for m in self.members), default=0)
        return Steps(self, max(longest, 1))

    # epochs ---------------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        epoch = self.member_epoch()
        for m in self.members:
            m.batches = []
            if m.done or m.epochs != epoch:
                continue
            model = m.model
            if model.freeze_epochs:
                frozen = epoch < model.freeze_epochs
                if frozen != model.backbone_frozen:
                    log.info("%s epoch %d: backbone %s", m.name, epoch, "frozen" if frozen else "unfrozen")
                model.set_backbone_frozen(frozen)
            m.batches = [[m.part.train[p] for p in b] for b in epoch_batches(m, self.batch_size, self.limit_train)]
            m.loss_sum, m.loss_n = None, 0
            if m.scheduler is not None:
                m.history.append({f"lr-{type(m.optimizer).__name__}": m.optimizer.param_groups[0]["lr"]})
            else:
                m.history.append({})
        active = [m for m in self.members if m.batches]
        if active:
            self._merged = self.merged_optimizer(active)

    def training_step(self, step, batch_idx):
        if not step:
            return None
        if self.execution == "vmap":
            self._vmap_step(step)
        else:
            for i, indices in step:
                m = self.members[i]
                x, y = self.bank.batch(indices, m.augment)
                with member_random(m, self.device):
                    logits = m.model(x)
                loss = m.model.loss(logits, y)
                loss.backward()  # (what manual_backward does at 32-bit and bf16-mixed precision)
                self._account(m, loss, len(indices))
        params = []
        for i, _ in step:
            m = self.members[i]
            own = [p for p in m.params if p.grad is not None]
            if self.clip_value:
                if self.clip_algorithm == "value":
                    torch.nn.utils.clip_grad_value_(own, float(self.clip_value))
                else:
                    torch.nn.utils.clip_grad_norm_(own, float(self.clip_value))
            params += own
            m.steps += 1
            m.optimizer._opt_called = True  # (its scheduler's check: the merged optimizer stepped for it)
        self._merged.step()
        for p in params:
            p.grad = None
        return None

    def _account(self, m: Member, loss: torch.Tensor, n: int) -> None:
        m.loss_sum = weighted_sum(m.loss_sum, loss, n)
        m.loss_n += n

    def _vmap_step(self, step) -> None:
        by_size: dict[int, list] = {}
        for i, indices in step:
            by_size.setdefault(len(indices), []).append((i, indices))
        stacks = {n: p.detach().requires_grad_(p_req) for (n, p), p_req in
                  zip(self.stacked.params.items(), self._requires_grad())}
        for group in by_size.values():
            rows = [i for i, _ in group]
            batches = [self.bank.batch(indices, self.members[i].augment) for i, indices in group]
            x = torch.stack([b[0] for b in batches])
            y = torch.stack([b[1] for b in batches])
            with member_generators([self.members[i] for i in rows], self.device) as generators:
                masks = self.vmapped.masks_for(tuple(x.shape[1:]), generators, self.device)
            everyone = len(rows) == len(self.members)
            _, losses = self.vmapped(None if everyone else rows, x, y, masks, stacks, training=True)
            losses.sum().backward()
            for (i, indices), loss in zip(group, losses):
                self._account(self.members[i], loss, len(indices))
        for i, _ in step:
            for (n, stack) in stacks.items():
                if stack.grad is not None:
                    param = self.stacked.members[i].get_parameter(n)
                    if param.requires_grad:
                        param.grad = stack.grad[i]

    def _requires_grad(self) -> list[bool]:
        first = self.stacked.members[0]
        return [first.get_parameter(n).requires_grad for n in self.stacked.param_names]

    def on_train_epoch_end(self) -> None:
        epoch = self.member_epoch()
        active = [m for m in self.members if m.batches]
        validated = {}
        if active:
            validated = self._validate([m for m in active if self._validates(m, epoch)])
        for m in active:
            row = m.history[-1]
            if m.loss_n:
                row["train/loss"] = float(m.loss_sum / m.loss_n)
            figures = validated.get(id(m))
            if figures is not None:
                row.update(figures["metrics"])
                draw(m.rng)  # the validation loader's iterator, as in a fit of its own
                if m.recorder is not None:
                    p = figures["predictions"]
                    m.recorder.epochs[epoch] = {k: p[k].tolist() for k in ("index", "y", "probs")}
            m.curves.epochs[epoch] = {k: row[k] for k in EpochCurves.KEYS if k in row}
            if m.scheduler is not None:
                m.scheduler.step()
            m.epochs, m.last_batches, m.batches = epoch + 1, len(m.batches), []
            stop = False
            if figures is not None:
                stop = self._early_stop(m, row) and m.epochs >= self.min_epochs
                self._keep_best(m, row)
            m.done = m.epochs >= m.budget or stop
            if stop and m.epochs < m.budget:
                log.info("%s: early stopping after epoch %d (%s)", m.name, epoch, m.stopper.monitor)
            save_last(self, m)
        if all(m.done for m in self.members):
            self.trainer.should_stop = True
        raise_if_preempted()

    def _validates(self, m: Member, epoch: int) -> bool:
        limit = (self.cfg.get("trainer") or {}).get("limit_val_batches")
        return bool(m.part.val) and (epoch + 1) % self.check_val_every == 0 and \
            val_batches(self.cfg, len(m.part.val), self.batch_size) > 0 and limit != 0

    def _validate(self, members: list[Member]) -> dict:
        """Each member on its validation subjects: predictions and the figures its fit would log."""
        out = {}
        with self.trainer.precision_plugin.val_step_context():
            for m, result in zip(members, self.predict(members, "val")):
                metrics = {"val/loss": result["loss"], **{k: v for k, v in result["figures"].items()}}
                out[id(m)] = {"metrics": metrics, "predictions": result["predictions"]}
        return out

    def predict(self, members: list[Member], part: str) -> list[dict]:
        """Predictions of `members` on their `val` or `test` samples, batch by batch as a Lightning loop
        over the fold's loader would make them (test: each member's own forward, as `eval` makes them)."""
        results = []
        if self.execution == "vmap" and part == "val" and len(members) > 1:
            return self._predict_vmapped(members)
        for m in members:
            indices = getattr(m.part if part == "val" else m.fold, part)
            limit = (self.cfg.get("trainer") or {}).get(f"limit_{part}_batches")
            count = limited(len(indices), self.batch_size, limit)
            model = m.model
            model.eval()
            metrics = model.val_metrics if part == "val" else model.test_metrics
            metrics.reset()
            outputs, loss_sum, n = [], None, 0
            with torch.no_grad():
                for b in range(count):
                    chunk = indices[b * self.batch_size:(b + 1) * self.batch_size]
                    x, y = self.bank.batch(chunk)
                    logits = model(x)
                    loss_sum = weighted_sum(loss_sum, model.loss(logits, y), len(chunk))
                    n += len(chunk)
                    metrics.update(logits, y)
                    outputs.append({"index": torch.as_tensor(chunk), "y": y.cpu(), "probs": logits.float().softmax(-1).cpu()})
            model.train()
            results.append(self._collect(model, outputs, loss_sum, n, metrics))
        return results

    def _predict_vmapped(self, members: list[Member]) -> list[dict]:
        rows = [self.members.index(m) for m in members]
        count = {id(m): limited(len(m.part.val), self.batch_size,
                                (self.cfg.get("trainer") or {}).get("limit_val_batches")) for m in members}
        outputs = {id(m): [] for m in members}
        losses = {id(m): None for m in members}
        for m in members:
            m.model.val_metrics.reset()
        with torch.no_grad():
            for b in range(max(count.values())):
                by_size: dict[int, list] = {}
                for row, m in zip(rows, members):
                    if b < count[id(m)]:
                        chunk = m.part.val[b * self.batch_size:(b + 1) * self.batch_size]
                        by_size.setdefault(len(chunk), []).append((row, m, chunk))
                for group in by_size.values():
                    batches = [self.bank.batch(chunk) for _, _, chunk in group]
                    x, y = torch.stack([t[0] for t in batches]), torch.stack([t[1] for t in batches])
                    everyone = len(group) == len(self.members)
                    logits, loss = self.vmapped(None if everyone else [r for r, _, _ in group], x, y, [],
                                                self.stacked.params, training=False)
                    for j, (_, m, chunk) in enumerate(group):
                        losses[id(m)] = weighted_sum(losses[id(m)], loss[j], len(chunk))
                        m.model.val_metrics.update(logits[j], y[j])
                        outputs[id(m)].append({"index": torch.as_tensor(chunk), "y": y[j].cpu(),
                                               "probs": logits[j].float().softmax(-1).cpu()})
        return [self._collect(m.model, outputs[id(m)], losses[id(m)], sum(len(o["index"]) for o in outputs[id(m)]),
                              m.model.val_metrics) for m in members]

    @staticmethod
    def _collect(model, outputs: list[dict], loss_sum: float, n: int, metrics) -> dict:
        figures = {k: float(v) for k, v in metrics.compute().items()} if n else {}
        metrics.reset()
        local = {k: torch.cat([o[k] for o in outputs]) for k in ("index", "y", "probs")} if outputs else \
            {"index": torch.zeros(0, dtype=torch.long), "y": torch.zeros(0, dtype=torch.long), "probs": torch.zeros(0)}
        order = torch.argsort(local["index"])
        predictions = {k: v[order] for k, v in local.items()}
        return {"predictions": predictions, "loss": float(loss_sum / n) if n else float("nan"), "figures": figures}

    def _early_stop(self, m: Member, row: dict) -> bool:
        stopper = m.stopper
        if stopper is None or stopper.monitor not in row:
            return False
        should_stop, _ = stopper._evaluate_stopping_criteria(torch.tensor(row[stopper.monitor]))
        return bool(should_stop)

    def _keep_best(self, m: Member, row: dict) -> None:
        """`val`: the member's best-checkpoint callback (strictly better than the best so far, NaN worst)."""
        best = m.best
        if not best or best.get("monitor") not in row:
            return
        current = torch.tensor(row[best["monitor"]])
        if torch.isnan(current):
            current = torch.tensor(float("inf") if best["mode"] == "min" else float("-inf"))
        better = torch.lt if best["mode"] == "min" else torch.gt
        if best.get("score") is None or bool(better(current, best["score"])):
            best.update(score=current, epoch=m.epochs - 1)
            path = m.where / "checkpoints" / f"{best['filename']}.ckpt"
            write_checkpoint(path, member_checkpoint(self, m))
            best["path"] = path
            best["state"] = self.stacked.member_state(self.members.index(m))

    def optimizer_state(self, m: Member) -> dict:
        """The member's optimizer as its own optimizer's `state_dict` (what a fit of its own would save)."""
        own = m.optimizer
        own.state.update({p: self.state[p] for p in m.params if p in self.state})
        try:
            return own.state_dict()
        finally:
            own.state.clear()


def weighted_sum(total: torch.Tensor | None, value: torch.Tensor, n: int) -> torch.Tensor:
    """Lightning's running sum of an epoch-mean figure logged with `batch_size=n` (float32: value * n)."""
    value = value.detach().float() * n
    return value if total is None else total + value


def objective(model, x: torch.Tensor, y: torch.Tensor):
    """One member's logits and training loss (what its `training_step` computes)."""
    logits = model(x)
    return logits, model.loss(logits, y)


# -- checkpoints --------------------------------------------------------------------------------------
def lightning_loops(epochs: int, steps: int, last_batches: int) -> dict:
    """The loop state a Lightning fit saves at the end of a training epoch (epochs done, optimizer steps
    done, batches of the last epoch), so that a fold's own Lightning loop can resume a packed checkpoint."""
    def progress(total: int, current: int, keys=("ready", "completed", "started", "processed")) -> dict:
        return {"total": {k: total for k in keys}, "current": {k: current for k in keys}}

    zero = {**progress(0, 0), "is_last_batch": False}
    epoch_progress = progress(epochs, epochs)
    epoch_progress["total"]["completed"] = epoch_progress["current"]["completed"] = epochs - 1
    fit = {
        "state_dict": {},
        "epoch_loop.state_dict": {"_batches_that_stepped": steps},
        "epoch_loop.batch_progress": {**progress(steps, last_batches), "is_last_batch": True},
        "epoch_loop.scheduler_progress": progress(epochs, 1, ("ready", "completed")),
        "epoch_loop.automatic_optimization.state_dict": {},
        "epoch_loop.automatic_optimization.optim_progress": {"optimizer": {
            "step": progress(steps, last_batches, ("ready", "completed")),
            "zero_grad": progress(steps, last_batches, ("ready", "completed", "started"))}},
        "epoch_loop.manual_optimization.state_dict": {},
        "epoch_loop.manual_optimization.optim_step_progress": progress(0, 0, ("ready", "completed")),
        "epoch_loop.val_loop.state_dict": {},
        "epoch_loop.val_loop.batch_progress": dict(zero),
        "epoch_progress": epoch_progress,
    }
    loops = {"fit_loop": fit}
    for name in ("validate_loop", "test_loop"):
        loops[name] = {"state_dict": {}, "batch_progress": dict(zero)}
    loops["predict_loop"] = {"state_dict": {}, "batch_progress": progress(0, 0)}
    return loops


def member_checkpoint(module: PackedModule, m: Member) -> dict:
    """The member's checkpoint: what its own fit would save at the end of this epoch (weights, optimizer and
    schedule, loop state, callback states, the fold record `mer`), plus `packed`: its random stream, so a
    packed run resumes exactly where it stopped."""
    callbacks = {"EpochCurves": m.curves.state_dict()}
    if m.recorder is not None:
        callbacks["EpochPredictions"] = m.recorder.state_dict()
    if m.stopper is not None:
        callbacks[m.stopper.state_key] = m.stopper.state_dict()
    checkpoint = {
        "epoch": m.epochs - 1, "global_step": m.steps, "pytorch-lightning_version": pl.__version__,
        "state_dict": module.stacked.member_state(module.members.index(m)),
        "loops": lightning_loops(m.epochs, m.steps, m.last_batches),
        "callbacks": callbacks,
        "optimizer_states": [module.optimizer_state(m)],
        "lr_schedulers": [m.scheduler.state_dict()] if m.scheduler is not None else [],
        "hparams_name": "kwargs", "hyper_parameters": dict(m.model.hparams),
        "packed": {"rng": m.rng.get_state(), "epochs": m.epochs, "steps": m.steps,
                   "best": {k: (float(v) if k == "score" else v) for k, v in m.best.items()
                            if k in ("score", "epoch")}},
    }
    if m.cuda_rng is not None:
        checkpoint["packed"]["cuda_rng"] = m.cuda_rng
    m.info.on_save_checkpoint(None, None, checkpoint)
    return checkpoint


def write_checkpoint(path: Path, checkpoint: dict) -> None:
    """Written beside, then renamed over `path`: a checkpoint is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise MERError(f"could not write {path} ({err.strerror or err}); free some disk space or make "
                       f"{path.parent} writable, then rerun the same command") from err


def save_last(module: PackedModule, m: Member) -> None:
    if module.last_name is None:
        return
    write_checkpoint(m.where / "checkpoints" / f"{module.last_name}.ckpt", member_checkpoint(module, m))


def restore(m: Member, stacked: StackedModels, row: int, device: torch.device) -> None:
    """Resume a member from a checkpoint of its own fit: a packed one (everything, its random stream too) or
    one of a fold's own Lightning loop (weights, optimizer, schedule, epochs; the stream restarts as a
    resumed Lightning fit's does)."""
    checkpoint = torch.load(m.start, map_location="cpu", weights_only=True)
    stacked.load_member_state(row, checkpoint["state_dict"])
    if checkpoint.get("optimizer_states"):
        m.optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    if m.scheduler is not None and checkpoint.get("lr_schedulers"):
        m.scheduler.load_state_dict(checkpoint["lr_schedulers"][0])
    packed = checkpoint.get("packed") or {}
    if packed:
        m.epochs, m.steps = int(packed["epochs"]), int(packed["steps"])
        m.rng.set_state(packed["rng"])
        if "cuda_rng" in packed and m.cuda_rng is not None:
            m.cuda_rng = packed["cuda_rng"]
    else:
        m.epochs, m.steps = checkpoint_epochs(checkpoint), int(checkpoint.get("global_step", 0))
    callbacks = checkpoint.get("callbacks") or {}
    if "EpochCurves" in callbacks:
        m.curves.load_state_dict(callbacks["EpochCurves"])
        m.curves.epochs = {e: v for e, v in m.curves.epochs.items() if e < m.epochs}
    if m.recorder is not None and "EpochPredictions" in callbacks:
        m.recorder.load_state_dict(callbacks["EpochPredictions"])
        m.recorder.epochs = {e: v for e, v in m.recorder.epochs.items() if e < m.epochs}
    if m.stopper is not None and m.stopper.state_key in callbacks:
        m.stopper.load_state_dict(callbacks[m.stopper.state_key])
    if m.best and packed.get("best", {}).get("score") is not None:
        m.best["score"] = torch.tensor(packed["best"]["score"])
        m.best["epoch"] = packed["best"]["epoch"]
        path = m.where / "checkpoints" / f"{m.best['filename']}.ckpt"
        if path.is_file():
            m.best["path"] = path
            m.best["state"] = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    m.history = [{**{k: v for k, v in m.curves.epochs.get(e, {}).items()}} for e in range(m.epochs)]
    log.info("Resuming %s (%s) from %s after %d epoch(s)", m.fold.name, m.stage, m.start, m.epochs)
