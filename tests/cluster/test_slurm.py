"""The workflow through SLURM, with Snakemake's own SLURM executor plugin and
the profile in workflow/profiles/slurm, on the multi-node cluster that
tests/cluster/slurm_cluster.sh brings up on this machine (nodes node1..nodeN,
one slurmd each, node1 with the one fake GPU).

Run by `make test-cluster` (bash tests/cluster/run.sh), which brings the
cluster up, sets SHORTCUTBENCH_SLURM_TESTS=1 and brings the cluster down
again; plain `pytest` skips this file.

Three sweeps go through SLURM, side by side (most of their time is spent
waiting for the plugin's next status check), while the cpu ones also run
locally:

* a cpu sweep of three chunks, which must go out as one grouped submission
  of --cores CPUs and give the local run's bytes under results/.
  Its first attempt is made to fail inside SLURM (a --deadline SLURM cannot
  meet, so SLURM ends the job as DEADLINE) and --retries must re-submit it;
* a cpu + cuda sweep: the cuda chunk's job must ask SLURM for a GPU (the
  cluster's GPU is fake, so SLURM runs it, and the job fails because torch
  sees no CUDA) and the cpu chunk's job must not; the run fails naming the
  rule, after --retries re-submitted the failed job once.  The cuda job
  must have run on the GPU node;
* a sweep of six chunks, two per submission, whose submissions must land on
  more than one node and give the local run's bytes under results/.

Then, one after the other, the same six-chunk sweep twice more, each with a
node taken away: one set DOWN while it measures (SLURM requeues its job,
which starts again elsewhere), one drained before the run (it gets no job).
Both must give the local run's bytes under results/.

Every snakemake run has a timeout: a hang (e.g. a status check that never
sees a job finish) fails the test instead of stalling CI.  Each run's output
is kept in its directory as snakemake.out.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO, SMALL_CONFIG, snakemake

if os.environ.get("SHORTCUTBENCH_SLURM_TESTS") != "1":
    pytest.skip("needs the local SLURM cluster; run `make test-cluster` "
                "(bash tests/cluster/run.sh)", allow_module_level=True)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PROFILE = REPO / "workflow" / "profiles" / "slurm"
# The workflow's own part (the job grouping), given beside the site's profile.
WORKFLOW_PROFILE = REPO / "workflow" / "profiles" / "default"
# What tests/cluster/slurm_cluster.sh sets up.
ACCOUNT = "shortcutbench"
PARTITION = "main"
# Seconds for one snakemake run (they take a minute or so).
TIMEOUT = 300
# Seconds for a node to change state, or a job to reach one.
STATE_TIMEOUT = 60


def check_output(*command, timeout=30):
    return subprocess.run(command, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


def cluster_nodes():
    """{node: (CPUs, gres)}, as sinfo lists them."""
    nodes = {}
    for line in check_output("sinfo", "-N", "-h", "-o", "%N %c %G").splitlines():
        name, cpus, gres = line.split()
        nodes[name] = (int(cpus), gres)
    return nodes


NODES = cluster_nodes()
# CPUs of a grouped submission (--cores); more than the node has would never
# be scheduled.
CORES = min(2, *(cpus for cpus, _ in NODES.values()))
# A submission asking for this many CPUs fills the smallest node: two
# submissions of one run cannot share a node, and at most one runs per node.
NODE_CPUS = min(cpus for cpus, _ in NODES.values())
GPU_NODES = sorted(name for name, (_, gres) in NODES.items() if "gpu" in gres)
multi_node = pytest.mark.skipif(
    len(NODES) < 2, reason="needs a cluster of 2 nodes or more (SHORTCUTBENCH_SLURM_NODES)")

# Three cpu chunks (seeds_per_job 1), which the planner packs into one job
# (cells_per_job): a pack measured on the cluster gives the local run's bytes.
CPU_CONFIG = {**SMALL_CONFIG, "seeds": [122, 123, 124], "seeds_per_job": 1}
# One cpu chunk and one cuda chunk.
GPU_CONFIG = {**SMALL_CONFIG, "seeds": [123], "devices": ["cpu", "cuda"]}
# Six cpu chunks (two widths x three blocks of two seeds), sent out two per
# submission: three submissions, each asking for a whole node.  Each chunk
# measures for seconds, long enough to take a node away under it; each chunk
# a job of its own (cells_per_job 1: no packing), so that there is work to spread.
SWEEP_CONFIG = {**SMALL_CONFIG, "depths": [1, 2, 4, 8, 16, 32, 64], "widths": [3, 32],
                "seeds": [0, 1, 2, 3, 4, 5], "seeds_per_job": 2, "cells_per_job": 1}
SWEEP_CHUNKS = 6
SWEEP_CELLS = 7 * 2 * 2 * 6  # depths x widths x shortcut flags x seeds
SWEEP_ARGS = ("--group-components", "measure-cpu=2")
# What the sweeps make: every chunk, the merge (partials.json, summary.csv,
# lines.csv) and gradients.csv.
TARGETS = ("results/partials.json", "results/gradients.csv")

# SLURM cancels a job that cannot end before its deadline, as DEADLINE (a
# failed state for the plugin); the measuring jobs ask for far more than 60 s,
# so the first attempt fails in SLURM without running, and the re-submitted
# one (attempt 2) runs normally.
FAIL_FIRST_ATTEMPT = "measure:slurm_extra='--deadline=now+60' if attempt == 1 else ''"


def default_resources():
    """The profile's default resources plus this cluster's account and
    partition.  (On the command line, --default-resources replaces the
    profile's whole list, so it is given in full.)"""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    resources = {**profile["default-resources"],
                 "slurm_account": ACCOUNT, "slurm_partition": PARTITION}
    return [f"{name}={value}" for name, value in resources.items()]


