"""A shortcut switch for any model whose blocks add their input back.

A model built with its shortcuts can be measured without them, or with
x = lambda * skip + alpha * branch, without editing its code: the residual
adds are found by running the model once (`find_residual_adds`), and
rewritten while a context is active (`rewritten`).

How a residual add is found.  A TorchFunctionMode over the forward tags every
tensor with the Parameters it depends on (a bit mask) and its distance, in
ops, from the input of each active scope: the model's input (its first
forward call) and the input of the block running (pushed by a forward
pre-hook, popped by a forward hook).  Every `+`, `+=`, `__radd__`,
`operator.add` and `sum()` reaches the mode as Tensor.add, Tensor.add_ or
torch.add.  An add of two tensors inside a block is residual when both derive
from the block's input and

- one operand's parameters are a strict subset of the other's: that one is
  the skip (x + f(x), out + option_a(x), LayerScale's x + gamma * f(x)); or
- neither is a subset, both have parameters of their own since the block's
  input, those are disjoint, and one operand is at most 3 ops from the input:
  that one is the skip (a projection shortcut: 1x1 conv + BN, avg-pool +
  conv + BN).

The parameter rule keeps GELU's x + 0.044715 x^3, LayerNorm's +eps and
+shift, bias adds, RoPE and masks passed in as arguments (not the block's
input) from being taken for shortcuts.  A model may add in its parent's
loop (x = x + layer(x)): an add outside every block, of two tensors derived
from the model's input, whose branch has parameters the skip lacks, all of
them within one block's parameters, is that block's residual add.

What cannot be rewritten is refused (SwitchError): an add under activation
checkpointing, inside a custom torch.autograd.Function or in a compiled
module replays the original forward in backward, so a rewrite would give
silently wrong gradients.  Seen as: grad mode off inside a block while it was
on at the start (reentrant checkpoint, Function.forward), saved-tensor
default hooks that were not there at the start (non-reentrant checkpoint),
an OptimizedModule or a module with `_compiled_call_impl` (Module.compile()).
Residuals written as lerp, addcmul or a fused add+norm kernel are not seen:
the block then has no add, which is refused too.

At rewrite time the same detection runs again and decides which adds to
rewrite; each one found must be the plan's next add of its block (same
source line, same skip operand), and each block must end a forward with the
plan's count, else SwitchError.  Matching source lines alone would rewrite
the wrong add where one line holds two (`x + self.f(self.ln(x + pos))`) or
where control flow depends on the data; re-detecting costs the tagging again
(1.1-2.7x a forward and backward, field notes) but cannot pick a different
add than the plan without saying so.

This module imports torch and never pandas.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

# The adds every spelling of a + b reaches the mode as.
ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__,
        torch.Tensor.__iadd__, torch.Tensor.__radd__}
IN_PLACE = {torch.Tensor.add_, torch.Tensor.__iadd__}
PROJECTION_OPS = 3  # the longest projection shortcut: avg-pool, conv, BN
MODEL = 0           # the model input's scope id
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


class SwitchError(ValueError):
    """A model whose shortcuts cannot be switched; the message names the
    block(s), the source lines and the fix."""


@dataclass(frozen=True)
class ResidualAdd:
    where: str  # "modeling_gpt2.py:285": the add's source file (basename) and line
    skip: int   # which operand (0 or 1, as the add receives them) is the skip


@dataclass(frozen=True)
class SwitchPlan:
    blocks: tuple[str, ...]                    # block module names, in block order
    adds: tuple[tuple[ResidualAdd, ...], ...]  # per block, in the order they run

    def summary(self) -> dict:
        """JSON-able: the number of blocks, the adds per block (one int when
        every block has the same count, else one per block) and the first
        block's source lines in order."""
        counts = [len(adds) for adds in self.adds]
        same = len(set(counts)) <= 1
        return {"blocks": len(self.blocks),
                "adds_per_block": (counts[0] if counts else 0) if same else counts,
                "where": [add.where for add in self.adds[0]] if self.adds else []}


# A tensor's tag: (bit mask of the Parameters it depends on,
#                  {active scope id: distance in ops from that scope's input}).
Tag = tuple[int, dict[int, int]]
_UNTAGGED: Tag = (0, {})


