"""The book's MLP through the measurement contract (measuring/family.py),
with paths of its own for a chunk's cells: the exact fast path (one cell at
a time, bit for bit the book-style loop's numbers, measuring/mlp/exact.py)
or, with `engine: batched`, the batched engine (measuring/mlp/batched.py).

This module imports torch and never pandas, seaborn or Snakemake.
"""

import sys
from typing import Any, TextIO

import torch
import torch.nn.functional as F

from shortcutbench.core.records import Cell, Record
from shortcutbench.measuring.family import Family
from shortcutbench.measuring.mlp.batched import measure_cells_batched
from shortcutbench.measuring.mlp.exact import measure_cells
from shortcutbench.measuring.mlp.model import ExampleDeepNeuralNetwork, layer_sizes, sample_input

# The config's `engine`, as a measuring job's log names it.
ENGINES = {"exact": "one cell at a time, bit for bit the book-style loop's numbers",
           "batched": "the cells of one config, 32 seeds at a time through torch.baddbmm; "
                      "cells too big to stack one at a time (measuring/mlp/batched.py)"}


class MLPFamily(Family):
    """The book's network through the measurement contract: `options` holds
    width and activation; eval mode (it has no dropout or BatchNorm).  Its
    chunks' cells take its own paths (ENGINES), whose mean |grad| per layer
    the contract's per-cell path equals bit for bit (tests/test_families.py)."""

    name = "mlp"
    mode = "eval"

    def build(self, depth, shortcut, norm, options):
        width = options["width"]
        model = ExampleDeepNeuralNetwork(layer_sizes(depth, width), shortcut,
                                         options.get("activation", "gelu_tanh"), norm=norm)
        x = sample_input(width)

        def loss_fn(output):
            return F.mse_loss(output, torch.zeros_like(output))

        return model, (x,), loss_fn

    def layer_of(self, name, depth):
        return int(name.split(".")[1])  # layers.{i}.0.weight and .bias

    def engine(self, options: dict[str, Any]) -> tuple[str, str]:
        engine = options.get("engine", "exact")  # only a batched chunk names it
        return engine, ENGINES[engine]

    def measure_cells(self, cells: list[dict[str, Any]], options: dict[str, Any],
                      progress: TextIO | None = sys.stderr) -> list[Record]:
        measure = (measure_cells_batched if self.engine(options)[0] == "batched"
                   else measure_cells)
        return measure([Cell(**cell) for cell in cells], progress)