def wait_for(what, check, timeout=STATE_TIMEOUT, every=0.5):
    """Poll check() until it returns something true; return that.  Fails
    the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def node_state(node):
    return check_output("sinfo", "-h", "-n", node, "-o", "%T").strip()


def set_node_state(node, state):
    check_output("scontrol", "update", f"NodeName={node}", f"State={state}",
                 "Reason=shortcutbench cluster test")


UP = ("idle", "mixed", "allocated", "completing")


def resume_node(node):
    """Give the node back to the cluster and wait until it takes jobs.  A
    node whose state is up already (whatever sinfo's flag suffix, e.g. `*`
    while it does not respond) is left alone: SLURM refuses to resume it."""
    if node_state(node).rstrip("*~#!%$@^-") not in UP:
        set_node_state(node, "RESUME")
    wait_for(f"node {node} to take jobs again", lambda: node_state(node) in UP)


def results_files(workdir):
    """{path under results/: bytes} of every file there."""
    root = Path(workdir) / "results"
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def assert_same_results(workdir, local):
    ours, theirs = results_files(workdir), results_files(local)
    assert sorted(ours) == sorted(theirs), "the files under results/ differ"
    differ = [name for name in ours if ours[name] != theirs[name]]
    assert not differ, f"these files differ from the local run's: {differ}"
    assert ours  # something was compared


class SlurmRun:
    """`snakemake TARGETS` through SLURM with the repo's profile, started in
    the background."""

    def __init__(self, workdir, config, *args, targets=("results/gradients.csv",), cores=CORES):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        command = [
            str(BIN / "snakemake"), *targets,
            "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--workflow-profile", str(WORKFLOW_PROFILE),
            "--profile", str(PROFILE),
            "--cores", str(cores),
            "--default-resources", *default_resources(),
            # The jobs take seconds: check their status a second after
            # submitting, not after the profile's 20 s.
            "--slurm-init-seconds-before-status-checks", "1",
            "--seconds-between-status-checks", "1",
            *args,
            # Last: --configfile takes every word after it.
            "--configfile", str(config_path),
        ]
        # Jobs run in the submitting environment (sbatch --export=ALL).
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.log = workdir / "snakemake.out"
        with open(self.log, "w") as out:
            # SIGINT as usual even if this runs in the background of a
            # script (which ignores it): stop() relies on it.
            self.process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.deadline = time.monotonic() + TIMEOUT
        self._done = False
        self.run_id = None

    def stop(self):
        """End snakemake if it still runs: on SIGINT (Ctrl-C) it cancels
        its SLURM jobs and exits.  (On SIGTERM it would wait for them.)"""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _run_id(self):
        marker = "SLURM run ID: "
        ids = [line[len(marker):].strip() for line in self.log.read_text().splitlines()
               if line.startswith(marker)]
        return ids[0] if len(ids) == 1 else None

    def wait_for_run_id(self):
        """The run's id, once snakemake has printed it (before it submits)."""
        self.run_id = wait_for(f"the SLURM run ID in {self.log}", self._run_id)
        return self.run_id

    def submissions(self):
        """{SLURM job id: its SLURM log}, of every job submitted so far."""
        found = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$",
                           self.log.read_text(), flags=re.MULTILINE)
        return {int(job_id): Path(log) for job_id, log in found}

    def wait(self):
        """Wait for the run to end; then .returncode, .output and .run_id."""
        if self._done:
            return self
        try:
            self.process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            queue = subprocess.run(["squeue"], capture_output=True, text=True,
                                   timeout=30).stdout
            self.stop()
            pytest.fail(f"snakemake through SLURM did not finish within {TIMEOUT} s.\n"
                        f"squeue:\n{queue}\nsnakemake output ({self.log}), end:\n"
                        f"{self.log.read_text()[-6000:]}")
        self._done = True
        self.returncode = self.process.returncode
        self.output = self.log.read_text()
        # The plugin names every SLURM job of the run after this id.
        self.run_id = self._run_id()
        assert self.run_id, f"no SLURM run ID in {self.log}:\n{self.output[-6000:]}"
        return self

    def jobs(self, group, expected, every_start=False):
        """The run's SLURM jobs for Snakemake group `group`, as sacct lists
        them, once it lists `expected` of them (slurmdbd gets job records
        asynchronously).  every_start: a job requeued after its node failed
        is listed once per start (sacct --duplicates), oldest first."""
        deadline = time.monotonic() + 30
        while True:
            out = check_output("sacct", "-X", "-n", "-P", "--name", self.run_id,
                               *(["--duplicates"] if every_start else []),
                               "-S", "now-1days", "-E", "now",
                               "-o", "JobIDRaw,State,NodeList,Start,ReqTRES,Comment")
            jobs = []
            for line in out.splitlines():
                job_id, state, node, start, tres, comment = line.split("|", 5)
                # The plugin's sbatch --comment names the group (or rule).
                if comment != f"rule_{group}_measure":
                    continue
                # ReqTRES, what the job asked for: billing=1,cpu=1,gres/gpu=1,...
                tres = dict(item.split("=", 1) for item in tres.split(",") if item)
                jobs.append({"id": int(job_id), "state": state, "node": node,
                             "start": start, "tres": tres})
            if len(jobs) >= expected or time.monotonic() > deadline:
                return sorted(jobs, key=lambda job: (job["id"], job["start"]))
            time.sleep(1)


