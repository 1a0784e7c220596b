"""The login node at scale (issue 18, goal 3), printed.

    .venv/bin/python benchmarks/login_node.py             # planning, then merging (~6 min)
    .venv/bin/python benchmarks/login_node.py plan        # planning only (~30 s)
    .venv/bin/python benchmarks/login_node.py merge [DIR] # merging only; DIR keeps the
                                                          # measured chunks for a re-run

On a cluster Snakemake runs on the login node: it plans the sweep, submits
and follows the jobs, and runs the local rules there, the merge first.  Its
memory there must not grow with the sweep (goal: at most 1 GB each):

1. Planning: peak RSS and wall time of `snakemake -n` with the workflow
   profile, for sweeps of 3,200 to 1,000,000 cells (depths 1-128 (8) x widths
   3, 32 x both flags x seeds 0-N, cpu: 32 cells a seed, 100 seeds a chunk);
   with the SLURM profile too when a SLURM controller answers here
   (tests/cluster/slurm_cluster.sh up), as on a login node.
2. Merging: the merge job's peak RSS for 28,000 and 280,000 measured cells
   (analysis_scale.py's sweep: depths 1-64 (7) x widths 3, 32 x both flags x
   seeds 0-999 / 0-9999, cpu).  The chunks are measured by the real measuring
   jobs (`snakemake --until measure`: 280,000 cells take ~7 min of CPU), then
   `snakemake results/partials.json` runs the merge alone.

Peak RSS is the kernel's high-water mark: for a dry run, os.wait4's
ru_maxrss of the snakemake process; for a merge run, VmHWM of the snakemake
process and of the merge job's process, polled every 50 ms (the job's peak
in Snakemake's own benchmark file, psutil's RSS sampled every 0.5 s, misses
the peaks of a job of a second or two, and is printed beside it as
"sampled").  Nothing here asserts: it prints.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import REPO, n_cells, snakemake_command, snakemake_environment

WORKFLOW_PROFILE = REPO / "workflow" / "profiles" / "default"
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
# What tests/cluster/slurm_cluster.sh sets up; only the dry run uses them.
SLURM_RESOURCES = ["slurm_account=shortcutbench", "slurm_partition=main", "runtime=30",
                   "mem_mb=2000"]

PLAN_SEEDS = (100, 3125, 31250)  # x 32 cells: 3,200, 100,000 and 1,000,000 cells
MERGE_SEEDS = (1000, 10000)  # x 28 cells: 28,000 and 280,000 cells


def plan_config(seeds):
    return {"depths": [1, 2, 4, 8, 16, 32, 64, 128], "widths": [3, 32],
            "seeds": list(range(seeds)), "shortcut": [False, True], "devices": ["cpu"]}


def merge_config(seeds):
    return {"depths": [1, 2, 4, 8, 16, 32, 64], "widths": [3, 32], "seeds": list(range(seeds)),
            "shortcut": [False, True], "devices": ["cpu"], "seeds_per_job": 100}


def high_water_mb(pid):
    """A process's peak RSS so far (VmHWM), in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(pid):
    """(pid, command line) of every process below `pid`."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append((int(entry.name), argv))
    found, todo = [], [pid]
    while todo:
        for child, argv in children.get(todo.pop(), []):
            found.append((child, argv))
            todo.append(child)
    return found


class JobPeaks(threading.Thread):
    """Polls the peak RSS (VmHWM, which only grows) of the snakemake process
    and of its job processes whose command line contains `job` (a script's
    name), until the snakemake process ends: exact peaks, but for growth in a
    job's last poll interval."""

    def __init__(self, pid, job, every=0.05):
        super().__init__(daemon=True)
        self.pid, self.job, self.every = pid, job, every
        self.snakemake_mb, self.job_mb = 0.0, {}
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            own = high_water_mb(self.pid)
            if own is None:
                return
            self.snakemake_mb = max(self.snakemake_mb, own)
            if self.job:
                for child, argv in descendants(self.pid):
                    if self.job in argv:
                        peak = high_water_mb(child)
                        if peak is not None:
                            self.job_mb[child] = max(self.job_mb.get(child, 0.0), peak)
            time.sleep(self.every)


