"""The batched engine (`engine: batched`): an MLP chunk's cells that differ
only in their seed, measured together.

The exact engine (exact.measure_cell) measures one cell at a time; a cell
of the book's MLP is a few tiny matmuls, so its time is Python and torch's
per-op overhead.  Here the parameters of BATCH seeds are stacked and go
forward and backward through torch.baddbmm (1.4-2.2x faster than
torch.func.vmap over the same forward, measured at depths 8 and 64, widths
3 and 32), and every statistic is reduced for all of them in one op.

The inputs are the exact engine's: each seed's weights are drawn as it
draws them (seed, then the same draws on the CPU in float32), so only the
arithmetic's batching differs, and with it the last bits (README: the
precision contract, benchmarks/engine.py: the measured agreement).

A cell's bits depend on its seed and config alone, never on its chunk or
its companions: the batch is always BATCH seeds (the last one padded with
repeats of real seeds, whose results are dropped) and the job runs on one
thread, so every batch of one config is the same computation with other
numbers in it (tests/test_engine.py measures one cell in three chunks).
Cells whose batch would stack more than BATCH_ELEMENTS parameters
(core/families/mlp.py) are measured the exact way: their matmuls are big
enough on their own; the memory estimate of a chunk counts its deepest
stacked batch (core/families/mlp.py's chunk_mem_mb).
"""

import dataclasses
import sys
from collections.abc import Sequence
from typing import TextIO

import torch
import torch.nn.functional as F

from shortcutbench.core.families.mlp import BATCH
from shortcutbench.core.families.mlp import batchable as batchable_shape
from shortcutbench.core.records import Cell, Record, branch_value
from shortcutbench.measuring.devices import torch_device
from shortcutbench.measuring.family import DTYPES, Progress, configure_torch
from shortcutbench.measuring.mlp.exact import cell_records, measure_cell
from shortcutbench.measuring.mlp.model import (
    ACTIVATIONS,
    add_shortcut,
    init_parameters,
    layer_input,
    layer_sizes,
    sample_input,
)


def batchable(cell: Cell) -> bool:
    """Whether the batched engine stacks this cell: its config alone decides."""
    return batchable_shape(cell.depth, cell.width)


def measure_cells_batched(cells: Sequence[Cell],
                          progress: TextIO | None = sys.stderr) -> list[Record]:
    """Every cell's records, in the order of `cells` (as measure_cells gives
    them), the cells that differ only in their seed measured BATCH at a time."""
    configure_torch()
    by_cell: list[list[Record] | None] = [None] * len(cells)
    report = Progress(len(cells), stream=progress)
    # Cells that share their weights' draws (all but the shortcut, norm and
    # scales) are drawn once per seed; each variant then runs on them.
    draws: dict[tuple, list[int]] = {}
    for i, cell in enumerate(cells):
        if batchable(cell):
            draws.setdefault((cell.depth, cell.width, cell.init, cell.device, cell.dtype),
                             []).append(i)
        else:
            by_cell[i] = measure_cell(cell)
            report(1)
    for members in draws.values():
        seeds = list(dict.fromkeys(cells[i].seed for i in members))
        for start in range(0, len(seeds), BATCH):
            batch_seeds = seeds[start:start + BATCH]
            stacked = _draw_stacked(cells[members[0]], batch_seeds)
            position = {seed: p for p, seed in enumerate(batch_seeds)}
            variants: dict[Cell, list[int]] = {}
            for i in members:
                if cells[i].seed in position:
                    variants.setdefault(_variant(cells[i]), []).append(i)
            for indices in variants.values():
                rows = [position[cells[i].seed] for i in indices]
                rows += [rows[0]] * (BATCH - len(rows))  # padding: a real seed again
                records = _measure_batch(stacked, rows, [cells[i] for i in indices])
                for i, cell_records_ in zip(indices, records):
                    by_cell[i] = cell_records_
                report(len(indices))
    return [record for records in by_cell for record in records]


def _variant(cell: Cell) -> Cell:
    """The cell with its seed taken out: what the cells of one batch share."""
    return dataclasses.replace(cell, seed=0)


