"""The analysis side at scale (issue 11, goals 1 and 2), printed side by side.

    .venv/bin/python benchmarks/analysis_scale.py            # 2,800, 28,000 cells, many axes
    .venv/bin/python benchmarks/analysis_scale.py 100        # only seeds 0-99
    .venv/bin/python benchmarks/analysis_scale.py many       # only the many-axes sweep

For each sweep (depths 1, 2, 4, 8, 16, 32, 64 x widths 3, 32 x both flags,
cpu, no studies, no training; seeds 0-99 = 2,800 cells, 0-999 = 28,000) in
a fresh directory: the measuring phase's wall time (`snakemake --until
measure`), then the analysis phase's (`snakemake`, everything after it, to
report/index.html), and per rule of the analysis phase its wall time and
peak RSS from Snakemake's benchmark files (logs/benchmark/**.tsv).  The
analysis phase's peak is the largest job's max_rss (jobs may run two at a
time: the sum of the two largest is printed as its upper bound).

Goal 1: peak <= 500 MB at 28,000 cells and <= 1.25x its peak at 2,800.
Goal 2: the analysis phase <= 15% of the measuring phase's wall time at
28,000 cells, and <= 35% for the many-axes sweep of 240 variants (5
activations x 3 inits x 2 norms x 2 dtypes x 4 widths, depths 1-32, seeds
0-4, both flags: 14,400 cells), whose report must stay <= 5 MB (goal 5).
Goal 6: issue 7's ratios, measured in the same run (benchmarks/run.py goal 1):
the 280-cell sweep to results/gradients.csv against its floor, and the
2,800-cell sweep with its report <= 1.0x its floor once Snakemake's own cost
(a workflow of one job that does nothing) is subtracted.
Nothing here asserts: it prints.
"""

import csv
import shutil
import sys
import tempfile
from pathlib import Path

from harness import n_cells, snakemake


def config(seeds):
    return {"depths": [1, 2, 4, 8, 16, 32, 64], "widths": [3, 32], "seeds": list(seeds),
            "shortcut": [False, True], "devices": ["cpu"], "seeds_per_job": 100}


MANY_AXES = {"depths": [1, 2, 4, 8, 16, 32], "widths": [4, 8, 16, 32],
             "seeds": [0, 1, 2, 3, 4], "shortcut": [False, True], "devices": ["cpu"],
             "activations": ["gelu_tanh", "gelu", "relu", "tanh", "sigmoid"],
             "inits": ["pytorch", "xavier_uniform", "kaiming_normal"],
             "norms": ["none", "pre_layernorm"], "dtypes": ["float32", "float64"]}


def benchmarks(workdir):
    """{rule path: (seconds, max_rss MB)} of every job but the measuring ones."""
    out = {}
    root = workdir / "logs" / "benchmark"
    for path in sorted(root.rglob("*.tsv")):
        rel = str(path.relative_to(root))
        if rel.startswith("measure/"):
            continue
        with open(path) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        rss = float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else float("nan")
        out[rel[:-4]] = (float(row["s"]), rss)
    return out


def run(sweep):
    workdir = Path(tempfile.mkdtemp(prefix="analysis_scale_"))
    measuring, _ = snakemake(workdir / "run", sweep, "-q", "--until", "measure")
    analysis, _ = snakemake(workdir / "run", sweep, "-q")
    # Snakemake's own share of a phase: a run with nothing left to do (its
    # start, the Snakefile, the DAG), measured on the finished directory
    noop, _ = snakemake(workdir / "run", sweep, "-q")
    jobs = benchmarks(workdir / "run")
    report_mb = (workdir / "run" / "report" / "index.html").stat().st_size / 1e6
    shutil.rmtree(workdir, ignore_errors=True)
    return {"cells": n_cells(sweep), "measuring": measuring, "analysis": analysis,
            "noop": noop, "jobs": jobs, "report_mb": report_mb}


def main(argv):
    counts = [int(a) for a in argv if a != "many"] or ([] if argv else [100, 1000])
    results = [run(config(range(n))) for n in counts]
    if not argv or "many" in argv:
        results.append(run(MANY_AXES))
    names = sorted({name for r in results for name in r["jobs"]})
    width = max(len(n) for n in names + ["analysis phase"]) + 2
    head = "".join(f"{r['cells']:>12,} cells      " for r in results)
    print(f"{'':{width}}{head}")
    print(f"{'':{width}}" + "".join(f"{'s':>10} {'MB':>10}      " for _ in results))
    for name in names:
        cols = "".join(
            f"{r['jobs'][name][0]:>10.2f} {r['jobs'][name][1]:>10.1f}      "
            if name in r["jobs"] else f"{'-':>10} {'-':>10}      " for r in results)
        print(f"{name:{width}}{cols}")
    print()
    for r in results:
        peaks = sorted((rss for _, rss in r["jobs"].values()), reverse=True)
        peak, two = peaks[0], sum(peaks[:2])
        partials = [r["jobs"][n] for n in r["jobs"] if n.startswith("merge/") or n == "tables"]
        partial_peak = max(rss for _, rss in partials) if partials else float("nan")
        r.update(peak=peak, two=two, partial_peak=partial_peak)
        print(f"{r['cells']:>7,} cells (report {r['report_mb']:.2f} MB): measuring "
              f"{r['measuring']:.1f} s wall; analysis "
              f"{r['analysis']:.1f} s wall = {100 * r['analysis'] / r['measuring']:.0f}% "
              f"(goal 2: <= 15%, many axes <= 35%; a no-op snakemake run here takes "
              f"{r['noop']:.1f} s); analysis peak RSS {peak:.0f} MB "
              f"(two largest jobs "
              f"{two:.0f} MB; goal 1: <= 500 MB); merge + tables peak {partial_peak:.0f} MB")
    if len(counts) > 1:
        small, big = results[0], results[len(counts) - 1]
        print(f"peak at {big['cells']:,} / at {small['cells']:,} cells: "
              f"{big['peak'] / small['peak']:.2f}x (goal 1: <= 1.25x); merge + tables: "
              f"{big['partial_peak'] / small['partial_peak']:.2f}x")
    if not argv:  # goal 6, in the same run
        import run as issue7

        scratch = Path(tempfile.mkdtemp(prefix="analysis_scale_goal6_"))
        issue7.goal_workflow_vs_floor(scratch, issue7.SWEEP_280, ["results/gradients.csv"], 3,
                                      "goal 6a. 280 cells to gradients.csv")
        issue7.goal_workflow_vs_floor(scratch, issue7.SWEEP_2800, [], 3,
                                      "goal 6b (<= 1.0x without Snakemake's own cost). 2,800 "
                                      "cells with the report")
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