@dataclass
class _Scope:
    id: int
    block: int         # index into blocks; -1 for the model
    input_mask: int    # the parameters the scope's input already depends on


class _Tagger(TorchFunctionMode):
    """Tags tensors as they are made and classifies every add of two
    tensors; with `scales`, rewrites the residual ones (checked against
    `plan`)."""

    def __init__(self, model, blocks, family, plan=None, scales=None):
        super().__init__()
        self.names = [name for name, _ in blocks]
        self.family = family
        self.plan, self.scales = plan, scales
        self.tags: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.bits: dict[int, int] = {}  # id(Parameter) -> its bit
        for p in model.parameters():
            self._bit(p)
        self.block_masks = [self._mask(module.parameters()) for _, module in blocks]
        self.stack: list[_Scope] = []
        self.next_scope = MODEL + 1
        self.recording = True  # detection: the first forward call of the model only
        self.found: list[list[ResidualAdd]] = [[] for _ in blocks]
        self.refused: dict[tuple[str, str], list[str]] = {}  # (where, why) -> blocks
        self.grad_at_start = torch.is_grad_enabled()
        self.hooks_at_start = _saved_tensor_hooks()

    # ------------------------------------------------------------ tags

    def _bit(self, p):
        if id(p) not in self.bits:
            self.bits[id(p)] = 1 << len(self.bits)
        return self.bits[id(p)]

    def _mask(self, parameters):
        mask = 0
        for p in parameters:
            mask |= self._bit(p)
        return mask

    def tag(self, t) -> Tag:
        tag = self.tags.get(t)
        if tag is not None:
            return tag
        if isinstance(t, nn.Parameter):
            # F.linear(x, self.weight) and the like: a Parameter is its own set.
            return (self._bit(t), {})
        return _UNTAGGED

    def _propagate(self, inputs, outputs):
        mask, dists = 0, {}
        active = {scope.id for scope in self.stack}
        for t in inputs:
            t_mask, t_dists = self.tag(t)
            mask |= t_mask
            for scope, d in t_dists.items():
                if scope in active and d < dists.get(scope, d + 1):
                    dists[scope] = d
        if not mask and not dists:
            return
        tag = (mask, {scope: d + 1 for scope, d in dists.items()})
        for t in outputs:
            self.tags[t] = tag

    def enter(self, block, args, kwargs):
        """A scope starts: its input (the first tensor argument) is at distance 0."""
        x = _first_tensor(args, kwargs)
        scope = _Scope(self.next_scope if block >= 0 else MODEL, block, 0)
        self.next_scope += block >= 0
        if x is not None:
            mask, dists = self.tag(x)
            scope.input_mask = mask
            self.tags[x] = (mask, {**dists, scope.id: 0})
        self.stack.append(scope)

    def leave(self):
        self.stack.pop()

    # ------------------------------------------------------------ the mode

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in ADDS and self.stack:
            operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
            if len(operands) == 2:
                found = self._residual(operands)
                if found is not None:
                    return self._residual_add(func, args, kwargs, operands, *found)
        result = func(*args, **kwargs)
        inputs = _tensors(args) + _tensors(kwargs.values())
        if inputs:
            self._propagate(inputs, _tensors((result,)))
        return result

    def _residual(self, operands):
        """(block index, skip operand) when the add is residual, else None."""
        (mask_a, dists_a), (mask_b, dists_b) = (self.tag(t) for t in operands)
        scope = self.stack[-1]
        if scope.id not in dists_a or scope.id not in dists_b:
            return None
        if mask_a != mask_b and mask_a & ~mask_b == 0:
            skip = 0
        elif mask_a != mask_b and mask_b & ~mask_a == 0:
            skip = 1
        elif scope.block >= 0:
            own_a, own_b = mask_a & ~scope.input_mask, mask_b & ~scope.input_mask
            near_a, near_b = (d[scope.id] <= PROJECTION_OPS for d in (dists_a, dists_b))
            if not own_a or not own_b or own_a & own_b or near_a == near_b:
                return None
            skip = 0 if near_a else 1
        else:
            return None
        if scope.block >= 0:
            return scope.block, skip
        # An add in the model's own forward (a loop of x = x + layer(x)):
        # the branch's new parameters must all be one block's.
        extra = (mask_b & ~mask_a) if skip == 0 else (mask_a & ~mask_b)
        owners = [k for k, block_mask in enumerate(self.block_masks)
                  if extra & ~block_mask == 0]
        return (owners[0], skip) if len(owners) == 1 else None

    def _residual_add(self, func, args, kwargs, operands, block, skip):
        where = _where()
        add = ResidualAdd(where, skip)
        problem = self._problem(func, kwargs, operands)
        if self.scales is None:  # detection
            if self.recording:
                if problem:
                    self.refused.setdefault((where, problem), []).append(self.names[block])
                else:
                    self.found[block].append(add)
            result = func(*args, **kwargs)
        else:
            name = self.names[block]
            if problem:
                raise SwitchError(self._prefix() + f"the residual add at {where} of block "
                                  f"{name!r} {problem}")
            self._check_planned(block, add)
            result = _combine(func, args, skip, *self.scales)
        self._propagate(operands, (result,))
        return result

    def _problem(self, func, kwargs, operands):
        """Why this residual add cannot be rewritten, or ''."""
        if self.grad_at_start and not torch.is_grad_enabled():
            return ("runs with grad mode off: under reentrant activation checkpointing or "
                    "inside a custom torch.autograd.Function, whose backward replays the "
                    "original forward; turn checkpointing off (HF: "
                    "model.gradient_checkpointing_disable()) or add outside the Function")
        if _saved_tensor_hooks() != self.hooks_at_start:  # a new (pack, unpack) tuple each call
            return ("runs under saved-tensor hooks that were not active at the start "
                    "(non-reentrant activation checkpointing replays the original forward in "
                    "backward); turn checkpointing off")
        if kwargs.get("alpha", 1) != 1 or kwargs.get("out") is not None:
            return "passes alpha= or out= to the add; write it as a plain a + b"
        if operands[0].shape != operands[1].shape:
            return (f"broadcasts {tuple(operands[0].shape)} with {tuple(operands[1].shape)}: "
                    f"without the skip the block's output would change shape")
        return ""

    def _check_planned(self, block, add):
        done = self.done[block]
        planned = self.plan.adds[block]
        if done >= len(planned) or planned[done] != add:
            expected = (f"{planned[done].where} (skip operand {planned[done].skip})"
                        if done < len(planned) else "no more adds")
            raise SwitchError(self._prefix() + f"block {self.names[block]!r}: residual add "
                              f"{done + 1} is at {add.where} (skip operand {add.skip}), the "
                              f"plan has {expected}; the model runs differently than when "
                              f"the plan was made: find_residual_adds again on this model")
        self.done[block] += 1

    def start_pass(self):
        self.done = [0] * len(self.names)

    def end_pass(self):
        short = [f"{name!r} ran {n} of {len(adds)} ({', '.join(a.where for a in adds)})"
                 for name, n, adds in zip(self.names, self.done, self.plan.adds)
                 if n != len(adds)]
        if short:
            raise SwitchError(self._prefix() + "residual adds the plan has did not run: "
                              + "; ".join(short) + "; find_residual_adds again on this model")

    def _prefix(self):
        return f"{self.family}: " if self.family else ""


