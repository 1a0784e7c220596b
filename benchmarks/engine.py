"""The batched engine against the exact one: speed and agreement, side by side.

    .venv/bin/python benchmarks/engine.py            # 100 seeds (~2 minutes here)
    .venv/bin/python benchmarks/engine.py 20         # fewer seeds

One process, one intra-op thread (as measuring jobs run), torch imported
once.  The same MLP cells (depths 1, 2, 4, ..., 64 x widths 3, 32 x seeds x
both flags) measured three ways, interleaved and repeated, median printed:

- the floor: one Python loop measuring each cell the book's way
  (measure_cell_book_style: nn.Module, backward(), .item() per number);
- the exact engine's per-cell path (measure.measure_cells);
- the batched engine (batched.measure_cells_batched).

Then the agreement of the batched engine's records with the exact ones per
depth and width: the worst relative difference of grad_abs_mean over every
layer of every cell, the share of cells whose records are bit-identical,
and the cells whose state (core/states.py, through cell_stats.cell_values)
differs.  Last, the batched forward and backward through torch.baddbmm
against torch.func.vmap over model.forward, the choice measuring/mlp/batched.py
made.  Ratios, never asserted.
"""

import itertools
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from shortcutbench.core.cell_stats import cell_values  # noqa: E402
from shortcutbench.core.records import Cell  # noqa: E402
from shortcutbench.measuring.family import configure_torch  # noqa: E402
from shortcutbench.measuring.mlp.batched import BATCH, measure_cells_batched  # noqa: E402
from shortcutbench.measuring.mlp.exact import measure_cell_book_style, measure_cells  # noqa: E402
from shortcutbench.measuring.mlp.model import (  # noqa: E402
    add_shortcut,
    forward,
    gelu_tanh,
    init_parameters,
    layer_sizes,
    sample_input,
)

DEPTHS = [1, 2, 4, 8, 16, 32, 64]
WIDTHS = [3, 32]


def book_style(cells):
    return [record for cell in cells for record in measure_cell_book_style(cell)]


def timings(cells, repeats):
    ways = {"floor (book-style loop)": book_style,
            "exact engine (measure_cells)": lambda c: measure_cells(c, progress=None),
            "batched engine": lambda c: measure_cells_batched(c, progress=None)}
    seconds = defaultdict(list)
    records = {}
    for _ in range(repeats):
        for name, way in ways.items():
            started = time.perf_counter()
            records[name] = way(cells)
            seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    floor = median["floor (book-style loop)"]
    print(f"\n== speed: {len(cells):,} cells, median of {repeats}, one thread ==")
    for name, s in median.items():
        runs = ", ".join(f"{t:.2f}" for t in seconds[name])
        print(f"  {name:30s} {s:7.2f} s  {len(cells) / s:7.0f} cells/s  "
              f"{floor / s:5.2f}x the floor  (runs: {runs})")
    exact, batched = median["exact engine (measure_cells)"], median["batched engine"]
    print(f"  batched / exact engine: {exact / batched:.2f}x faster")
    return records["exact engine (measure_cells)"], records["batched engine"]


