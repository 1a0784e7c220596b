"""The analysis side at scale (issue 11, goals 1 and 2), printed side by side.

    .venv/bin/python benchmarks/analysis_scale.py            # 2,800 and 28,000 cells
    .venv/bin/python benchmarks/analysis_scale.py 100        # only seeds 0-99

For each sweep (depths 1, 2, 4, 8, 16, 32, 64 x widths 3, 32 x both flags,
cpu, no studies, no training; seeds 0-99 = 2,800 cells, 0-999 = 28,000) in
a fresh directory: the measuring phase's wall time (`snakemake --until
measure`), then the analysis phase's (`snakemake`, everything after it, to
report/index.html), and per rule of the analysis phase its wall time and
peak RSS from Snakemake's benchmark files (logs/benchmark/**.tsv).  The
analysis phase's peak is the largest job's max_rss (jobs may run two at a
time: the sum of the two largest is printed as its upper bound).

Goal 1: peak <= 500 MB at 28,000 cells and <= 1.25x its peak at 2,800.
Goal 2: the analysis phase <= 15% of the measuring phase's wall time.
Nothing here asserts: it prints.
"""

import csv
import shutil
import sys
import tempfile
from pathlib import Path

from harness import snakemake


def config(seeds):
    return {"depths": [1, 2, 4, 8, 16, 32, 64], "widths": [3, 32], "seeds": list(seeds),
            "shortcut": [False, True], "devices": ["cpu"], "seeds_per_job": 100}


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


def run(seeds):
    workdir = Path(tempfile.mkdtemp(prefix=f"analysis_scale_{len(seeds)}_"))
    measuring, _ = snakemake(workdir / "run", config(seeds), "-q", "--until", "measure")
    analysis, _ = snakemake(workdir / "run", config(seeds), "-q")
    jobs = benchmarks(workdir / "run")
    shutil.rmtree(workdir, ignore_errors=True)
    return {"cells": 28 * len(seeds), "measuring": measuring, "analysis": analysis,
            "jobs": jobs}


def main(argv):
    counts = [int(a) for a in argv] or [100, 1000]
    results = [run(list(range(n))) for n in counts]
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
        print(f"{r['cells']:>7,} cells: measuring {r['measuring']:.1f} s wall; analysis "
              f"{r['analysis']:.1f} s wall = {100 * r['analysis'] / r['measuring']:.0f}% "
              f"(goal 2: <= 15%); analysis peak RSS {peak:.0f} MB (two largest jobs "
              f"{two:.0f} MB; goal 1: <= 500 MB); merge + tables peak {partial_peak:.0f} MB")
    if len(results) > 1:
        small, big = results[0], results[-1]
        print(f"peak at {big['cells']:,} / at {small['cells']:,} cells: "
              f"{big['peak'] / small['peak']:.2f}x (goal 1: <= 1.25x); merge + tables: "
              f"{big['partial_peak'] / small['partial_peak']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
