"""One chunk of cells -> its records, its partial results, its machine facts.

`run_chunk` is the measuring job: the MLP's chunks are measured here, the
book's way made fast; every other family's through the contract of
measuring/family.py.

An MLP cell is one network (depth, width, seed, shortcut, activation, ...)
on one device in one dtype.  Its measurement is the book's
`print_gradients`: one forward pass on the sample input, MSE loss against
zero, one backward pass, then the mean |gradient| of every layer's weight,
plus a few more statistics; one record per layer.

This module imports torch and never pandas, seaborn or Snakemake.
"""

import math
import platform
import socket
import sys
import time
from collections.abc import Sequence
from os import PathLike
from typing import TextIO

import torch
import torch.nn.functional as F

from shortcutbench.core.files import write_json
from shortcutbench.core.host import cpu_name, imported_distributions
from shortcutbench.core.imports import blocked_imports
from shortcutbench.core.partials import chunk_partials, write_partial
from shortcutbench.core.records import Cell, Record, branch_value, record_fields
from shortcutbench.core.states import DEFAULT_BAND
from shortcutbench.core.store import write_records  # one Parquet file per chunk
from shortcutbench.core.sweep import ChunkParams, cells_of
from shortcutbench.measuring.devices import deterministic, torch_device
from shortcutbench.measuring.family import DTYPES, configure_torch, measure_chunk
from shortcutbench.measuring.model import (
    ExampleDeepNeuralNetwork,
    add_shortcut,
    forward,
    init_parameters,
    layer_input,
    layer_sizes,
    reinitialize_,
    sample_input,
)

BATCH_ELEMENTS = 2 ** 22  # gradient entries stacked at once for the statistics
# The config's `engine`, as a measuring job's log names it.
ENGINES = {"exact": "one cell at a time, bit for bit the book-style loop's numbers",
           "batched": "the cells of one config, 32 seeds at a time through torch.baddbmm; "
                      "cells too big to stack one at a time (measuring/batched.py)"}


