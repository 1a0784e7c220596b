"""The contract every model family is measured through, and its runner.

A family (a shipped one, registered in core/families/, or the user's own
module; a family may also have a faster path of its own) tells the
measurement three things:

- `build(depth, shortcut, norm, options)`: one cell's model, its inputs (a
  tuple of tensors, any random ones drawn after the model) and its loss
  function of the model's output;
- `layer_of(name, depth)`: the layer (block) a parameter belongs to, -1 for
  parameters outside every block;
- `mode`: "eval" or "train" (BatchNorm on batch statistics).

and may add statistics of its own through one hook, `watch(model, depth)`:
forward hooks that record the residual stream's RMS per layer and per-cell
values (e.g. a transformer's token collapse).

A family may also give `redraw(model)`: a model build() made, drawn again
in place exactly as build() draws it from the random state.  The runner
then builds one model per depth, shortcut and norm (building costs more
than measuring a small cell) and measures each seed on it, with the inputs
and loss function build() gave: a family that gives redraw promises that
they do not depend on the seed and that a forward pass changes nothing a
later cell sees (no buffer it updates, as train-mode BatchNorm does).

For each cell the runner (measure_cell):

1. calls torch.manual_seed(seed), then build(...), on the CPU in float32, so
   that every device and dtype starts from the same numbers (or, for a
   family with redraw, redraw(model) on a model of the same depth,
   shortcut and norm still on the CPU in float32);
2. moves the model and its inputs to the cell's device and dtype (where
   they are not there already), sets the mode, computes
   loss_fn(model(*inputs)) and one backward pass;
3. writes one record per named_parameters() entry: its layer, its name,
   the other names of the same Parameter (tied weights, which
   named_parameters() yields once), its dimensions and element count, the
   mean |grad| in the parameter's dtype (the book's statistic), the L2 norm
   in float64, the share of its gradient's elements that are exactly 0,
   and what the hook recorded.  A parameter that gets no gradient (a
   LayerNorm that is not applied) has a zero gradient.  Overflow or NaN is
   data: finite = False.

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import torch

from shortcutbench.core import families
from shortcutbench.core.blocks import OUTSIDE, module_of, shown
from shortcutbench.core.blocks import numbers as block_numbers
from shortcutbench.core.records import COLUMNS, Record, branch_value
from shortcutbench.core.sweep import ChunkParams, cells_of, chunk_family, chunk_options
from shortcutbench.measuring.devices import deterministic_ops, torch_device

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
SMALL = 2 ** 14  # gradients with fewer entries are stacked for their statistics
# The per-cell statistics a family's watch hook may give: record columns
# that are NaN for the families without them (a transformer's token collapse).
CELL_STATISTICS = ("token_cosine",)

# What a watch hook gives back once the model has run: the stream's RMS per
# layer ({layer: 0-d tensor}) and per-cell values ({column: 0-d tensor}).
Watched = tuple[dict[int, torch.Tensor], dict[str, torch.Tensor]]


class Family:
    """A model family, as the measurement sees it.  Subclasses set `name`
    and `mode` and implement build() and layer_of(); watch() and redraw()
    are optional (the module's docstring).

    A family whose build() takes the shortcut itself (`own_switch`) gets
    shortcut_scale lambda and branch_scale alpha from the generic switch
    (measuring/shortcut_switch.py): the residual adds of its blocks
    (block_modules) become lambda * skip + alpha * branch.  One built with
    its shortcuts whatever the cell (own_switch False) has them removed by
    the same switch."""

    name = ""
    mode = "eval"
    own_switch = True
    residual_adds: int | None = None  # the most residual adds a block may have

    def build(self, depth: int, shortcut: bool, norm: str,
              options: dict[str, Any]) -> tuple[torch.nn.Module, tuple, Callable]:
        raise NotImplementedError

    def layer_of(self, name: str, depth: int) -> int:
        raise NotImplementedError

    def block_modules(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        """The modules that hold the residual adds, in block order: those the
        spec's `switch_blocks` pattern names."""
        pattern = families.spec(self.name).switch_blocks
        if pattern is None:
            raise ValueError(f"{families.spec(self.name).section or self.name}: the family has "
                             f"no switch_blocks pattern for the generic shortcut switch; it "
                             f"cannot take shortcut_scales or branch_scales")
        return modules_of(model, pattern)

    def forward_context(self, model: torch.nn.Module, inputs: tuple | dict, loss_fn: Callable,
                        cell: dict[str, Any]) -> contextlib.AbstractContextManager:
        """What the cell's forward and backward pass run under: the generic
        switch where the cell's lambda, alpha or missing shortcut is not what
        build() gave; else nothing.  Its plan (which adds, at which source
        lines) is made once per depth and norm."""
        if not cell["shortcut"] and self.own_switch:
            return contextlib.nullcontext()
        scale = cell["shortcut_scale"] if cell["shortcut"] else 0.0
        alpha = branch_value(cell["branch_scale"], cell["depth"]) if cell["shortcut"] else 1.0
        if scale == 1.0 and alpha == 1.0:
            return contextlib.nullcontext()
        from shortcutbench.measuring import shortcut_switch

        modules = self.block_modules(model)
        plan = self.residual_plan(model, modules, inputs, loss_fn, (cell["depth"], cell["norm"]))
        return shortcut_switch.rewritten(model, modules, plan, scale, alpha)

    @functools.cached_property
    def _plans(self) -> dict:
        return {}

    def residual_plan(self, model: torch.nn.Module, modules: list[tuple[str, torch.nn.Module]],
                      inputs: tuple | dict, loss_fn: Callable, key: tuple) -> Any:
        """The generic switch's plan for the model (shortcut_switch.SwitchPlan:
        its blocks' residual adds and their source lines, no numbers), found
        once per `key` (depth and norm) and kept."""
        if key not in self._plans:
            from shortcutbench.measuring import shortcut_switch

            self._plans[key] = shortcut_switch.find_residual_adds(
                model, modules, lambda: loss_fn(call_model(model, inputs)),
                residual_adds=self.residual_adds,
                family=families.spec(self.name).section or self.name)
        return self._plans[key]

    def watch(self, model: torch.nn.Module, depth: int) -> Callable[[Any], Watched] | None:
        """Register forward hooks on the model; return a function that, given
        the model's output, gives what they saw (at every forward pass, of
        that pass).  None: nothing to watch."""
        return None

    # redraw(model) -> None: optional (the module's docstring); None: the
    # runner builds every cell's model.
    redraw: Callable[[torch.nn.Module], None] | None = None

    def engine(self, options: dict[str, Any]) -> tuple[str, str]:
        """The path its chunks' cells take (its name, and in words), for the
        log and the machine facts: here one cell at a time."""
        return "exact", "one cell at a time through the measurement contract"

    def measure_cells(self, cells: list[dict[str, Any]], options: dict[str, Any],
                      progress: TextIO | None = sys.stderr) -> list[Record]:
        """Every cell's records (cells: dicts of records.Cell's fields), cell
        after cell in their order.  Here through the contract, each cell as
        measure_cell measures it (a family with redraw(): the cells of one
        model one after another, the records in the cells' order); a family
        with a faster path of its own overrides it, with the same records."""
        configure_torch()
        by_cell = [None] * len(cells)
        report = Progress(len(cells), f"{self.name} cells", progress)
        for group in model_groups(self, cells):
            built = None
            for i in group:
                if built is not None and not built.redrawable:
                    built = None  # one model alive at a time: freed before the next is built
                built = prepared(self, cells[i], options, built)
                by_cell[i] = measured(self, cells[i], built)
                report(1)
        return [record for records in by_cell for record in records]


class Progress:
    """A measuring job's progress on its log: "measured n/total cells in t
    s" each time another tenth of the cells is done, and at the end."""

    def __init__(self, total: int, what: str = "cells", stream: TextIO | None = sys.stderr):
        self.total, self.what, self.stream = total, what, stream
        self.done, self.step = 0, max(1, total // 10)
        self.started = time.perf_counter()

    def __call__(self, n: int) -> None:
        """`n` more cells are done."""
        before, self.done = self.done, self.done + n
        if self.stream and (self.done // self.step > before // self.step
                            or self.done == self.total):
            print(f"measured {self.done}/{self.total} {self.what} in "
                  f"{time.perf_counter() - self.started:.1f} s", file=self.stream, flush=True)


def modules_of(model: torch.nn.Module, pattern: str) -> list[tuple[str, torch.nn.Module]]:
    """The blocks a pattern numbers, as modules in block order: each
    parameter's name up to the end of the pattern's match.  A ValueError
    where a block's name is not a module (parameters in a ParameterList):
    the switch would have nothing to rewrite."""
    found = {}
    numbered = block_numbers(pattern, [name for name, _ in model.named_parameters()])
    for name, layer in numbered.items():
        if layer != OUTSIDE:
            found.setdefault(layer, module_of(pattern, name))
    modules = dict(model.named_modules())
    missing = [found[layer] for layer in sorted(found) if found[layer] not in modules]
    if missing:
        raise ValueError(f"the blocks {shown(pattern)} numbers are not modules ({missing[0]!r} "
                         f"is a parameter's name up to the pattern's end); the shortcut switch "
                         f"rewrites the adds inside a block's module: write a pattern that "
                         f"ends where a block's module does, e.g. 'blocks\\.(\\d+)\\.'")
    return [(found[layer], modules[found[layer]]) for layer in sorted(found)]


def family_of(name: str, options: dict[str, Any]) -> Family:
    """The measuring class a family's spec names (core/families/), made
    for a chunk's options (a user family's: its factory, options, blocks)."""
    module, _, cls = families.spec(name).measuring.partition(":")
    family = getattr(importlib.import_module(module), cls)
    if name in families.SHIPPED:
        return family()
    return family(name, options)


def to_cell(inputs, device: torch.device, dtype: torch.dtype):
    """Inputs (a tensor, a tuple of them or a dict) on the cell's device;
    floating-point ones in its dtype (token ids and labels keep theirs)."""
    if isinstance(inputs, dict):
        return {key: to_cell(x, device, dtype) for key, x in inputs.items()}
    if isinstance(inputs, tuple | list):
        return tuple(to_cell(x, device, dtype) for x in inputs)
    if inputs.is_floating_point():
        return inputs.to(device, dtype)
    return inputs.to(device)


def call_model(model: torch.nn.Module, inputs: tuple | dict) -> Any:
    """The model on its inputs: a dict as keyword arguments (Hugging Face's
    model(**inputs)), a tuple as positional ones."""
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(*inputs)


class Built(NamedTuple):
    """A cell's model on its device, in its mode, with what build() gave
    and what its family watches."""
    model: torch.nn.Module
    inputs: tuple | dict
    loss_fn: Callable
    seen: Callable[[Any], Watched] | None
    # its family has redraw() and it stayed where build() made it (a model
    # moved to a device or dtype would be drawn there, not on the CPU)
    redrawable: bool


def model_groups(family: Family, cells: list[dict[str, Any]]) -> list[list[int]]:
    """The cells' indices in the order they are measured: one at a time in
    their order, or, for a family with redraw(), grouped by the model they
    share (depth, shortcut, norm, device, dtype), in first-seen order."""
    if family.redraw is None:
        return [[i] for i in range(len(cells))]
    groups = {}
    for i, cell in enumerate(cells):
        key = tuple(cell[k] for k in ("depth", "shortcut", "norm", "device", "dtype"))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def prepared(family: Family, cell: dict[str, Any], options: dict[str, Any],
             previous: Built | None = None) -> Built:
    """The cell's model, seeded: `previous` (the model of an earlier cell
    of the same depth, shortcut, norm, device and dtype) drawn again where
    it is redrawable, else a new one from build()."""
    torch.manual_seed(cell["seed"])
    if previous is not None and previous.redrawable:
        family.redraw(previous.model)
        previous.model.zero_grad(set_to_none=True)
        return previous
    device, dtype = torch_device(cell["device"]), DTYPES[cell["dtype"]]
    model, inputs, loss_fn = family.build(cell["depth"], cell["shortcut"], cell["norm"], options)
    moved = moves(model, device, dtype)
    if moved:
        model = model.to(device, dtype)
    inputs = to_cell(inputs, device, dtype)
    model.train(family.mode == "train")
    return Built(model, inputs, loss_fn, family.watch(model, cell["depth"]),
                 family.redraw is not None and not moved)


def moves(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether model.to(device, dtype) would change a tensor of the model
    (it casts floating-point and complex ones)."""
    return any(t.device != device
               or ((t.is_floating_point() or t.is_complex()) and t.dtype != dtype)
               for t in itertools.chain(model.parameters(), model.buffers()))


def measure_cell(family: Family, cell: dict[str, Any], options: dict[str, Any]) -> list[Record]:
    """Measure one cell (a dict of records.Cell's fields) of `family`;
    returns its records, one per named parameter, in records.COLUMNS order."""
    return measured(family, cell, prepared(family, cell, options))


def measured(family: Family, cell: dict[str, Any], built: Built) -> list[Record]:
    """One cell's forward and backward pass on its prepared model, and its
    records."""
    model, inputs, loss_fn, seen = built.model, built.inputs, built.loss_fn, built.seen
    device = torch_device(cell["device"])
    with (deterministic_ops(families.spec(family.name).section, cell["device"]),
          family.forward_context(model, inputs, loss_fn, cell)):
        output = call_model(model, inputs)
        loss = loss_fn(output)
        loss.backward()

    names, parameters = zip(*model.named_parameters())
    aliases = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    with torch.no_grad():
        streams, extra = seen(output) if seen else ({}, {})
        unknown = set(extra) - set(CELL_STATISTICS)
        if unknown:
            raise ValueError(f"{family.name}'s watch hook gives {sorted(unknown)}, which no "
                             f"record column holds; it may give {list(CELL_STATISTICS)}")
        rms_layers = sorted(streams)
        # One table for every number, brought to Python in one .tolist():
        # (mean |grad|, L2) per parameter, the zero share per parameter, the
        # stream's RMS per layer, the family's per-cell values, the loss.
        n = len(names)
        table = torch.empty(3 * n + len(rms_layers) + len(extra) + 1,
                            dtype=torch.float64, device=device)
        order, groups = [], {}
        for k, p in enumerate(parameters):
            shape = p.shape
            # (scalars alone: a reduction over no dimension reduces over all)
            groups.setdefault(shape if p.dim() and p.numel() < SMALL else k, []).append(k)
        for group in groups.values():
            start = len(order)
            grads = [_grad(parameters[k]) for k in group]
            grad_statistics(grads, table[2 * start:2 * (start + len(group))])
            zero_shares(grads, table[2 * n + start:2 * n + start + len(group)])
            order.extend(group)
        at = 3 * n
        for layer in rms_layers:
            table[at] = streams[layer]
            at += 1
        for column in extra:
            table[at] = extra[column]
            at += 1
        table[at] = loss.detach()
        values = table.tolist()

    statistics = {k: values[2 * i:2 * i + 2] + [values[2 * n + i]] for i, k in enumerate(order)}
    output_rms = dict(zip(rms_layers, values[3 * n:]))
    extras = dict(zip(extra, values[3 * n + len(rms_layers):]))
    loss_value = values[-1]
    finite = all(math.isfinite(v) for v in values)
    fields = {c: cell[c] for c in COLUMNS if c in cell}
    records = []
    for k, name in enumerate(names):
        layer = family.layer_of(name, cell["depth"])
        grad_abs_mean, grad_l2, zero_share = statistics[k]
        tied = ",".join(other for other in aliases[id(parameters[k])] if other != name)
        records.append({
            **fields, "layer": layer, "param": name, "tied": tied, "ndim": parameters[k].dim(),
            "numel": parameters[k].numel(), "grad_abs_mean": grad_abs_mean, "grad_l2": grad_l2,
            "grad_zero_share": zero_share, "bias_grad_abs_mean": math.nan,
            "output_rms": output_rms.get(layer, math.nan), "grad_stream_cos": math.nan,
            "loss": loss_value, "output": math.nan, "finite": finite,
            **{column: extras.get(column, math.nan) for column in CELL_STATISTICS}})
    return [{column: record[column] for column in COLUMNS} for record in records]


def _grad(parameter: torch.Tensor) -> torch.Tensor:
    # A parameter the loss does not reach (a LayerNorm that is not applied)
    # has no gradient: it is zero.
    return parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)


def grad_statistics(grads: list[torch.Tensor], out: torch.Tensor) -> None:
    """Write (mean |grad|, L2 norm) per gradient, interleaved, into `out`,
    for gradients of one shape.  The mean in the gradient's dtype (the
    book's statistic), the norm in float64, where a finite gradient's square
    cannot overflow.  Stacked, the reductions give the same floats as one
    gradient at a time (the tests check it bit for bit)."""
    if len(grads) == 1:
        out[0] = grads[0].abs().mean()
        out[1] = torch.linalg.vector_norm(grads[0], dtype=torch.float64)
        return
    stacked = torch.stack(grads)
    dims = tuple(range(1, stacked.dim()))
    out[0::2] = stacked.abs().mean(dim=dims)
    out[1::2] = torch.linalg.vector_norm(stacked, dim=dims, dtype=torch.float64)


def zero_shares(grads: list[torch.Tensor], out: torch.Tensor) -> None:
    """Write the share of exactly-zero elements per gradient into `out`, for
    gradients of one shape (a NaN is not zero; an empty gradient has none)."""
    numel = grads[0].numel()
    if len(grads) == 1:
        zeros = numel - torch.count_nonzero(grads[0])
    else:
        stacked = torch.stack(grads)
        zeros = numel - torch.count_nonzero(stacked, dim=tuple(range(1, stacked.dim())))
    out[:] = zeros.double() / max(numel, 1)


def rms(tensor: torch.Tensor) -> torch.Tensor:
    """The RMS of a tensor, in float64."""
    return tensor.double().square().mean().sqrt()


def configure_torch() -> None:
    """One intra-op thread: the same bytes every run, and no oversubscription
    when Snakemake runs one measuring job per core."""
    torch.set_num_threads(1)


def measure_chunk(params: ChunkParams, progress: TextIO | None = sys.stderr) -> list[Record]:
    """Measure every cell of a chunk (sweep.Chunk.params()) in this process
    through its family's measuring class; returns their records, cell after
    cell in sweep.cells_of's order."""
    options = chunk_options(params)
    family = family_of(chunk_family(params), options)
    return family.measure_cells(cells_of(params), options, progress)
