"""Performance benchmarks for shortcutbench: each goal printed as a ratio or figure.

    .venv/bin/python benchmarks/run.py            # all goals (several minutes)
    .venv/bin/python benchmarks/run.py 1 4        # only goals 1 and 4

Ratios are measured side by side in one run, interleaved and repeated, and the
median is printed: machines are noisy.  Nothing here asserts a speed; the
README's performance table quotes what this printed.

1. workflow vs floor: a sweep from a clean directory through the real
   Snakemake, against one plain Python process that imports torch once and
   measures the same cells (the floor), both the book's way (nn.Module,
   backward(), .item() per number) and with shortcutbench's own measure_cell.
2. incremental: one seed added to a finished sweep; a no-op re-run.
3. DAG scale: `snakemake -n` on a 100,000-cell sweep.
4. in-process speed: measure_cell against the book-style loop, bit-identical.
5. a big cell: depth 1024 x width 1024, peak memory beside the parameters' size.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness import n_cells, snakemake, snakemake_environment

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BASE = {"depths": [1, 2, 4, 8, 16, 32, 64], "widths": [3, 32], "shortcut": [False, True],
        "devices": ["cpu"], "activations": ["gelu_tanh"]}
SWEEP_280 = {**BASE, "seeds": list(range(10))}
SWEEP_2800 = {**BASE, "seeds": list(range(100))}
# Jobs and helper processes find this venv's python and snakemake first.
ENV = snakemake_environment()


FLOOR = textwrap.dedent("""
    import sys, itertools
    sys.path.insert(0, {repo!r})
    from shortcutbench.measuring.measure import configure_torch, write_chunk
    from shortcutbench.measuring.mlp.exact import {function}
    from shortcutbench.core.records import Cell
    configure_torch()
    config = {config!r}
    records = []
    for depth, width, seed, shortcut in itertools.product(
            config["depths"], config["widths"], config["seeds"], config["shortcut"]):
        records += {function}(Cell(depth, width, seed, shortcut))
    write_chunk(records, {out!r})
""")


def floor(config, function, out):
    """One plain Python process: import torch once, measure every cell, write them."""
    code = FLOOR.format(repo=str(REPO), function=function, config=config, out=str(out))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    return time.perf_counter() - started


def stage_seconds(workdir):
    """Wall seconds per rule, summed over its jobs, from Snakemake's benchmark files."""
    seconds = {}
    for tsv in (workdir / "logs" / "benchmark").rglob("*.tsv"):
        rule = tsv.relative_to(workdir / "logs" / "benchmark").parts[0].removesuffix(".tsv")
        value = float(tsv.read_text().splitlines()[1].split("\t")[0])
        seconds[rule] = seconds.get(rule, 0.0) + value
    return seconds


# Snakemake's own cost, apart from any job's work: a workflow of one job that
# does nothing.  Snakemake 9.27 waits up to 1 s more before it exits: its job
# rate limiter (--max-jobs-per-timespan, at least 1 s) re-checks by a timer
# thread that the interpreter waits for.
ONE_JOB = """
rule nothing:
    output: "done"
    script: "nothing.py"
"""