def _combine(func, args, skip_operand, shortcut_scale, branch_scale):
    """lambda * skip + alpha * branch, in model.add_shortcut's operation
    order (so the same floats); an in-place add stays in place."""
    skip, branch = args[skip_operand], args[1 - skip_operand]
    if func not in IN_PLACE:
        if branch_scale != 1:
            branch = branch * branch_scale
        if shortcut_scale == 0:
            return branch  # the very tensor: no shortcut at all
        if shortcut_scale == 1:
            return skip + branch
        return skip * shortcut_scale + branch
    target = args[0]
    if skip_operand == 1:  # out += identity: `out` is the branch
        if branch_scale != 1:
            target.mul_(branch_scale)
        if shortcut_scale == 0:
            return target
        return target.add_(skip if shortcut_scale == 1 else skip * shortcut_scale)
    # x += f(x): `x` is the skip
    if branch_scale != 1:
        branch = branch * branch_scale
    if shortcut_scale == 0:
        return target.copy_(branch)
    if shortcut_scale != 1:
        target.mul_(shortcut_scale)
    return target.add_(branch)


def _tensors(values) -> list[torch.Tensor]:
    """The tensors among values, one level into lists and tuples (torch.cat's
    list, split's and max's tuples)."""
    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(t for t in v if isinstance(t, torch.Tensor))
    return found


