"""The book's network (chapter 4.4) measured fast and exactly: one cell at a
time, the book's `print_gradients` made fast (the `exact` engine, bit for bit
the book-style loop's numbers; tests/test_model.py and tests/test_golden.py
check it); its family class's measure_cells takes this path.

A cell is one network (depth, width, seed, shortcut, activation, ...) on
one device in one dtype.  Its measurement is the book's
`print_gradients`: one forward pass on the sample input, MSE loss against
zero, one backward pass, then the mean |gradient| of every layer's weight,
plus a few more statistics; one record per layer.

This module imports torch and never pandas, seaborn or Snakemake.
"""

import math
import sys
from collections.abc import Sequence
from typing import TextIO

import torch
import torch.nn.functional as F

from shortcutbench.core.families.mlp import BATCH_ELEMENTS  # entries stacked at once
from shortcutbench.core.records import Cell, Record, branch_value, record_fields
from shortcutbench.measuring.devices import torch_device
from shortcutbench.measuring.family import DTYPES, Progress, configure_torch
from shortcutbench.measuring.mlp.model import (
    ExampleDeepNeuralNetwork,
    add_shortcut,
    forward,
    init_parameters,
    layer_input,
    layer_sizes,
    reinitialize_,
    sample_input,
)


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
    (measuring/mlp/batched.py), so their records have the same columns."""
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
            "token_cosine": math.nan,  # another family's statistic
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
    report = Progress(len(cells), stream=progress)
    for cell in cells:
        records.extend(measure_cell(cell))
        report(1)
    return records
