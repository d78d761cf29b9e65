"""Many models of one architecture as one stacked model (`runner.pack`, `runner/pack.py`).

`StackedModels` keeps the parameters and buffers of M models (the members) stacked along a new first
dimension, one tensor per name, and rebinds every member's own parameters and buffers to views of
those stacks. Each member stays a plain module (its `state_dict` is the one it would have alone,
with the same strides), while an optimizer, a clipping pass or a checkpoint can work on the stacks.

Two ways to run the members' forward and backward passes over the stacks:

- `loop`: each member's own module in turn. The arithmetic is the module's own, so on CPU a member
  trained this way gives bitwise the parameters and predictions it gives trained alone; the gain is
  that M members share one training loop, one optimizer step and one data path.
- `vmap`: one call for all members, `torch.func.functional_call` of a template module under
  `torch.func.vmap` over the stacks: each layer runs once for every member (a convolution becomes a
  grouped convolution, a linear layer a batched matrix product), which is what fills a GPU with small
  models. Float sums then run in another order than the model's own (results agree to rounding, not
  bitwise). Layers vmap cannot batch are replaced in the template by stackable ones with the same
  parameters: `nn.LSTM` / `nn.GRU` by `StackableRNN` (the recurrence in plain tensor ops, checked
  against the original by the tests), `nn.Dropout` by `MaskedDropout` (masks drawn outside the
  vmapped call, from each member's own random stream, so a member draws what it would alone).
  `stackable_template` refuses, in one line, a model whose forward vmap still cannot run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from typing import Callable, Iterator

import torch
from torch import nn

from mer_lightning.utils.errors import MERError

EXECUTIONS = ("loop", "vmap")


# -- stackable layers -------------------------------------------------------------------------------
class StackableRNN(nn.Module):
    """`nn.LSTM` / `nn.GRU` (batch_first, any layers, either direction) in plain tensor ops, so that
    `torch.func.vmap` can run it for many members at once (the fused `nn.LSTM` kernels have no batching
    rule). Same parameters, same names (`weight_ih_l0`, `bias_hh_l0_reverse`, ...), same outputs
    `(output, h_n)` / `(output, (h_n, c_n))`; the input projection is computed for the whole sequence
    first, then each step adds the recurrent one, as PyTorch's own CPU implementation does. Dropout
    between layers (`dropout` > 0, training) goes through `MaskedDropout`. No `proj_size`."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        if mode not in ("LSTM", "GRU"):
            raise ValueError(f"StackableRNN: mode {mode} (LSTM or GRU)")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.bidirectional, self.dropout = bidirectional, float(dropout)
        gates = 4 if mode == "LSTM" else 3
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(gates * hidden_size, width)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}",
                                        nn.Parameter(torch.empty(gates * hidden_size, hidden_size)))
                if bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(gates * hidden_size)))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(gates * hidden_size)))
        self.between = nn.ModuleList(MaskedDropout(self.dropout) for _ in range(num_layers - 1))
        stdv = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    @classmethod
    def of(cls, rnn: nn.RNNBase) -> "StackableRNN":
        """The stackable twin of an `nn.LSTM` / `nn.GRU`, with a copy of its parameters."""
        if getattr(rnn, "proj_size", 0):
            raise MERError("runner.pack with vmap: an LSTM with proj_size has no stackable implementation; use "
                           "runner.pack_execution=loop or runner.parallel")
        twin = cls(rnn.mode, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bias, rnn.batch_first,
                   rnn.dropout, rnn.bidirectional)
        twin.load_state_dict(rnn.state_dict())
        return twin.to(next(rnn.parameters()).device)

    def _weights(self, layer: int, suffix: str):
        get = lambda name: getattr(self, f"{name}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _direction(self, x: torch.Tensor, layer: int, suffix: str, reverse: bool):
        """One direction of one layer over x (B, T, D): outputs (B, T, H), last h (B, H), last c or None."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, suffix)
        steps = x.shape[1]
        projected = nn.functional.linear(x, w_ih, b_ih)  # the whole sequence at once
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = x.new_zeros(x.shape[0], self.hidden_size) if self.mode == "LSTM" else None
        outputs = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            recurrent = nn.functional.linear(h, w_hh, b_hh)
            if self.mode == "LSTM":
                i, f, g, o = (recurrent + projected[:, t]).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                i_r, i_z, i_n = projected[:, t].chunk(3, dim=-1)
                h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = n + z * (h - n)
            outputs[t] = h
        return torch.stack(outputs, dim=1), h, c

    def forward(self, x: torch.Tensor, hx=None):
        if hx is not None:
            raise MERError("StackableRNN starts from zero states (as the MER heads do); an initial state is not supported")
        if not self.batch_first:
            x = x.transpose(0, 1)
        hs, cs = [], []
        for layer in range(self.num_layers):
            if layer:
                x = self.between[layer - 1](x)
            outs = []
            for suffix, reverse in (("", False), ("_reverse", True))[: 2 if self.bidirectional else 1]:
                out, h, c = self._direction(x, layer, suffix, reverse)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        output = x if self.batch_first else x.transpose(0, 1)
        h_n = torch.stack(hs)
        return (output, (h_n, torch.stack(cs))) if self.mode == "LSTM" else (output, h_n)


class _MaskFeed(threading.local):
    masks: Iterator[torch.Tensor] | None = None


_FEED = _MaskFeed()


@contextlib.contextmanager
def feeding(masks: list[torch.Tensor]):
    """`MaskedDropout` layers called inside take their masks from `masks`, in call order."""
    before, _FEED.masks = _FEED.masks, iter(masks)
    try:
        yield
    finally:
        _FEED.masks = before


class MaskedDropout(nn.Dropout):
    """`nn.Dropout` whose masks come from outside (`feeding`): under vmap they are drawn per member, from
    that member's own random stream and with the draws `F.dropout` would make (`draw_masks`), since a
    random op inside vmap cannot use one generator per member. Outside `feeding` it is `nn.Dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or _FEED.masks is None:
            return super().forward(x)
        try:
            mask = next(_FEED.masks)
        except StopIteration:
            raise RuntimeError("MaskedDropout: fewer masks than dropout calls (the shapes changed?)") from None
        return x * mask

    @classmethod
    def of(cls, dropout: nn.Dropout) -> "MaskedDropout":
        return cls(dropout.p, dropout.inplace)


def draw_masks(shapes: list[tuple[tuple[int, ...], float, bool]], generator: torch.Generator,
               device: torch.device) -> list[torch.Tensor]:
    """Dropout masks for one member's forward: what `F.dropout` draws in training (`bernoulli_(1 - p)`,
    divided by `1 - p`, in the input's memory format), from `generator`; p == 0 draws nothing."""
    masks = []
    for shape, p, channels_last in shapes:
        if p == 0:
            continue
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        mask = torch.empty(shape, device=device, memory_format=fmt) if p < 1 else torch.zeros(shape, device=device)
        if p < 1:
            mask.bernoulli_(1 - p, generator=generator).div_(1 - p)
        masks.append(mask)
    return masks


def stackable_template(model: nn.Module) -> nn.Module:
    """A copy of `model` whose every layer vmap can batch: LSTM / GRU -> `StackableRNN`, Dropout ->
    `MaskedDropout` (same parameter and buffer names, so the stacks fit it unchanged)."""
    template = copy.deepcopy(model)
    if getattr(template, "channels_last", False):
        template.channels_last = False  # memory formats cannot be asked for inside vmap
    for name, module in list(template.named_modules()):
        replacement = None
        if isinstance(module, (nn.LSTM, nn.GRU)):
            replacement = StackableRNN.of(module)
        elif isinstance(module, nn.RNNBase):
            raise MERError(f"runner.pack with vmap: {type(module).__name__} ({name}) has no stackable "
                           "implementation; use runner.pack_execution=loop or runner.parallel")
        elif type(module) is nn.Dropout:
            replacement = MaskedDropout.of(module)
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            parent = template.get_submodule(parent_name) if parent_name else template
            setattr(parent, child, replacement)
    return template


def dropout_shapes(template: nn.Module, x: torch.Tensor) -> list[tuple[tuple[int, ...], float, bool]]:
    """The input shape, rate and memory format of every dropout call of one forward pass on `x`, in call
    order (run once per input shape in eval mode: nothing is drawn, no statistics change)."""
    seen: list[tuple[tuple[int, ...], float, bool]] = []

    def record(module, args):
        t = args[0]
        seen.append((tuple(t.shape), float(module.p), t.dim() == 4 and not t.is_contiguous()
                     and t.is_contiguous(memory_format=torch.channels_last)))

    hooks = [m.register_forward_pre_hook(record) for m in template.modules() if isinstance(m, MaskedDropout)]
    training = template.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            template.eval()
            template(x)
    finally:
        template.train(training)
        for hook in hooks:
            hook.remove()
    return seen


# -- the stacks ---------------------------------------------------------------------------------------
def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, leaf = name.rpartition(".")
    return (module.get_submodule(parent) if parent else module), leaf


def _dense_order(t: torch.Tensor) -> list[int] | None:
    """The dims of `t` from outermost to innermost in memory, if it is dense (no gaps, no overlap)."""
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), -t.shape[d]))
    expected = 1
    for d in reversed(order):
        if t.shape[d] != 1 and t.stride(d) != expected:
            return None
        expected *= t.shape[d]
    return order


def _stacked_like(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors stacked on a new first dimension, each slice with the strides of its original (a
    channels-last weight stays channels-last, so the member's arithmetic is unchanged)."""
    first = tensors[0]
    order = _dense_order(first) if first.dim() and not first.is_contiguous() else None
    if order is not None:
        base = torch.empty((len(tensors), *[first.shape[d] for d in order]), dtype=first.dtype, device=first.device)
        stacked = base.permute(0, *[1 + order.index(d) for d in range(first.dim())])
    else:
        stacked = torch.empty((len(tensors), *first.shape), dtype=first.dtype, device=first.device)
    with torch.no_grad():
        for i, t in enumerate(tensors):
            stacked[i].copy_(t)
    return stacked


class StackedModels:
    """M modules of one architecture whose parameters and buffers live in shared stacks (see the module
    docstring). `members[m]` is member m's own module; `params[name]` / `buffers[name]` the stacks (M, ...)."""

    def __init__(self, members: list[nn.Module], device: torch.device | str = "cpu"):
        if not members:
            raise ValueError("StackedModels needs at least one member")
        device = torch.device(device)
        self.members = [m.to(device) for m in members]
        first = self.members[0]
        self.param_names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        for m in self.members[1:]:
            if [n for n, _ in m.named_parameters()] != self.param_names or \
                    [n for n, _ in m.named_buffers()] != self.buffer_names:
                raise ValueError("StackedModels: the members are not of one architecture")
        self.params = {n: _stacked_like([dict(m.named_parameters())[n].detach() for m in self.members])
                       for n in self.param_names}
        self.buffers = {n: _stacked_like([dict(m.named_buffers())[n] for m in self.members])
                        for n in self.buffer_names}
        for i, member in enumerate(self.members):  # each member's tensors become views of the stacks
            for n in self.param_names:
                owner, leaf = _owner(member, n)
                old = owner._parameters[leaf]
                owner._parameters[leaf] = nn.Parameter(self.params[n][i], requires_grad=old.requires_grad)
            for n in self.buffer_names:
                owner, leaf = _owner(member, n)
                owner._buffers[leaf] = self.buffers[n][i]

    def __len__(self) -> int:
        return len(self.members)

    def member_params(self, i: int) -> dict[str, nn.Parameter]:
        return dict(self.members[i].named_parameters())

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's `state_dict`, detached copies on CPU (what its checkpoint stores)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.members[i].state_dict().items()}

    def load_member_state(self, i: int, state: dict[str, torch.Tensor]) -> None:
        """Load a `state_dict` into member i (into its views of the stacks)."""
        own = self.members[i].state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise MERError(f"a checkpoint does not fit this model (missing {missing[:4]}, unexpected {unexpected[:4]}): "
                           "was it trained with another model config?")
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(state[k])


class _Objective(nn.Module):
    """A member's training objective as a module call, so that `functional_call` can swap its tensors."""

    def __init__(self, model: nn.Module, objective: Callable):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return self.objective(self.model, x, y)


class VmapForward:
    """The members' forward passes as one vmapped call (`torch.func.functional_call` of a stackable
    template over the stacks, or over the rows of a subset of members)."""

    def __init__(self, stacked: StackedModels, objective: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple]):
        self.stacked = stacked
        self.template = stackable_template(stacked.members[0])
        self.call = _Objective(self.template, objective)  # (x, y) -> (logits, loss) of one member
        self._shapes: dict[tuple, list] = {}

    def masks_for(self, x_shape: tuple[int, ...], generators: list[torch.Generator], device) -> list[torch.Tensor]:
        """Per dropout call, the stacked masks of the members (each from its own generator)."""
        if x_shape not in self._shapes:
            self._shapes[x_shape] = dropout_shapes(self.template, torch.zeros(x_shape, device=device))
        shapes = self._shapes[x_shape]
        if not any(p > 0 for _, p, _ in shapes):
            return []
        per_member = [draw_masks(shapes, g, device) for g in generators]
        return [torch.stack([masks[j] for masks in per_member]) for j in range(len(per_member[0]))]

    def __call__(self, rows: list[int] | None, x: torch.Tensor, y: torch.Tensor, masks: list[torch.Tensor],
                 params: dict[str, torch.Tensor], training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (G, B, K) and losses (G,) of the members `rows` (None: all) on x (G, B, ...), y (G, B).

        `params`: the stacks to differentiate (leaves that require grad) or the plain ones. Buffers are
        updated in place (BatchNorm statistics, per member): on the stacks themselves for all members,
        on gathered rows written back for a subset.
        """
        from torch.func import functional_call, vmap

        buffers = self.stacked.buffers
        index = None
        if rows is not None:
            index = torch.as_tensor(rows, device=x.device)
            params = {n: p.index_select(0, index) for n, p in params.items()}
            gathered = {n: b.index_select(0, index) for n, b in buffers.items()}
        else:
            gathered = buffers
        first = self.stacked.members[0]
        if hasattr(first, "backbone_frozen"):  # a frozen backbone keeps its BatchNorm and dropout in eval mode
            self.template.backbone_frozen = first.backbone_frozen
        self.template.train(training)
        call = self.call

        def one(p, b, xm, ym, ms):
            tensors = {f"model.{n}": t for n, t in p.items()}
            tensors.update({f"model.{n}": t for n, t in b.items()})
            with feeding(ms):
                return functional_call(call, tensors, (xm, ym))

        logits, losses = vmap(one, randomness="different")(params, gathered, x, y, masks)
        if index is not None and training:
            with torch.no_grad():
                for n, b in buffers.items():
                    b.index_copy_(0, index, gathered[n])
        return logits, losses