def _first_tensor(args, kwargs):
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v
    return None


def _where() -> str:
    """file.py:line of the first frame outside torch and this module."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_TORCH_DIR) and filename != __file__:
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _saved_tensor_hooks():
    # The innermost saved-tensor default hooks (pack, unpack), or None.
    return torch._C._autograd._top_saved_tensors_default_hooks(False)


def _source(module: nn.Module) -> str:
    forward = type(module).forward
    try:
        lines, start = inspect.getsourcelines(forward)
        return f"{os.path.basename(inspect.getsourcefile(forward))}:{start}"
    except (OSError, TypeError):
        return type(module).__qualname__


def _refuse_compiled(model, blocks, family):
    """A compiled model or block runs a traced graph, not the forward the
    mode sees: refused before anything runs."""
    if "torch._dynamo" not in sys.modules:
        return  # nothing can have been compiled
    from torch._dynamo.eval_frame import OptimizedModule

    names = {id(module): name for name, module in model.named_modules()}
    compiled = [(names.get(id(m), "<model>") or "<model>", m)
                for m in (model, *model.modules(), *(b for _, b in blocks))
                if isinstance(m, OptimizedModule)
                or getattr(m, "_compiled_call_impl", None) is not None]
    if compiled:
        seen = dict(compiled)
        listed = ", ".join(f"{name!r} ({type(m).__name__}, forward at {_source(m)})"
                           for name, m in seen.items())
        raise SwitchError((f"{family}: " if family else "") + f"compiled module(s) {listed}: a "
                          f"compiled forward is not the one whose adds can be found and "
                          f"rewritten; build the model without torch.compile / "
                          f"Module.compile() to switch its shortcuts")


@contextlib.contextmanager
def _tagging(model, blocks, tagger: _Tagger) -> Iterator[None]:
    """The mode and the scope hooks, removed and the tags dropped on exit."""
    handles = []
    state = {"model_calls": 0}

    def model_pre(module, args, kwargs):
        state["model_calls"] += 1
        if tagger.scales is not None:
            tagger.start_pass()
        if state["model_calls"] == 1 or tagger.scales is not None:
            tagger.enter(-1, args, kwargs)

    def model_post(module, args, output):
        if state["model_calls"] == 1 or tagger.scales is not None:
            tagger.leave()
        if tagger.scales is not None:
            tagger.end_pass()
        else:
            tagger.recording = False  # detection: the first forward call only

    def block_pre(index):
        def hook(module, args, kwargs):
            tagger.enter(index, args, kwargs)
        return hook

    def block_post(module, args, output):
        tagger.leave()

    try:
        handles.append(model.register_forward_pre_hook(model_pre, with_kwargs=True))
        handles.append(model.register_forward_hook(model_post))
        for index, (_, block) in enumerate(blocks):
            handles.append(block.register_forward_pre_hook(block_pre(index), with_kwargs=True))
            handles.append(block.register_forward_hook(block_post))
        tagger.start_pass()
        with tagger:
            yield
    finally:
        for handle in handles:
            handle.remove()
        tagger.tags.clear()
        tagger.stack.clear()


@contextlib.contextmanager
def _unchanged(model) -> Iterator[None]:
    """The random generators and the model's buffers as they were: finding
    the adds on the model about to be measured changes neither its dropout
    draws nor its BatchNorm statistics."""
    cuda = sorted({t.device.index or 0 for t in (*model.parameters(), *model.buffers())
                   if t.device.type == "cuda"})
    kept = [(b, b.clone()) for b in model.buffers()]
    with torch.random.fork_rng(devices=cuda):
        yield
    with torch.no_grad():
        for buffer, value in kept:
            buffer.copy_(value)


def find_residual_adds(model: nn.Module, blocks: list[tuple[str, nn.Module]],
                       run: Callable[[], Any], residual_adds: int | None = None,
                       family: str = "") -> SwitchPlan:
    """Run `run()` (the caller's forward pass and loss, the model in its
    measuring mode) once under the tagging mode and return the residual adds
    each block makes; the random generators and the model's buffers are left
    as they were (run() should not step an optimizer).  Raises SwitchError,
    naming `family`, the block(s) and the source lines, when a block has no
    residual add, blocks of one class differ in count or source lines, a
    block has more than `residual_adds`, or an add runs where a rewrite would
    give wrong gradients (activation checkpointing, a custom autograd
    Function, a compiled module)."""
    prefix = f"{family}: " if family else ""
    if not blocks:
        raise SwitchError(prefix + "no block to find residual adds in; name the blocks (a "
                          "pattern whose groups number them)")
    _refuse_compiled(model, blocks, family)
    tagger = _Tagger(model, blocks, family)
    with _unchanged(model), _tagging(model, blocks, tagger):
        run()
    if tagger.refused:
        raise SwitchError(prefix + "; ".join(
            f"the residual add at {where} of block(s) {_names(names)} {why}"
            for (where, why), names in tagger.refused.items()))
    plan = SwitchPlan(tuple(name for name, _ in blocks),
                      tuple(tuple(adds) for adds in tagger.found))
    _validate(plan, blocks, residual_adds, prefix)
    return plan


def _validate(plan, blocks, residual_adds, prefix):
    lines = {name: [a.where for a in adds] for name, adds in zip(plan.blocks, plan.adds)}
    empty = [name for name in plan.blocks if not lines[name]]
    if empty:
        classes = sorted({type(m).__name__ for name, m in blocks if name in empty})
        sources = sorted({_source(m) for name, m in blocks if name in empty})
        raise SwitchError(prefix + f"no residual add found in block(s) {_names(empty)} "
                          f"({', '.join(classes)}, forward at {', '.join(sources)}): no add in "
                          f"their forward (or the model's) sums a tensor derived from the "
                          f"block's input with one that adds the block's parameters. A "
                          f"residual written as lerp, addcmul or a fused add+norm kernel is "
                          f"not seen; name only the blocks that have shortcuts, or build "
                          f"the model without shortcuts yourself")
    by_class: dict[type, list[str]] = {}
    for name, module in blocks:
        by_class.setdefault(type(module), []).append(name)
    for cls, names in by_class.items():
        first = names[0]
        differ = [n for n in names[1:] if lines[n] != lines[first]]
        if differ:
            other = differ[0]
            raise SwitchError(prefix + f"blocks of one class ({cls.__name__}) add their "
                              f"shortcuts differently: {first!r} at {lines[first]}, {other!r} "
                              f"at {lines[other]} ({len(differ)} block(s) differ from "
                              f"{first!r}: {_names(differ)}); an extra add (a mask computed "
                              f"from the input) or data-dependent control flow; the switch "
                              f"needs every block of a class to add the same way")
    if residual_adds is not None:
        over = [n for n in plan.blocks if len(lines[n]) > residual_adds]
        if over:
            raise SwitchError(prefix + f"block(s) {_names(over)} have {len(lines[over[0]])} "
                              f"residual adds ({over[0]!r} at {lines[over[0]]}), more than "
                              f"residual_adds = {residual_adds}; an add taken for a shortcut "
                              f"that is not one (a mask computed from the input?), or raise "
                              f"residual_adds if the block has that many shortcuts")


def _names(names, most=4):
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@contextlib.contextmanager
def rewritten(model: nn.Module, blocks: list[tuple[str, nn.Module]], plan: SwitchPlan,
              shortcut_scale: float, branch_scale: float) -> Iterator[None]:
    """While active, every residual add of every block computes
    lambda * skip + alpha * branch instead of skip + branch (lambda =
    shortcut_scale, alpha = branch_scale), in model.add_shortcut's operation
    order: lambda = 0 gives the branch itself, bit for bit a model written
    without the shortcut.  In-place adds stay in place.  The adds are found
    again as find_residual_adds found them and checked against `plan`; a
    difference raises SwitchError.  lambda = alpha = 1 changes nothing and
    installs nothing."""
    if shortcut_scale == 1 and branch_scale == 1:
        yield
        return
    if tuple(name for name, _ in blocks) != plan.blocks:
        raise SwitchError(f"the blocks {_names([n for n, _ in blocks])} are not the plan's "
                          f"{_names(list(plan.blocks))}; pass the blocks the plan was made with")
    _refuse_compiled(model, blocks, "")
    tagger = _Tagger(model, blocks, "", plan, (shortcut_scale, branch_scale))
    with _tagging(model, blocks, tagger):
        yield
