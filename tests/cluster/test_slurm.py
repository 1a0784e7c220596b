"""The workflow through SLURM, with Snakemake's own SLURM executor plugin and
the profile in workflow/profiles/slurm, on the single-node cluster that
tests/cluster/slurm_cluster.sh brings up on this machine.

Run by `make test-cluster` (bash tests/cluster/run.sh), which brings the
cluster up, sets SHORTCUTBENCH_SLURM_TESTS=1 and brings the cluster down
again; plain `pytest` skips this file.

Two sweeps go through SLURM, side by side (most of their time is spent
waiting for the plugin's next status check), while the cpu one also runs
locally:

* a cpu sweep of three chunks, which must go out as one grouped submission
  of --cores CPUs and give the same gradients.csv bytes as the local run.
  Its first attempt is made to fail inside SLURM (a --deadline SLURM cannot
  meet, so SLURM ends the job as DEADLINE) and --retries must re-submit it;
* a cpu + cuda sweep: the cuda chunk's job must ask SLURM for a GPU (the
  cluster's GPU is fake, so SLURM runs it, and the job fails because torch
  sees no CUDA) and the cpu chunk's job must not; the run fails naming the
  rule, after --retries re-submitted the failed job once.

Every snakemake run has a timeout: a hang (e.g. a status check that never
sees a job finish) fails the test instead of stalling CI.  Each run's output
is kept in its directory as snakemake.out.
"""

import os
import signal
import socket
import subprocess
import time

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

# Three cpu chunks (seeds_per_job 1): more chunks than CORES, so that the
# group has something to group and must fit its chunks into CORES CPUs.
CPU_CONFIG = {**SMALL_CONFIG, "seeds": [122, 123, 124], "seeds_per_job": 1}
# One cpu chunk and one cuda chunk.
GPU_CONFIG = {**SMALL_CONFIG, "seeds": [123], "devices": ["cpu", "cuda"]}

# SLURM cancels a job that cannot end before its deadline, as DEADLINE (a
# failed state for the plugin); the measuring jobs ask for far more than 60 s,
# so the first attempt fails in SLURM without running, and the re-submitted
# one (attempt 2) runs normally.
FAIL_FIRST_ATTEMPT = "measure:slurm_extra='--deadline=now+60' if attempt == 1 else ''"


def check_output(*command, timeout=30):
    return subprocess.run(command, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


# CPUs of a grouped submission (--cores); more than the node has would never
# be scheduled.
CORES = min(2, *(int(n) for n in check_output("sinfo", "-h", "-o", "%c").split()))


def default_resources():
    """The profile's default resources plus this cluster's account and
    partition.  (On the command line, --default-resources replaces the
    profile's whole list, so it is given in full.)"""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    resources = {**profile["default-resources"],
                 "slurm_account": ACCOUNT, "slurm_partition": PARTITION}
    return [f"{name}={value}" for name, value in resources.items()]


class SlurmRun:
    """`snakemake results/gradients.csv` through SLURM with the repo's
    profile, started in the background."""

    def __init__(self, workdir, config, *args):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        command = [
            str(BIN / "snakemake"), "results/gradients.csv",
            "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--workflow-profile", str(WORKFLOW_PROFILE),
            "--profile", str(PROFILE),
            "--cores", str(CORES),
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
        marker = "SLURM run ID: "
        ids = [line[len(marker):].strip() for line in self.output.splitlines()
               if line.startswith(marker)]
        assert len(ids) == 1, f"no SLURM run ID in {self.log}:\n{self.output[-6000:]}"
        # The plugin names every SLURM job of the run after this id.
        self.run_id = ids[0]
        return self

    def jobs(self, group, expected):
        """The run's SLURM jobs for Snakemake group `group`, as sacct lists
        them, once it lists `expected` of them (slurmdbd gets job records
        asynchronously)."""
        deadline = time.monotonic() + 30
        while True:
            out = check_output("sacct", "-X", "-n", "-P", "--name", self.run_id,
                               "-S", "now-1days", "-E", "now",
                               "-o", "JobIDRaw,State,ReqTRES,Comment")
            jobs = []
            for line in out.splitlines():
                job_id, state, tres, comment = line.split("|", 3)
                # The plugin's sbatch --comment names the group (or rule).
                if comment != f"rule_{group}_measure":
                    continue
                # ReqTRES, what the job asked for: billing=1,cpu=1,gres/gpu=1,...
                tres = dict(item.split("=", 1) for item in tres.split(",") if item)
                jobs.append({"id": int(job_id), "state": state, "tres": tres})
            if len(jobs) >= expected or time.monotonic() > deadline:
                return sorted(jobs, key=lambda job: job["id"])
            time.sleep(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both SLURM runs, started at once, and meanwhile the local run."""
    started = []
    try:
        cpu = SlurmRun(tmp_path_factory.mktemp("slurm-cpu"), CPU_CONFIG,
                       "--retries", "1", "--set-resources", FAIL_FIRST_ATTEMPT)
        started.append(cpu)
        gpu = SlurmRun(tmp_path_factory.mktemp("slurm-gpu"), GPU_CONFIG,
                       "--keep-going", "--retries", "1")
        started.append(gpu)
        local = tmp_path_factory.mktemp("local")
        snakemake(local, CPU_CONFIG, "results/gradients.csv", timeout=TIMEOUT)
        yield {"cpu": cpu, "gpu": gpu, "local": local}
    finally:
        for run in started:
            run.stop()


@pytest.fixture(scope="module")
def cpu_run(runs):
    return runs["cpu"].wait()


@pytest.fixture(scope="module")
def gpu_run(runs):
    return runs["gpu"].wait()


def test_the_sweep_through_slurm_gives_the_local_bytes(cpu_run, runs):
    assert cpu_run.returncode == 0, cpu_run.output[-6000:]
    assert (cpu_run.workdir / "results" / "gradients.csv").read_bytes() == \
        (runs["local"] / "results" / "gradients.csv").read_bytes()


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