def _draw_stacked(cell: Cell, seeds: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(weights, biases)] per layer, each seed's along a new first dimension,
    drawn exactly as measure_cell draws them, then moved to the cell's device
    and dtype."""
    per_seed = []
    for seed in seeds:
        torch.default_generator.manual_seed(seed)
        per_seed.append(init_parameters(layer_sizes(cell.depth, cell.width), cell.init))
    device, dtype = torch_device(cell.device), DTYPES[cell.dtype]
    return [tuple(torch.stack([p[layer][k] for p in per_seed]).to(device, dtype)
                  for k in (0, 1))
            for layer in range(cell.depth)]


def _measure_batch(stacked, rows: list[int], cells: list[Cell]) -> list[list[Record]]:
    """Measure BATCH cells of one variant, whose seeds' parameters are
    `stacked`'s rows `rows`; returns the records of `cells` (the first
    len(cells) rows; the rest is padding)."""
    cell = cells[0]
    index = torch.tensor(rows, device=stacked[0][0].device)
    leaves = [t.index_select(0, index).requires_grad_() for pair in stacked for t in pair]
    act = ACTIVATIONS[cell.activation][0]
    alpha = branch_value(cell.branch_scale, cell.depth)

    # exact.measure_cell's forward, each seed's row of size 1 x width.
    x = sample_input(cell.width).to(leaves[0]).expand(BATCH, 1, cell.width)
    hidden = []
    for weight, bias in zip(leaves[0::2], leaves[1::2]):
        layer_output = act(torch.baddbmm(bias.unsqueeze(1), layer_input(x, cell.norm),
                                         weight.transpose(1, 2)))
        if cell.shortcut and x.shape == layer_output.shape:
            x = add_shortcut(x, layer_output, cell.shortcut_scale, alpha)
        else:
            x = layer_output
        hidden.append(x)
    # Each seed's MSE against 0; their sum's gradient is each seed's own.
    losses = F.mse_loss(x, torch.zeros_like(x), reduction="none")
    grads = torch.autograd.grad(losses.sum(), leaves + hidden)
    grads, stream_grads = grads[:len(leaves)], grads[len(leaves):]

    with torch.no_grad():
        last = cell.depth - 1  # the width -> 1 layer has shapes of its own
        table = torch.cat([
            _statistics(grads[0:2 * last:2], grads[1:2 * last:2], hidden[:last],
                        stream_grads[:last]),
            _statistics(grads[2 * last::2], grads[2 * last + 1::2], hidden[last:],
                        stream_grads[last:]),
        ]) if last else _statistics(grads[0::2], grads[1::2], hidden, stream_grads)
        # seeds first, then layer after layer, six numbers each; one copy
        per_seed = table.transpose(0, 1).flatten(1)
        ends = torch.stack([losses.flatten(), x.flatten()], dim=1).double()
        values, ends = per_seed.tolist(), ends.tolist()
    return [cell_records(c, values[j], *ends[j]) for j, c in enumerate(cells)]


def _statistics(weight_grads, bias_grads, hidden, stream_grads):
    """layers x BATCH x 6: exact._layer_statistics' six numbers for every
    seed of layers whose tensors all have the same shapes, in the same
    dtypes (means in the model's, the rest in float64)."""
    weight_grads, bias_grads = torch.stack(weight_grads), torch.stack(bias_grads)
    hidden, stream_grads = torch.stack(hidden), torch.stack(stream_grads)
    numel = weight_grads[0, 0].numel()
    cells = (-2, -1)
    return torch.stack([
        weight_grads.abs().mean(dim=cells).double(),
        torch.linalg.vector_norm(weight_grads, dim=cells, dtype=torch.float64),
        (numel - torch.count_nonzero(weight_grads, dim=cells)).double() / numel,
        bias_grads.abs().mean(dim=-1).double(),
        hidden.double().square().mean(dim=cells).sqrt(),
        _cosine(stream_grads, hidden),
    ], dim=2)


def _cosine(a, b):
    """cos(a, b) of each layer's and seed's vectors, in float64: NaN where
    either is zero (0/0)."""
    a, b = a.double().flatten(2), b.double().flatten(2)
    return (a * b).sum(dim=2) / (torch.linalg.vector_norm(a, dim=2)
                                 * torch.linalg.vector_norm(b, dim=2))
