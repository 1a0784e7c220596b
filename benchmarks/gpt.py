"""Performance of the GPT family's measurement, printed (nothing asserted).

    .venv/bin/python benchmarks/gpt.py

1. per cell: measure_gpt_cell against the plain nn.Module reference
   (measure_gpt_cell_reference), interleaved and repeated, median printed,
   with a bit-for-bit comparison of their records, on a reduced GPT at a few
   block counts;
2. the 124M cell (GPT_CONFIG_124M, 64 tokens): time and peak RSS of each way,
   each run in a fresh process (the first cell of a job), beside the size of
   its parameters;
3. the suggested default GPT sweep: what it costs in one thread.

One intra-op thread throughout, as measuring jobs run (measure.configure_torch).
"""

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from shortcutbench.measuring.gpt import NORMS
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.measure_gpt import (
    GPTCell,
    measure_gpt_cell,
    measure_gpt_cell_reference,
)

REPO = Path(__file__).resolve().parents[1]

REDUCED = {"emb_dim": 128, "n_heads": 4, "vocab_size": 512, "context_length": 64,
           "n_tokens": 64}
# The suggested default of the GPT family (the reduced model; 64
# tokens, so that 48 blocks reproduce its token-collapse figures).
SUGGESTED = {**REDUCED, "blocks": [1, 2, 4, 6, 8, 12, 16, 24, 32], "seeds": [0, 1, 2, 3, 4]}
REPEATS = 7
BIG_REPEATS = 3


def same(a, b):
    """Records equal bit for bit (NaN equal to NaN)."""
    def key(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v
    return len(a) == len(b) and all(
        list(x) == list(y) and all(key(x[k]) == key(y[k]) and type(x[k]) is type(y[k])
                                   for k in x)
        for x, y in zip(a, b))


def per_cell():
    print("1. per cell, reduced GPT (emb 128, 4 heads, vocab 512, 64 tokens), "
          f"median of {REPEATS}, interleaved")
    print(f"   {'blocks':>6} {'measure':>10} {'reference':>10} {'speed-up':>8}  identical")
    for blocks in (4, 12, 32, 48):
        cells = [GPTCell(blocks=blocks, **REDUCED, seed=seed, shortcut=shortcut, norm=norm)
                 for seed, shortcut, norm in [(0, True, "pre_layernorm"),
                                              (1, False, "post_layernorm"), (2, False, "none")]]
        times = {measure_gpt_cell: [], measure_gpt_cell_reference: []}
        identical = all(same(measure_gpt_cell(c), measure_gpt_cell_reference(c)) for c in cells)
        for _ in range(REPEATS):
            for measure, seconds in times.items():
                started = time.perf_counter()
                for cell in cells:
                    measure(cell)
                seconds.append((time.perf_counter() - started) / len(cells))
        fast, plain = (statistics.median(t) for t in times.values())
        print(f"   {blocks:>6} {fast * 1e3:>8.1f} ms {plain * 1e3:>7.1f} ms "
              f"{plain / fast:>7.2f}x  {'yes' if identical else 'NO'}")


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring import measure_gpt
configure_torch()
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cell = measure_gpt.GPTCell(12, 768, 12, 50257, 1024, 64, 123, True)
started = time.perf_counter()
records = getattr(measure_gpt, {function!r})(cell)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
json.dump(dict(seconds=seconds, peak_kb=peak, baseline_kb=baseline, records=records), sys.stdout)
"""


def big_cell():
    print("2. the 124M cell (GPT_CONFIG_124M, seed 123, 64 tokens), each way in its own process")
    from shortcutbench.measuring.gpt import GPT_CONFIG_124M, GPTModel
    with torch.device("meta"):
        n_parameters = sum(p.numel() for p in GPTModel(GPT_CONFIG_124M).parameters())
    size_mb = n_parameters * 4 / 2 ** 20
    results = {"measure_gpt_cell": [], "measure_gpt_cell_reference": []}
    for _ in range(BIG_REPEATS):  # interleaved: a fresh process per run
        for function, runs in results.items():
            out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO),
                                                                     function=function)],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            runs.append(json.loads(out))
    print(f"   parameters: {n_parameters:,} = {size_mb:.0f} MiB in float32 "
          f"(gradients as much again)")
    for function, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_kb"] for r in runs) / 1024
        baseline = max(r["baseline_kb"] for r in runs) / 1024
        print(f"   {function:<27} {seconds:5.2f} s (median of {len(runs)})   peak RSS "
              f"{peak:5.0f} MiB (torch imported: {baseline:.0f} MiB; {peak / size_mb:.1f}x "
              f"the parameters)")
    fast, plain = (runs[0]["records"] for runs in results.values())
    print(f"   identical records: {'yes' if same(fast, plain) else 'NO'}")


def default_sweep():
    s = SUGGESTED
    cells = [GPTCell(blocks=b, emb_dim=s["emb_dim"], n_heads=s["n_heads"],
                     vocab_size=s["vocab_size"], context_length=s["context_length"],
                     n_tokens=s["n_tokens"], seed=seed, shortcut=shortcut, norm=norm)
             for b in s["blocks"] for norm in NORMS for shortcut in (False, True)
             for seed in s["seeds"]]
    print(f"3. suggested default: {json.dumps(s)}")
    started = time.perf_counter()
    cpu_started = time.process_time()
    rows = sum(len(measure_gpt_cell(cell)) for cell in cells)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"   {len(cells)} cells ({len(NORMS)} norms x 2 shortcut flags x {len(s['seeds'])} "
          f"seeds x {len(s['blocks'])} block counts), {rows:,} rows: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU in one thread (plus ~1.7 s per job "
          f"to import torch)")


if __name__ == "__main__":
    configure_torch()
    per_cell()
    big_cell()
    default_sweep()