def relative(a, b):
    """|b - a| / |a|; 0 where both are the same value (inf, NaN or 0 included)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(b - a) / abs(a) if a else math.inf


def agreement(cells, exact, batched):
    print("\n== agreement of the batched engine with the exact one ==")
    print("  worst relative difference of grad_abs_mean over every layer of every cell;")
    print("  bit-identical: cells whose every record is equal; states: cells whose state differs")
    print(f"  {'depth':>5s} {'width':>5s} {'cells':>5s} {'worst rel. diff':>15s} "
          f"{'bit-identical':>13s} {'state differs':>13s}  states (exact)")
    rows = defaultdict(lambda: {"cells": 0, "worst": 0.0, "identical": 0, "changed": 0,
                                "states": defaultdict(int)})
    start = 0
    for cell in cells:
        e, b = exact[start:start + cell.depth], batched[start:start + cell.depth]
        start += cell.depth
        row = rows[cell.depth, cell.width]
        row["cells"] += 1
        row["worst"] = max([row["worst"]] + [relative(x["grad_abs_mean"], y["grad_abs_mean"])
                                            for x, y in zip(e, b)])
        row["identical"] += repr(e) == repr(b)
        state = cell_values(e)["state"]
        row["states"][state] += 1
        row["changed"] += state != cell_values(b)["state"]
    for (depth, width), row in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        states = ", ".join(f"{n} {s}" for s, n in sorted(row["states"].items()))
        print(f"  {depth:5d} {width:5d} {row['cells']:5d} {row['worst']:15.1e} "
              f"{row['identical']:13d} {row['changed']:13d}  {states}")
    worst = max(row["worst"] for row in rows.values())
    print(f"  all {len(cells):,} cells: worst relative difference {worst:.1e}; "
          f"bit-identical {sum(r['identical'] for r in rows.values()):,}; "
          f"state changes {sum(r['changed'] for r in rows.values())}")


def _stacked(depth, width):
    per_seed = []
    for seed in range(BATCH):
        torch.default_generator.manual_seed(seed)
        per_seed.append(init_parameters(layer_sizes(depth, width)))
    return [torch.stack([p[layer][k] for p in per_seed])
            for layer in range(depth) for k in (0, 1)]


def _through_bmm(stacked, width):
    leaves = [t.detach().requires_grad_() for t in stacked]
    x = sample_input(width).expand(BATCH, 1, width)
    hidden = []
    for weight, bias in zip(leaves[0::2], leaves[1::2]):
        out = gelu_tanh(torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)))
        x = add_shortcut(x, out, 1.0) if x.shape == out.shape else out
        hidden.append(x)
    loss = F.mse_loss(x, torch.zeros_like(x), reduction="none").sum()
    return torch.autograd.grad(loss, leaves + hidden)


def _through_vmap(stacked, width):
    leaves = [t.detach().requires_grad_() for t in stacked]
    pairs = list(zip(leaves[0::2], leaves[1::2]))
    out, hidden = torch.func.vmap(lambda p: forward(p, sample_input(width), True))(pairs)
    loss = F.mse_loss(out, torch.zeros_like(out), reduction="none").sum()
    return torch.autograd.grad(loss, leaves + hidden)


def bmm_against_vmap(repeats=20):
    print(f"\n== {BATCH} seeds' forward and backward (with shortcut): baddbmm against vmap ==")
    for depth, width in itertools.product([8, 64], WIDTHS):
        stacked = _stacked(depth, width)
        same = all(torch.equal(a, b) for a, b in zip(_through_bmm(stacked, width),
                                                     _through_vmap(stacked, width)))
        ms = {}
        for name, way in (("bmm", _through_bmm), ("vmap", _through_vmap)):
            started = time.perf_counter()
            for _ in range(repeats):
                way(stacked, width)
            ms[name] = (time.perf_counter() - started) / repeats * 1000
        print(f"  depth {depth:2d} width {width:2d}: baddbmm {ms['bmm']:6.2f} ms, "
              f"vmap {ms['vmap']:6.2f} ms: baddbmm {ms['vmap'] / ms['bmm']:.2f}x faster; "
              f"same gradients: {same}")


def main(n_seeds=100, repeats=3):
    configure_torch()
    cells = [Cell(depth, width, seed, shortcut) for width, seed, depth, shortcut in
             itertools.product(WIDTHS, range(n_seeds), DEPTHS, (False, True))]
    print(f"benchmarks/engine.py: torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread, batch {BATCH}; depths {DEPTHS} x widths {WIDTHS} x {n_seeds} seeds "
          f"x both flags = {len(cells):,} cells")
    exact, batched = timings(cells, repeats)
    agreement(cells, exact, batched)
    bmm_against_vmap()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
