"""Issue 22's targets, side by side in one run on one machine (prints, never asserts).

    .venv/bin/python benchmarks/targets.py                  # every target (~25 minutes here)
    .venv/bin/python benchmarks/targets.py mlp2800 limits   # some of them, by name

Targets (each printed as new / reference, the reference named on its line):

- mlp2800:   measuring 2,800 MLP cells (depths 1-64 x widths 3, 32 x seeds 0-99 x both
             flags, engine batched) <= 0.2x the single-process per-cell floor
             (benchmarks/run.py's floor: one Python process measuring each cell the
             book's way); the workflow's `--until measure` after Snakemake's own cost,
             and the batched engine in one process, both against it;
- many:      the 240-variant, 14,400-cell sweep's measuring (benchmarks/analysis_scale.py
             MANY_AXES, `snakemake --until measure`) <= 0.25x the baseline's;
- default:   the default `make report` workflow (`snakemake --cores 4`, config/config.yaml)
             <= 0.5x the baseline's; its jobs' seconds per rule, its longest jobs and
             when they ran; its floor (CPU over cores), and a bound: the same run with
             the config's studies left out;
- floor280:  280 cells to results/gradients.csv <= 1.0x the floor, after Snakemake's own cost;
- floor2800: 2,800 cells with the report <= 0.5x the floor, after Snakemake's own cost;
- limits:    one width-32 depth-64 MLP cell (batched engine) and one GPT cell (the default
             config's gpt section at 8 blocks, measured per cell, as the engine measures the
             GPT) against the arithmetic limit: matmul FLOPs of its forward and backward
             (torch.utils.flop_counter) over this machine's float32 matmul FLOP/s on one thread.

"new" is the code of the tree this script sits in (its Snakefile, PYTHONPATH=that tree),
with `engine: exact` and `engine: batched` (each given explicitly: the default config sets
batched); the baseline is commit
BASELINE, checked out into a temporary git worktree for the run and removed after it, run
with the same .venv.  Snakemake's own cost is a workflow of one job that does nothing
(benchmarks/run.py).  Workflows run one at a time; the machine is whatever it is: compare
ratios, not seconds.
"""

import contextlib
import csv
import datetime
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import yaml
from analysis_scale import MANY_AXES
from run import SWEEP_280, SWEEP_2800, floor, snakemake_alone

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASELINE = "87e7254"
TARGETS = ("mlp2800", "many", "default", "floor280", "floor2800", "limits")


class Side:
    """A tree of shortcutbench code the workflow runs from."""

    def __init__(self, name, root):
        self.name, self.root = name, Path(root)

    def env(self):
        return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": str(self.root)}

    def snakemake(self, workdir, config=None, *args, cores=2, engine=None):
        """Run this side's workflow in a fresh `workdir` (config: a dict written
        as the whole config, or None for its config/config.yaml).  Exits with
        Snakemake's output if it fails."""
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        command = [str(BIN / "snakemake"), "-s", str(self.root / "Snakefile"), "-d",
                   str(workdir), "--cores", str(cores), *args]
        if config is None:
            command += ["--config", f"engine={engine}"] if engine else []
        else:
            path = workdir / "config.yaml"
            path.write_text(yaml.safe_dump({**config, **({"engine": engine} if engine else {})}))
            command += ["--configfile", str(path)]
        result = subprocess.run(command, cwd=workdir, env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode:
            sys.exit(f"{self.name}: snakemake failed:\n{result.stdout[-4000:]}")


@contextlib.contextmanager
def baseline_tree(scratch):
    """The baseline commit in a temporary git worktree, removed afterwards."""
    path = scratch / f"baseline-{BASELINE}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), BASELINE],
                   check=True, capture_output=True)
    try:
        yield Side(f"baseline {BASELINE}", path)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                       check=True, capture_output=True)


class Took(NamedTuple):
    """A run's wall seconds and the CPU seconds of every process it waited for."""
    wall: float
    cpu: float


def took(function, *args, **kwargs):
    """Run function (which runs processes) and time it: wall and its children's CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    function(*args, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Took(wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def medians(times):
    """Print every row's median wall and CPU seconds and its runs; returns {row: Took}."""
    median = {k: Took(statistics.median(t.wall for t in v), statistics.median(t.cpu for t in v))
              for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:28s} wall {median[k].wall:6.1f} s, CPU {median[k].cpu:6.1f} s   "
              f"(wall of each run: {', '.join(f'{t.wall:.1f}' for t in v)})")
    return median