def leftover_processes(workdir):
    """Processes (other than this one) whose command line names the run's
    directory: a job's processes that outlived it."""
    mine, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in argv:
            found.append(f"{entry.name}: {argv[:200]}")
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three SLURM runs of every node, started at once, and meanwhile
    the local runs."""
    started = []
    try:
        cpu = SlurmRun(tmp_path_factory.mktemp("slurm-cpu"), CPU_CONFIG,
                       "--retries", "1", "--set-resources", FAIL_FIRST_ATTEMPT)
        started.append(cpu)
        gpu = SlurmRun(tmp_path_factory.mktemp("slurm-gpu"), GPU_CONFIG,
                       "--keep-going", "--retries", "1")
        started.append(gpu)
        spread = SlurmRun(tmp_path_factory.mktemp("slurm-spread"), SWEEP_CONFIG, *SWEEP_ARGS,
                          targets=TARGETS, cores=NODE_CPUS)
        started.append(spread)
        local = tmp_path_factory.mktemp("local")
        snakemake(local, CPU_CONFIG, "results/gradients.csv", timeout=TIMEOUT)
        local_sweep = tmp_path_factory.mktemp("local-sweep")
        snakemake(local_sweep, SWEEP_CONFIG, *TARGETS, timeout=TIMEOUT)
        yield {"cpu": cpu, "gpu": gpu, "spread": spread, "local": local,
               "local_sweep": local_sweep}
    finally:
        for run in started:
            run.stop()


@pytest.fixture(scope="module")
def cpu_run(runs):
    return runs["cpu"].wait()


@pytest.fixture(scope="module")
def gpu_run(runs):
    return runs["gpu"].wait()


@pytest.fixture(scope="module")
def spread_run(runs):
    return runs["spread"].wait()


@pytest.fixture(scope="module")
def quiet_cluster(runs):
    """The runs of every node have ended: a node taken away now takes no
    other test's job with it."""
    for name in ("cpu", "gpu", "spread"):
        runs[name].wait()