def measure_cell(cell: Cell) -> list[Record]:
    """Measure one cell; returns its records, one dict per layer.

    Overflow or NaN is data: it shows up as inf/nan values and finite=False.
    """
    device = torch_device(cell.device)
    dtype = DTYPES[cell.dtype]

    # Seed right before the weights are drawn, as the book does.  Weights are
    # always drawn on the CPU in float32, so every device and dtype starts
    # from the same numbers.  (torch.manual_seed would also seed CUDA, which
    # nothing here draws from, at a cost on every call.)
    torch.default_generator.manual_seed(cell.seed)
    parameters = init_parameters(layer_sizes(cell.depth, cell.width), cell.init)
    if device.type != "cpu" or dtype != torch.float32:
        parameters = [(w.to(device, dtype), b.to(device, dtype)) for w, b in parameters]
    leaves = [t.requires_grad_() for pair in parameters for t in pair]

    x = sample_input(cell.width).to(device, dtype)
    output, hidden = forward(parameters, x, cell.shortcut, cell.activation,
                             cell.shortcut_scale, cell.norm,
                             branch_value(cell.branch_scale, cell.depth))
    loss = F.mse_loss(output, torch.zeros_like(output))
    # dL/dx_l of every stream state comes along for grad_stream_cos; asking
    # for it changes no weight gradient (tests/test_model.py checks the bits).
    grads = torch.autograd.grad(loss, leaves + hidden)
    grads, stream_grads = grads[:len(leaves)], grads[len(leaves):]

    # Layers of one shape get their statistics in one batched op each, and all
    # numbers reach Python in one copy (an .item() per number would cost a
    # call and a device sync each).  The batched reductions give the same
    # floats as one layer at a time (tests/test_model.py checks it).  A batch
    # copies its gradients, so it holds at most BATCH_ELEMENTS of them: big
    # cells stay near the memory of their parameters and gradients.
    with torch.no_grad():
        per_batch = max(1, BATCH_ELEMENTS // (cell.width * cell.width))
        parts = [slice(start, min(start + per_batch, cell.depth - 1))  # width -> width
                 for start in range(0, cell.depth - 1, per_batch)]
        parts.append(slice(cell.depth - 1, cell.depth))  # the last layer, width -> 1
        table = torch.cat([
            _layer_statistics(grads[0::2][part], grads[1::2][part], hidden[part],
                              stream_grads[part])
            for part in parts
        ] + [torch.stack([loss, output.reshape(())]).double()])
        values = table.tolist()

    loss_value, output_value = values[-2:]
    return cell_records(cell, values[:-2], loss_value, output_value)


def cell_records(cell: Cell, values: list[float], loss_value: float,
                 output_value: float) -> list[Record]:
    """One cell's records, one per layer, from its statistics: `values` holds
    six numbers a layer, in _layer_statistics' order.  Shared by both engines
    (measuring/batched.py), so their records have the same columns."""
    # grad_stream_cos is NaN wherever a vector is zero (a dead cell): not overflow.
    finite = (all(math.isfinite(v) for j, v in enumerate(values) if j % 6 != 5)
              and math.isfinite(loss_value) and math.isfinite(output_value))
    cell_fields = record_fields(cell)
    records = []
    for i in range(len(values) // 6):
        grad_abs_mean, grad_l2, zero_share, bias_grad_abs_mean, output_rms, cos = \
            values[6 * i:6 * i + 6]
        records.append({
            **cell_fields,
            "layer": i,
            "param": f"layers.{i}.0.weight",
            "tied": "",
            "ndim": 2,
            "numel": cell.width * (cell.width if i < cell.depth - 1 else 1),
            "grad_abs_mean": grad_abs_mean,
            "grad_l2": grad_l2,
            "grad_zero_share": zero_share,
            "bias_grad_abs_mean": bias_grad_abs_mean,
            "output_rms": output_rms,
            "grad_stream_cos": cos,
            "loss": loss_value,
            "output": output_value,
            "token_cosine": math.nan,  # the GPT family's
            "finite": finite,
        })
    return records


def _layer_statistics(weight_grads, bias_grads, hidden, stream_grads):
    """Rows of (grad_abs_mean, grad_l2, grad_zero_share, bias_grad_abs_mean,
    output_rms, grad_stream_cos), one per layer, for layers whose tensors
    all have the same shapes.  Means in the model's dtype (the book's
    statistic); the norm, the RMS and the cosine sum squares or products, so
    they are taken in float64, where a finite gradient's square cannot
    overflow."""
    weight_grads, bias_grads = torch.stack(weight_grads), torch.stack(bias_grads)
    hidden = torch.stack(hidden)
    numel = weight_grads[0].numel()
    return torch.stack([
        weight_grads.abs().mean(dim=(1, 2)).double(),
        torch.linalg.vector_norm(weight_grads, dim=(1, 2), dtype=torch.float64),
        (numel - torch.count_nonzero(weight_grads, dim=(1, 2))).double() / numel,
        bias_grads.abs().mean(dim=1).double(),
        hidden.double().square().mean(dim=(1, 2)).sqrt(),
        _cosine(torch.stack(stream_grads), hidden),
    ], dim=1).flatten()


def _cosine(a, b):
    """cos(a_i, b_i) per leading index i, in float64: NaN where either
    vector is zero (0/0)."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    return (a * b).sum(dim=1) / (torch.linalg.vector_norm(a, dim=1)
                                 * torch.linalg.vector_norm(b, dim=1))


def measure_cell_book_style(cell: Cell) -> list[Record]:
    """The same records the book's way: seed, build the nn.Module, forward,
    backward(), then one .item() per number.  The reference that measure_cell
    must equal bit for bit (tests) and beat in speed (benchmarks); CPU only."""
    torch.manual_seed(cell.seed)
    alpha = branch_value(cell.branch_scale, cell.depth)
    model = ExampleDeepNeuralNetwork(layer_sizes(cell.depth, cell.width), cell.shortcut,
                                     cell.activation, cell.shortcut_scale, cell.norm, alpha)
    if cell.init != "pytorch":
        torch.manual_seed(cell.seed)
        reinitialize_(model, cell.init)
    model = model.to(DTYPES[cell.dtype])
    x = sample_input(cell.width).to(DTYPES[cell.dtype])
    hidden = []
    for layer in model.layers:  # ExampleDeepNeuralNetwork.forward, keeping each state
        layer_output = layer(layer_input(x, cell.norm))
        if cell.shortcut and x.shape == layer_output.shape:
            x = add_shortcut(x, layer_output, cell.shortcut_scale, alpha)
        else:
            x = layer_output
        x.retain_grad()  # dL/dx_l, for grad_stream_cos
        hidden.append(x)
    loss = torch.nn.MSELoss()(x, torch.zeros_like(x))
    loss.backward()
    records = []
    finite = True
    for i, layer in enumerate(model.layers):
        weight_grad, bias_grad = layer[0].weight.grad, layer[0].bias.grad
        record = {**record_fields(cell), "layer": i, "param": f"layers.{i}.0.weight",
                  "tied": "", "ndim": weight_grad.dim(), "numel": weight_grad.numel(),
                  "grad_abs_mean": weight_grad.abs().mean().item(),
                  "grad_l2": torch.linalg.vector_norm(weight_grad, dtype=torch.float64).item(),
                  "grad_zero_share": (weight_grad == 0).sum().item() / weight_grad.numel(),
                  "bias_grad_abs_mean": bias_grad.abs().mean().item(),
                  "output_rms": hidden[i].double().square().mean().sqrt().item(),
                  "grad_stream_cos": _cosine(hidden[i].grad.unsqueeze(0),
                                             hidden[i].detach().unsqueeze(0)).item()}
        finite &= all(math.isfinite(record[k]) for k in ("grad_abs_mean", "grad_l2",
                                                         "bias_grad_abs_mean", "output_rms"))
        records.append(record)
    loss_value, output_value = loss.item(), x.item()
    finite &= math.isfinite(loss_value) and math.isfinite(output_value)
    for record in records:
        record.update(loss=loss_value, output=output_value, token_cosine=math.nan, finite=finite)
    return records


def measure_cells(cells: Sequence[Cell], progress: TextIO | None = sys.stderr) -> list[Record]:
    """Measure many cells in this process; returns all their records."""
    configure_torch()
    records = []
    started = time.perf_counter()
    step = max(1, len(cells) // 10)
    for n, cell in enumerate(cells, 1):
        records.extend(measure_cell(cell))
        if progress and (n % step == 0 or n == len(cells)):
            print(f"measured {n}/{len(cells)} cells in "
                  f"{time.perf_counter() - started:.1f} s", file=progress, flush=True)
    return records


def machine_facts(device):
    """Where and with what a chunk was measured (for the report's provenance)."""
    facts = {"host": socket.gethostname(), "os": platform.platform(), "cpu": cpu_name(),
             "python": platform.python_version(), "torch": torch.__version__,
             "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch_device(device))
    return facts


def write_chunk(records, path):
    """store.write_records with pandas kept out of this process: pyarrow
    imports pandas (~0.26 s of a measuring job) only to learn that lists
    are not pandas objects.  pyarrow then takes pandas as absent for such
    checks for the rest of the process (a pandas Series it is given later
    converts as a plain sequence): the measuring side never has pandas
    (tests/test_walls.py).  Returns the file's sha256."""
    with blocked_imports("pandas"):
        return write_records(records, path)


def run_chunk(params: ChunkParams, records_path: PathLike, machine_path: PathLike,
              progress: TextIO | None = sys.stderr, partial_path: PathLike | None = None,
              band: float = DEFAULT_BAND) -> None:
    """Measure one chunk, given by its params (sweep.Chunk.params() or
    FamilyChunk.params()): its records go to `records_path`, where and how it
    was measured to `machine_path`, and, after the records, its partial
    results (core/partials.py, with the records file's sha256 and the
    healthy band `band`) to `partial_path`.  The MLP's chunks are measured
    here; every other family's through measuring/family.py."""
    started = time.time()
    settings = deterministic(params["device"])
    cells = cells_of(params)
    if params.get("model", "mlp") == "mlp":
        engine = params.get("engine", "exact")  # only a batched chunk names it
        if progress:
            print(f"engine: {engine} ({ENGINES[engine]})", file=progress, flush=True)
        if engine == "batched":
            from shortcutbench.measuring.batched import measure_cells_batched  # imports this

            records = measure_cells_batched([Cell(**cell) for cell in cells], progress)
        else:
            records = measure_cells([Cell(**cell) for cell in cells], progress)
    else:
        records = measure_chunk(params, progress)
    # The records file's sha256, recorded in the partial results: every later
    # reader checks the file against it (core.store.verify).
    sha256 = write_chunk(records, records_path)
    meta = {"chunk": params, "cells": len(cells), "started": started,
            "seconds": round(time.time() - started, 3), **machine_facts(params["device"]),
            **settings}
    if partial_path is not None:
        t0 = time.perf_counter()
        write_partial(chunk_partials(records, band), partial_path, params, len(cells), sha256,
                      band)
        meta["partial_seconds"] = round(time.perf_counter() - t0, 3)
        if progress:
            print(f"partial results in {meta['partial_seconds']} s", file=progress, flush=True)
    # At the end, when everything the family's module pulls in is loaded.
    meta["packages"] = imported_distributions()
    write_json(meta, machine_path)