def run(workdir, config, *args, job=None):
    """The real snakemake on `config` in `workdir`.  Returns the wall
    seconds, the peak RSS (MB) of it and every process it waited for
    (wait4's ru_maxrss), its own, the peak of its jobs whose command line
    contains `job` (the largest), and its output.  Exits with the output if
    it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(snakemake_command(workdir, config, *args), cwd=workdir,
                                   env=snakemake_environment(), text=True, stdout=out,
                                   stderr=subprocess.STDOUT)
        peaks = JobPeaks(process.pid, job)
        peaks.start()
        _, status, usage = os.wait4(process.pid, 0)
        peaks.done.set()
        peaks.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if process.returncode:
        sys.exit(f"snakemake failed:\n{output[-4000:]}")
    job_mb = max(peaks.job_mb.values(), default=float("nan"))
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_maxrss / 1024, peaks.snakemake_mb, job_mb, output


def slurm_controller_answers():
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, text=True,
                              timeout=10).stdout.count("is UP") > 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def planned_chunks(output):
    """The measuring jobs in a dry run's job table."""
    match = re.search(r"^measure\s+(\d+)$", output, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def plan():
    profiles = {"workflow profile": ["--workflow-profile", str(WORKFLOW_PROFILE)]}
    if slurm_controller_answers():
        profiles["+ SLURM profile"] = [
            "--workflow-profile", str(WORKFLOW_PROFILE), "--profile", str(SLURM_PROFILE),
            "--default-resources", *SLURM_RESOURCES]
    else:
        print("(no SLURM controller answers here: planning without the SLURM profile; "
              "`bash tests/cluster/slurm_cluster.sh up` adds it)")
    print(f"{'planning: snakemake -n':<26}{'cells':>11}{'chunks':>8}{'wall s':>9}{'peak MB':>9}")
    for label, args in profiles.items():
        for seeds in PLAN_SEEDS:
            config = plan_config(seeds)
            workdir = Path(tempfile.mkdtemp(prefix="login_node_plan_"))
            seconds, peak, _, _, output = run(workdir, config, "-n", *args)
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"{label:<26}{n_cells(config):>11,}{planned_chunks(output):>8}"
                  f"{seconds:>9.2f}{peak:>9.0f}")


def merge_benchmark(workdir):
    """The merge job's wall seconds and max_rss (MB) from its benchmark file."""
    path = workdir / "logs" / "benchmark" / "merge" / "merge.tsv"
    header, values = path.read_text().splitlines()[:2]
    row = dict(zip(header.split("\t"), values.split("\t")))
    return float(row["s"]), float(row["max_rss"])


def merge(keep=None):
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="login_node_merge_"))
    rows = []
    for seeds in MERGE_SEEDS:
        config = merge_config(seeds)
        workdir = root / f"seeds-0-{seeds - 1}"
        workdir.mkdir(parents=True, exist_ok=True)
        measuring, *_ = run(workdir, config, "--until", "measure")
        _, _, snakemake_mb, job_mb, _ = run(workdir, config, "results/partials.json",
                                            "--forcerun", "merge", job="merge.py")
        job_seconds, sampled_mb = merge_benchmark(workdir)
        chunks = len(list((workdir / "results" / "partials").rglob("*.json")))
        rows.append({"cells": n_cells(config), "chunks": chunks, "measuring": measuring,
                     "snakemake": snakemake_mb, "job": job_mb, "seconds": job_seconds,
                     "sampled": sampled_mb})
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'merging':<9}{'cells':>9}{'chunks':>8}{'measuring s':>13}{'merge job s':>13}"
          f"{'merge job peak MB':>19}{'(sampled)':>11}{'snakemake peak MB':>19}")
    for r in rows:
        print(f"{'':<9}{r['cells']:>9,}{r['chunks']:>8}{r['measuring']:>13.1f}"
              f"{r['seconds']:>13.2f}{r['job']:>19.0f}{r['sampled']:>11.0f}"
              f"{r['snakemake']:>19.0f}")
    small, big = rows[0], rows[-1]
    print(f"{big['cells'] / small['cells']:.0f}x the cells: merge job peak "
          f"{big['job'] / small['job']:.2f}x, snakemake's "
          f"{big['snakemake'] / small['snakemake']:.2f}x")


def main(argv):
    what = argv[0] if argv else "all"
    if what in ("all", "plan"):
        plan()
    if what in ("all", "merge"):
        merge(argv[1] if what == "merge" and len(argv) > 1 else None)


if __name__ == "__main__":
    main(sys.argv[1:])