def measuring_submission(run):
    """(SLURM job id, node, chunk) of a submission of `run` that is measuring
    a chunk now: running, and Snakemake inside it has started a measure job
    (its SLURM log names the chunk)."""
    running = check_output("squeue", "-h", "--name", run.run_id, "-t", "RUNNING",
                           "-o", "%i %N").split()
    nodes = dict(zip(map(int, running[::2]), running[1::2]))
    for job_id, log in run.submissions().items():
        if job_id not in nodes or not log.exists():
            continue
        chunk = re.search(r"wildcards: chunk=(\S+)", log.read_text())
        if chunk:
            return job_id, nodes[job_id], chunk.group(1)
    return None


@pytest.fixture(scope="module")
def lost_node_run(quiet_cluster, tmp_path_factory):
    """The six-chunk sweep; while one submission measures, its node is set
    DOWN (and stays down until the run has ended, then comes back)."""
    run = SlurmRun(tmp_path_factory.mktemp("slurm-lost-node"), SWEEP_CONFIG, *SWEEP_ARGS,
                   targets=TARGETS, cores=NODE_CPUS)
    node = None
    try:
        run.wait_for_run_id()
        job_id, node, chunk = wait_for("a submission to start measuring",
                                       lambda: measuring_submission(run), timeout=TIMEOUT,
                                       every=0.2)
        lost_at = time.time()
        set_node_state(node, "DOWN")
        run.wait()
        run.lost = {"job": job_id, "node": node, "chunk": chunk, "at": lost_at}
        # The run has ended: the node comes back before the next run needs it.
        resume_node(node)
        yield run
    finally:
        run.stop()
        if node:
            resume_node(node)


@pytest.fixture(scope="module")
def drained_node_run(lost_node_run, tmp_path_factory):
    """The six-chunk sweep on a cluster with one node drained before it
    starts (after the lost-node run, which needs every node)."""
    node = sorted(NODES)[-1]
    set_node_state(node, "DRAIN")
    run = None
    try:
        wait_for(f"node {node} to be drained", lambda: node_state(node) == "drained")
        run = SlurmRun(tmp_path_factory.mktemp("slurm-drained"), SWEEP_CONFIG, *SWEEP_ARGS,
                       targets=TARGETS, cores=NODE_CPUS)
        run.wait()
        run.drained = node
        yield run
    finally:
        if run:
            run.stop()
        resume_node(node)


def test_the_sweep_through_slurm_gives_the_local_bytes(cpu_run, runs):
    assert cpu_run.returncode == 0, cpu_run.output[-6000:]
    assert_same_results(cpu_run.workdir, runs["local"])


def test_the_chunks_went_through_slurm_as_one_submission(cpu_run):
    jobs = cpu_run.jobs("measure-cpu", expected=2)
    # Three chunks, one submission per attempt (their group): the first
    # failed in SLURM, the second ran them.
    assert [job["state"] for job in jobs] == ["DEADLINE", "COMPLETED"], jobs
    # The group asks for --cores CPUs (and runs that many chunks at a time),
    # not for one CPU per chunk; nothing of a cpu sweep asks for a GPU.
    assert all(job["tres"]["cpu"] == str(CORES) for job in jobs), jobs
    assert all("gres/gpu" not in job["tres"] for job in jobs), jobs


def test_a_job_that_fails_in_slurm_is_resubmitted_with_retries(cpu_run):
    assert cpu_run.returncode == 0, cpu_run.output[-6000:]
    # The failed attempt is the DEADLINE job above.
    assert "Error in group measure-cpu" in cpu_run.output
    assert "Trying to restart job" in cpu_run.output


def test_a_gpu_cell_asks_slurm_for_a_gpu_and_a_cpu_cell_does_not(gpu_run):
    gpu_jobs = gpu_run.jobs("measure-gpu", expected=2)
    cpu_jobs = gpu_run.jobs("measure-cpu", expected=1)
    assert gpu_jobs and all(job["tres"].get("gres/gpu") == "1" for job in gpu_jobs), gpu_jobs
    assert cpu_jobs and all("gres/gpu" not in job["tres"] for job in cpu_jobs), cpu_jobs
    # The cpu chunk ran (--keep-going); the cuda one could not.
    assert [job["state"] for job in cpu_jobs] == ["COMPLETED"], cpu_jobs
    assert list(gpu_run.workdir.glob("results/cells/**/device~cpu/**/*.parquet"))
    assert not list(gpu_run.workdir.glob("results/cells/**/device~cuda/**/*.parquet"))