def snakemake_alone(workdir):
    """Wall seconds of Snakemake running ONE_JOB from a clean directory."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(ONE_JOB)
    (workdir / "nothing.py").write_text("open(snakemake.output[0], 'w').close()\n")
    started = time.perf_counter()
    subprocess.run([str(BIN / "snakemake"), "--cores", "2", "-q"], cwd=workdir, env=ENV,
                   check=True, capture_output=True)
    return time.perf_counter() - started


def goal_workflow_vs_floor(scratch, config, target, repeats, label):
    cells = n_cells(config)
    print(f"\n== {label}: {cells} cells, {repeats} repeats, 2 cores ==")
    times = {"workflow": [], "floor (book-style)": [], "floor (measure_cell)": [],
             "snakemake alone (1 job)": []}
    stages = []
    for i in range(repeats):
        workdir = scratch / f"{label}-{i}"
        shutil.rmtree(workdir, ignore_errors=True)
        times["workflow"].append(snakemake(workdir, config, *target)[0])
        times["snakemake alone (1 job)"].append(snakemake_alone(scratch / "one-job"))
        stages.append(stage_seconds(workdir))
        times["floor (book-style)"].append(
            floor(config, "measure_cell_book_style", scratch / "floor.csv"))
        times["floor (measure_cell)"].append(floor(config, "measure_cell", scratch / "floor.csv"))
    median = {k: statistics.median(v) for k, v in times.items()}
    for k, v in median.items():
        print(f"  {k:24s} {v:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[k])})")
    alone = median["snakemake alone (1 job)"]
    for k in ("floor (book-style)", "floor (measure_cell)"):
        ours = median["workflow"] - alone
        print(f"  workflow / {k:22s} = {median['workflow'] / median[k]:.2f}x; without "
              f"Snakemake's own cost ({alone:.2f} s): {ours / median[k]:.2f}x")
    rules = sorted({r for s in stages for r in s})
    print("  per-rule job seconds (median over repeats, summed over a rule's jobs):")
    for rule in rules:
        print(f"    {rule:12s} {statistics.median(s.get(rule, 0.0) for s in stages):6.2f} s")
    return median


def measured_cells(output):
    chunks = re.findall(r"output: results/cells/\S+?/seeds~([0-9_-]+)\.parquet", output)
    return chunks


def goal_incremental(scratch):
    print("\n== 2. incremental ==")
    from shortcutbench.core.sweep import parse_seeds_slug

    workdir = scratch / "incremental"
    shutil.rmtree(workdir, ignore_errors=True)
    snakemake(workdir, SWEEP_280, "results/gradients.csv")
    grown = {**SWEEP_280, "seeds": SWEEP_280["seeds"] + [10]}
    seconds, output = snakemake(workdir, grown, "results/gradients.csv")
    chunks = measured_cells(output)
    per_seed = n_cells({**grown, "seeds": [0]})
    measured = sum(len(parse_seeds_slug(c)) for c in chunks) * per_seed // len(grown["widths"])
    print(f"  seed 10 added to seeds 0-9: {seconds:.2f} s; measure jobs run: {len(chunks)} "
          f"({', '.join('seeds~' + c for c in chunks)}); cells measured: {measured}, "
          f"new cells: {per_seed}")
    noop = [snakemake(workdir, grown, "results/gradients.csv") for _ in range(3)]
    assert all("Nothing to be done" in out for _, out in noop)
    print(f"  no-op re-run: {statistics.median(s for s, _ in noop):.2f} s (median of 3)")


def goal_dag(scratch):
    print("\n== 3. DAG scale ==")
    config = {"depths": list(range(1, 51)), "widths": [3, 8, 16, 32, 64],
              "seeds": list(range(200)), "shortcut": [False, True], "devices": ["cpu"],
              "activations": ["gelu_tanh"]}
    workdir = scratch / "dag"
    shutil.rmtree(workdir, ignore_errors=True)
    seconds, output = snakemake(workdir, config, "-n")
    jobs = re.search(r"^total\s+(\d+)", output, re.M)
    print(f"  snakemake -n on {n_cells(config):,} cells: {seconds:.2f} s "
          f"({jobs.group(1) if jobs else '?'} jobs)")


def goal_in_process(repeats=5):
    print("\n== 4. in-process speed ==")
    import itertools

    from shortcutbench.core.records import Cell
    from shortcutbench.measuring.measure import configure_torch
    from shortcutbench.measuring.mlp.exact import measure_cell, measure_cell_book_style

    configure_torch()
    cells = [Cell(d, w, s, sc) for d, w, s, sc in itertools.product(
        SWEEP_280["depths"], SWEEP_280["widths"], SWEEP_280["seeds"], SWEEP_280["shortcut"])]
    identical = all(measure_cell(c) == measure_cell_book_style(c) for c in cells)
    rates = {"book-style": [], "measure_cell": []}
    for _ in range(repeats):
        for name, function in (("book-style", measure_cell_book_style),
                               ("measure_cell", measure_cell)):
            started = time.perf_counter()
            for cell in cells:
                function(cell)
            rates[name].append(len(cells) / (time.perf_counter() - started))
    book, ours = (statistics.median(rates[k]) for k in ("book-style", "measure_cell"))
    print(f"  book-style loop: {book:7.0f} cells/s; measure_cell: {ours:7.0f} cells/s; "
          f"ratio {ours / book:.2f}x (median of {repeats}); bit-identical on all "
          f"{len(cells)} cells: {identical}")


BIG = textwrap.dedent("""
    import resource, sys, time
    sys.path.insert(0, {repo!r})
    from shortcutbench.measuring.measure import configure_torch
    from shortcutbench.measuring.mlp.exact import measure_cell
    from shortcutbench.core.records import Cell
    configure_torch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    records = measure_cell(Cell({depth}, {width}, 0, True))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(seconds, before * 1024, peak * 1024, records[0]["finite"])
""")


def goal_big_cell(depth=1024, width=1024):
    print("\n== 5. big cell ==")
    code = BIG.format(repo=str(REPO), depth=depth, width=width)
    out = subprocess.run([sys.executable, "-c", code], check=True, env=ENV, text=True,
                         capture_output=True).stdout.split()
    seconds, before, peak, finite = float(out[0]), int(out[1]), int(out[2]), out[3]
    parameters = (depth - 1) * (width * width + width) + width + 1
    gib = 2 ** 30
    print(f"  depth {depth} x width {width}: {parameters:,} parameters = "
          f"{parameters * 4 / gib:.2f} GiB in float32; measured in {seconds:.1f} s; "
          f"peak RSS {peak / gib:.2f} GiB ({(peak - before) / gib:.2f} GiB above the "
          f"process before it) = {(peak - before) / (parameters * 4):.2f}x the parameters; "
          f"finite: {finite}")


def main(goals):
    scratch = Path(tempfile.mkdtemp(prefix="shortcutbench-bench-"))
    print(f"shortcutbench benchmarks; scratch {scratch}; {os.cpu_count()} cores; "
          f"python {sys.version.split()[0]}")
    try:
        if "1" in goals:
            goal_workflow_vs_floor(scratch, SWEEP_280, ["results/gradients.csv"], 3,
                                   "1a. measurement stage")
            goal_workflow_vs_floor(scratch, SWEEP_2800, [], 3, "1b. whole workflow")
        if "2" in goals:
            goal_incremental(scratch)
        if "3" in goals:
            goal_dag(scratch)
        if "4" in goals:
            goal_in_process()
        if "5" in goals:
            goal_big_cell()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["1", "2", "3", "4", "5"])