def ratio(new, reference, target):
    """new / reference in wall time (the target's) and in CPU time (less sensitive
    to what else the machine runs)."""
    return (f"{new.wall / reference.wall:.2f}x wall (target <= {target}x), "
            f"{new.cpu / reference.cpu:.2f}x CPU")


def minus(a, b):
    return Took(a.wall - b.wall, a.cpu - b.cpu)


# --- mlp2800 --------------------------------------------------------------------------------

BATCHED_PROCESS = textwrap.dedent("""
    import itertools, sys
    sys.path.insert(0, {repo!r})
    from shortcutbench.core.records import Cell
    from shortcutbench.measuring.mlp.batched import measure_cells_batched
    from shortcutbench.measuring.measure import write_chunk
    config = {config!r}
    cells = [Cell(d, w, s, sc) for d, w, s, sc in itertools.product(
        config["depths"], config["widths"], config["seeds"], config["shortcut"])]
    write_chunk(measure_cells_batched(cells, progress=None), {out!r})
""")


def batched_process(config, out):
    """The batched engine in one fresh process: import torch, measure every cell, write them."""
    code = BATCHED_PROCESS.format(repo=str(REPO), config=config, out=str(out))
    subprocess.run([sys.executable, "-c", code], check=True, env=NEW.env())


def target_mlp2800(scratch, repeats=3):
    print("\n== mlp2800: measuring 2,800 MLP cells, engine batched, against the floor ==")
    times = {"floor": [], "batched engine, one process": [], "workflow --until measure": [],
             "snakemake alone": []}
    for _ in range(repeats):
        times["floor"].append(took(floor, SWEEP_2800, "measure_cell_book_style",
                                   scratch / "f.csv"))
        times["batched engine, one process"].append(
            took(batched_process, SWEEP_2800, scratch / "b.csv"))
        times["workflow --until measure"].append(took(
            NEW.snakemake, scratch / "mlp2800", SWEEP_2800, "--until", "measure",
            engine="batched"))
        times["snakemake alone"].append(took(snakemake_alone, scratch / "one-job"))
    median = medians(times)
    workflow = minus(median["workflow --until measure"], median["snakemake alone"])
    print(f"  the workflow's measuring after Snakemake's own cost / floor = "
          f"{ratio(workflow, median['floor'], 0.2)}")
    print(f"  the batched engine in one process / floor = "
          f"{ratio(median['batched engine, one process'], median['floor'], 0.2)}")


# --- many -----------------------------------------------------------------------------------

def target_many(scratch, baseline):
    print("\n== many: the 240-variant sweep's measuring (14,400 cells, --until measure, "
          "--cores 2) ==")
    runs = {baseline.name: (baseline, None), "new, engine exact": (NEW, "exact"),
            "new, engine batched": (NEW, "batched")}
    median = medians({name: [took(side.snakemake, scratch / "many", MANY_AXES, "--until",
                                  "measure", engine=engine)]
                      for name, (side, engine) in runs.items()})
    for name in list(runs)[1:]:
        print(f"  {name}: {ratio(median[name], median[baseline.name], 0.25)}")


# --- default --------------------------------------------------------------------------------

def job_seconds(workdir):
    """{job's benchmark path: wall seconds} from Snakemake's benchmark files."""
    seconds = {}
    root = workdir / "logs" / "benchmark"
    for path in root.rglob("*.tsv"):
        with open(path) as f:
            seconds[str(path.relative_to(root))[:-4]] = float(
                next(csv.DictReader(f, delimiter="\t"))["s"])
    return seconds


