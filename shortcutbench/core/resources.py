"""Memory known before a job runs: each measuring chunk's peak memory,
estimated from its cells, for the `measure` rule's mem_mb resource (so that
a cluster asks for what a chunk needs) and for refusing, before any job
runs, a cell that cannot fit (sweep.memory_problem, workflow/rules/common.smk).
The estimate of a stack of width x width layers lives here (cell_mem_mb,
the top-level family's), and the measured constants every family's
estimate builds on (core/families/).

A cell's peak is its weights and their gradients (about twice its
parameters' bytes; issue 7 measured 2.04x) on top of what a measuring
process holds anyway (Python, torch, one tiny cell).  The constants were
measured here (torch 2.13.0 CPU, below); a chunk's peak is its biggest
cell's, since a job measures its cells one after another and frees each
(an engine that stacks cells asks for its biggest stack: its family's
planning estimates that).

Torch-free and pandas-free: this runs while Snakemake builds the DAG.
"""

import math
import os

# Measured (peak RSS of one process measuring one cell with a shortcut;
# parameters P, bytes per parameter b in the cell's dtype):
#   tiny cell (depth 1 x width 3), float32        232 MB: the baseline
#   16 x 1024, float32 (P = 15.7 M)               416 MB: +2.7 x P*b (fixed costs show)
#   64 x 1024, float32 (P = 66.1 M)               803 MB: +2.13 x P*b
#   256 x 1024, float32 (P = 267.6 M)            2350 MB: +1.97 x P*b
#   64 x 2048, float32 (P = 264.4 M)             2318 MB: +1.94 x P*b
#   16 x 4096, float32 (P = 251.7 M)             2346 MB: +2.10 x P*b
#   64 x 1024, float64                           1310 MB: +2.04 x P*b
#   64 x 1024, bfloat16 / float16           600 / 636 MB: +5.5 / +6.1 bytes x P
#   16, 256 and 64 x 1024 in one process         2349 MB: the biggest cell's, not the sum
# Weights and their gradients, 2 x P*b, while measuring; before that the
# weights are drawn in float32 (4 bytes) and converted to the dtype, both
# alive for a moment: 4 + b bytes per parameter, which is the peak for the
# 2-byte dtypes.  Margins: baseline 300 MB (measured 232), 2.2 (measured
# <= 2.13 on the big cells).
BASELINE_MB = 300
PEAK_PER_PARAMETER_BYTE = 2.2
DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
DRAW_BYTES = 4
MB = 1 << 20


def cell_parameters(depth, width):
    """Parameters of a cell of the book's network: its layer_sizes(depth,
    width) are depth-1 Linear(width, width) layers and one Linear(width, 1)."""
    return (depth - 1) * (width * width + width) + width + 1


def cell_mem_mb(depth, width, dtype="float32"):
    """The estimated peak memory (MB) of a process measuring this cell."""
    b = DTYPE_BYTES[dtype]
    per_parameter = max(PEAK_PER_PARAMETER_BYTE * b, DRAW_BYTES + b)
    return BASELINE_MB + math.ceil(cell_parameters(depth, width) * per_parameter / MB)


def chunk_mem_mb(chunk):
    """The estimated peak memory (MB) of a measuring job (a sweep.Chunk):
    that of its biggest cell, which its family's planning estimated."""
    return chunk.mem_mb()


def machine_mem_mb():
    """This machine's total memory in MB (/proc/meminfo's MemTotal; else
    sysconf), or None where neither says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB
    except (ValueError, OSError, AttributeError):
        return None


def too_big(mem_mb, max_mem_mb, what, how, fix):
    """The message refusing a job of `mem_mb` (its biggest piece of work
    `what`, estimated `how`; `fix` what to change), or None if it fits: the
    limit is `max_mem_mb` (the config key) or this machine's memory."""
    limit, source = max_mem_mb, "max_mem_mb in the config"
    if limit is None:
        limit, source = machine_mem_mb(), "this machine's memory; set max_mem_mb to change it"
        if limit is None:
            return None
    if mem_mb <= limit:
        return None
    return (f"config key max_mem_mb: {what} would need ~{mem_mb:,} MB of memory ({how}), "
            f"more than the {limit:,} MB allowed ({source}). Nothing was run. Fix: {fix}, "
            f"or, if the jobs run on machines with more memory (a cluster), set max_mem_mb "
            f"to what one job may use.")