def test_a_gpu_job_runs_on_the_node_with_the_gpu(gpu_run):
    assert len(GPU_NODES) == 1, NODES
    gpu_jobs = gpu_run.jobs("measure-gpu", expected=2)
    assert gpu_jobs and all(job["node"] == GPU_NODES[0] for job in gpu_jobs), gpu_jobs


def test_a_job_failing_in_slurm_fails_the_run_naming_the_rule(gpu_run):
    assert gpu_run.returncode != 0
    assert "Error in rule measure" in gpu_run.output
    # --retries 1: submitted twice, failed twice.
    gpu_jobs = gpu_run.jobs("measure-gpu", expected=2)
    assert [job["state"] for job in gpu_jobs] == ["FAILED", "FAILED"], gpu_jobs
    # Why, in the job's log: the device, and the host it was missing on.
    logs = [path for path in gpu_run.workdir.glob("logs/measure/**/*.log")
            if "device~cuda" in str(path)]
    assert len(logs) == 1, logs
    assert (f"DeviceUnavailable: device 'cuda' is not available on host "
            f"'{socket.gethostname()}'") in logs[0].read_text()


@multi_node
def test_a_sweep_spreads_over_the_nodes(spread_run, runs):
    assert spread_run.returncode == 0, spread_run.output[-6000:]
    jobs = spread_run.jobs("measure-cpu", expected=SWEEP_CHUNKS // 2)
    assert len(jobs) == SWEEP_CHUNKS // 2, jobs
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    assert len({job["node"] for job in jobs}) >= 2, jobs
    assert_same_results(spread_run.workdir, runs["local_sweep"])


@multi_node
def test_a_node_lost_mid_run_costs_one_requeue_and_no_result(lost_node_run, runs):
    run, lost = lost_node_run, lost_node_run.lost
    assert run.returncode == 0, run.output[-6000:]
    # SLURM requeued the job under its id; it started again on a node that
    # works (the lost one stays down: ReturnToService=1).
    starts = [job for job in run.jobs("measure-cpu", expected=SWEEP_CHUNKS // 2 + 1,
                                      every_start=True) if job["id"] == lost["job"]]
    assert [job["state"] for job in starts] == ["NODE_FAIL", "COMPLETED"], starts
    assert starts[0]["node"] == lost["node"] and starts[1]["node"] != lost["node"], starts
    # Snakemake waited for the requeued job: it neither failed the job nor
    # submitted it again.  (The plugin's "failed with status 'NODE_FAIL',
    # but requeue is enabled" shows only when one of its status checks fell
    # into the job's NODE_FAIL time: not asserted.)
    assert "Trying to restart job" not in run.output
    assert "Error in group" not in run.output
    assert_same_results(run.workdir, runs["local_sweep"])
    # Every chunk counted once in the merge.
    merged = json.loads((run.workdir / "results" / "partials.json").read_text())
    assert (merged["n_chunks"], merged["n_cells"]) == (SWEEP_CHUNKS, SWEEP_CELLS)
    # The chunk measured when the node went down was measured again, from
    # the start, after: what the merge read is the second measurement.
    machine = run.workdir / "logs" / "measure" / f"{lost['chunk']}.machine.json"
    assert json.loads(machine.read_text())["started"] > lost["at"]
    # Nothing of the killed job lives on to write into results/ (SLURM
    # kills what is left of a job KillWait seconds after ending it).
    wait_for(f"every process of the run in {run.workdir} to end",
             lambda: not leftover_processes(run.workdir), timeout=15)


@multi_node
def test_a_drained_node_gets_no_job_and_the_others_run_the_sweep(drained_node_run, runs):
    run = drained_node_run
    assert run.returncode == 0, run.output[-6000:]
    jobs = run.jobs("measure-cpu", expected=SWEEP_CHUNKS // 2)
    assert len(jobs) == SWEEP_CHUNKS // 2 and all(j["state"] == "COMPLETED" for j in jobs), jobs
    assert run.drained not in {job["node"] for job in jobs}, jobs
    assert_same_results(run.workdir, runs["local_sweep"])