def timeline(workdir):
    """[(start, end, rule, wildcards)] seconds after the first job started, from
    Snakemake's log (to the second, as it stamps them)."""
    log = sorted((workdir / ".snakemake" / "log").glob("*.log"))[-1].read_text()
    stamp = first = rule = None
    started, ended = {}, {}
    for line in log.splitlines():
        if match := re.match(r"\[(\w+ \w+ +\d+ [\d:]+ \d+)\]", line):
            stamp = datetime.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
        elif match := re.match(r"(?:local)?rule (\w+):", line):
            rule = [match.group(1), ""]
        elif (match := re.match(r"\s+wildcards: (.*)", line)) and rule:
            rule[1] = match.group(1)
        elif (match := re.match(r"\s+jobid: (\d+)", line)) and rule:
            started[match.group(1)] = (stamp, rule)  # its wildcards come after
        elif match := re.match(r"Finished jobid: (\d+)", line):
            ended[match.group(1)] = stamp
    return sorted(((s - first).seconds, (ended.get(j, s) - first).seconds, *rule)
                  for j, (s, rule) in started.items())


def describe_default(workdir, wall):
    jobs = job_seconds(workdir)
    per_rule = {}
    for name, seconds in jobs.items():
        per_rule[name.split("/")[0]] = per_rule.get(name.split("/")[0], 0.0) + seconds
    print(f"    {len(jobs)} jobs, {sum(jobs.values()):.1f} job-seconds in {wall:.1f} s of wall; "
          "per rule: " + ", ".join(f"{r} {s:.1f}" for r, s in
                                  sorted(per_rule.items(), key=lambda kv: -kv[1])))
    print("    the longest jobs (start -> end, s after the first job):")
    runs = timeline(workdir)
    for start, end, rule, wildcards in sorted(runs, key=lambda r: r[0] - r[1])[:8]:
        print(f"      {start:4d} -> {end:4d} ({end - start:3d} s) {rule} {wildcards}")
    last = max(runs, key=lambda r: r[1])
    merge = min(s for s, _, r, w in runs if r == "merge" and w == "prefix=")
    print(f"    the main sweep's merge (after every chunk) starts at {merge} s; the last job "
          f"ends at {last[1]} s ({last[2]})")


def target_default(scratch, baseline):
    print("\n== default: `make report`'s workflow (config/config.yaml, --cores 4) ==")
    runs = {baseline.name: (baseline, None, "default-base"),
            "new, engine exact": (NEW, "exact", "default-exact"),
            "new, engine batched": (NEW, "batched", "default-batched")}
    times = {name: [took(side.snakemake, scratch / workdir, None, cores=4, engine=engine)]
             for name, (side, engine, workdir) in runs.items()}
    median = medians(times)
    for name, (_, _, workdir) in runs.items():
        print(f"  {name}" + (f": {ratio(median[name], median[baseline.name], 0.5)}"
                             if name != baseline.name else ""))
        describe_default(scratch / workdir, median[name].wall)
    floor_of_default(scratch / "default-batched", median["new, engine batched"],
                     0.5 * median[baseline.name].wall)
    without_studies(scratch, median[baseline.name])


def without_studies(scratch, baseline):
    """A bound on packing the studies' jobs into the main sweep's: the batched
    run with the config's studies left out, as if measuring, merging and
    reading them cost nothing."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    studies = sorted(config.pop("studies", {}))
    run = took(NEW.snakemake, scratch / "default-no-studies", config, cores=4, engine="batched")
    print(f"  bound: the batched run without the config's {len(studies)} studies "
          f"({', '.join(studies)}), as if they cost nothing: {run.wall:.1f} s of wall, "
          f"{run.cpu:.1f} s of CPU; {ratio(run, baseline, 0.5)}")


def floor_of_default(workdir, new, target_wall):
    """What bounds the default workflow's wall from below on this machine:
    its CPU seconds over the cores it runs on (the machine's, at most the
    run's --cores 4; jobs run on one thread each), and the part of them no
    change to a job's code removes (a process that imports torch, once per
    measuring or training job)."""
    cores = min(os.cpu_count(), 4)
    torch_import = statistics.median(
        took(subprocess.run, [sys.executable, "-c", "import torch"], check=True).cpu
        for _ in range(3))
    jobs = job_seconds(workdir)
    torch_jobs = sum(name.split("/")[0] in ("measure", "train") for name in jobs)
    print(f"  floor: the batched run's CPU over {cores} cores is {new.cpu / cores:.1f} s of wall "
          f"at best; the target is {target_wall:.1f} s.  Importing torch costs a process "
          f"{torch_import:.2f} s of CPU: {torch_jobs} measuring and training jobs, "
          f"{torch_jobs * torch_import:.1f} s; {len(jobs)} jobs in all")


# --- floor280, floor2800 --------------------------------------------------------------------

def against_floor(scratch, name, label, config, target, *args, repeats=3):
    print(f"\n== {name}: {label} ==")
    times = {"floor": [], "snakemake alone": [], "new, engine exact": [],
             "new, engine batched": []}
    for _ in range(repeats):
        for engine in ("exact", "batched"):
            times[f"new, engine {engine}"].append(took(
                NEW.snakemake, scratch / name, config, *args,
                engine=engine))
        times["snakemake alone"].append(took(snakemake_alone, scratch / "one-job"))
        times["floor"].append(took(floor, config, "measure_cell_book_style", scratch / "f.csv"))
    median = medians(times)
    for engine in ("exact", "batched"):
        ours = minus(median[f"new, engine {engine}"], median["snakemake alone"])
        print(f"  new, engine {engine}, after Snakemake's own cost / floor = "
              f"{ratio(ours, median['floor'], target)}")


# --- limits ---------------------------------------------------------------------------------

def matmul_flops_per_second(n=2048, repeats=3):
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm
    best = min(timed_once(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def timed_once(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def counted_flops(function):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def target_limits(repeats=5):
    from families import GPT_OPTIONS, cell

    from shortcutbench.core.records import Cell
    from shortcutbench.measuring.family import configure_torch, family_of, measure_cell
    from shortcutbench.measuring.mlp.batched import BATCH, measure_cells_batched

    configure_torch()
    peak = matmul_flops_per_second()
    print(f"\n== limits: this machine's float32 matmul on one thread (2048 x 2048): "
          f"{peak / 1e9:.1f} GFLOP/s ==")
    print("  (matmul FLOPs only, torch.utils.flop_counter: the limit is a lower bound)")

    mlp = [Cell(64, 32, seed, True) for seed in range(BATCH)]
    mlp_seconds = statistics.median(timed_once(lambda: measure_cells_batched(mlp, None))
                                    for _ in range(repeats)) / BATCH
    mlp_flops = counted_flops(lambda: measure_cells_batched(mlp, None)) / BATCH

    fields = cell("gpt", 8, True, "pre_layernorm")
    family = family_of("gpt", GPT_OPTIONS)
    measure_cell(family, fields, GPT_OPTIONS)  # warm
    gpt_seconds = statistics.median(timed_once(lambda: measure_cell(family, fields, GPT_OPTIONS))
                                    for _ in range(repeats))
    gpt_flops = counted_flops(lambda: measure_cell(family, fields, GPT_OPTIONS))
    for name, seconds, flops in (
            (f"MLP depth 64 x width 32, shortcut, batched ({BATCH} seeds a batch)",
             mlp_seconds, mlp_flops),
            (f"GPT 8 blocks, emb {GPT_OPTIONS['emb_dim']}, {GPT_OPTIONS['n_tokens']} tokens, "
             "pre-LN, shortcut, per cell", gpt_seconds, gpt_flops)):
        limit = flops / peak
        print(f"  {name}: {seconds * 1e3:.3f} ms a cell, {flops / 1e6:.2f} MFLOP, limit "
              f"{limit * 1e3:.4f} ms: time / limit = {seconds / limit:.0f}x")


# --------------------------------------------------------------------------------------------

NEW = Side("new", REPO)


def main(names):
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        sys.exit(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    scratch = Path(tempfile.mkdtemp(prefix="shortcutbench-targets-"))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            text=True, capture_output=True).stdout.strip()
    print(f"issue 22's targets: new = {REPO} ({commit}), baseline = {BASELINE}; "
          f"{os.cpu_count()} cores; python {sys.version.split()[0]}")
    try:
        if "mlp2800" in names:
            target_mlp2800(scratch)
        if {"many", "default"} & set(names):
            with baseline_tree(scratch) as baseline:
                if "many" in names:
                    target_many(scratch, baseline)
                if "default" in names:
                    target_default(scratch, baseline)
        if "floor280" in names:
            against_floor(scratch, "floor280", "280 cells to results/gradients.csv",
                          SWEEP_280, 1.0, "results/gradients.csv")
        if "floor2800" in names:
            against_floor(scratch, "floor2800", "2,800 cells with the report", SWEEP_2800, 0.5)
        if "limits" in names:
            target_limits()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(TARGETS))
