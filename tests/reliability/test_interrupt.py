"""Interruption: a sweep killed with SIGINT or SIGKILL, then run again, ends
with results/ byte-identical to a run that was never interrupted.

Why no truncated file is ever read as complete -- two layers:

1. Our writes are atomic (shortcutbench.files.atomic_write): every output is
   written to a temporary file beside it (.tmp-NAME-XXXXXXXX), fsync'ed, and
   renamed over NAME only when complete.  A file under its final name is
   always whole; a kill can leave only a temporary file, which no step
   reads and the next write of NAME removes.
2. Snakemake's incomplete-output tracking: before a job starts, Snakemake
   marks its outputs in .snakemake/incomplete/ and clears the mark only once
   the job has succeeded.  On the next run, an output that exists but is
   still marked is refused (IncompleteFilesException, naming the files)
   unless --rerun-incomplete is given, which deletes and re-makes it -- so
   even a non-atomic writer's half file would never be used as input
   (test_snakemake_refuses_a_half_written_output_until_it_is_remade).
   What a person meets after an interruption:
   * SIGINT (Ctrl-C): Snakemake stops its jobs and releases its lock; an
     output a stopped job had already finished (e.g. results/tables.json,
     written before the figures) stays marked incomplete, and the next run
     asks for --rerun-incomplete;
   * SIGKILL: nothing cleans up; the lock in .snakemake/locks/ stays and the
     next run asks for `snakemake --unlock` first.
   The test re-runs exactly as those messages say, and records which.

The kill points: per signal, three strata of the first 85% of the
uninterrupted run's duration (from the first job's start to the end), a
delay drawn uniformly in each from a seeded RNG.  Signals go to the whole
process group, as Ctrl-C in a terminal and a batch system's kill do.
"""

import base64
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from shortcutbench.core.config import validate_config
from shortcutbench.core.files import atomic_write
from shortcutbench.core.store import read_records, write_gradients_csv
from shortcutbench.core.sweep import plan_chunks

from .helpers import (
    SCHEMA_PATH,
    Background,
    leftover_temporaries,
    run,
    tree,
    tree_difference,
)

STRATA = 3


def jobs_at(output_lines, moment):
    """(rules running, rules finished) at `moment` seconds since start, from
    snakemake's output."""
    started, finished = {}, []
    for when, line in output_lines:
        if when > moment:
            break
        match = re.match(r"\s*(?:local)?rule (\w+):", line)
        if match:
            current = match.group(1)
            started.setdefault("pending", []).append(current)
        match = re.match(r"\s*jobid: (\d+)", line)
        if match and started.get("pending"):
            started[int(match.group(1))] = started["pending"].pop()
        match = re.match(r"Finished jobid: (\d+) \(Rule: (\w+)\)", line)
        if match:
            finished.append(int(match.group(1)))
    started.pop("pending", None)
    running = sorted(rule for jobid, rule in started.items() if jobid not in finished)
    done = sorted(rule for jobid, rule in started.items() if jobid in finished)
    return running, done


def marked_incomplete(workdir):
    """The outputs Snakemake has marked incomplete and that exist.  (A mark
    is .snakemake/incomplete/<urlsafe base64 of the path>, split into
    '@'-prefixed folders when longer than a file name may be.)"""
    marks = workdir / ".snakemake" / "incomplete"
    names = []
    for mark in marks.rglob("*") if marks.exists() else []:
        if not mark.is_file():
            continue
        encoded = "".join(part.lstrip("@") for part in mark.relative_to(marks).parts)
        try:
            name = base64.urlsafe_b64decode(encoded).decode()
        except ValueError:
            continue
        if (workdir / name).exists():
            names.append(name)
    return sorted(names)


def wait_for_mark(workdir, output, timeout=60):
    """Until Snakemake has marked `output` incomplete (its job has started)."""
    mark = workdir / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(
        output.encode()).decode()
    deadline = time.monotonic() + timeout
    while not mark.exists():
        assert time.monotonic() < deadline, f"{output} was never marked incomplete"
        time.sleep(0.01)


def rerun_until_done(workdir, config, expect_lock):
    """Run snakemake again the way a person would: plainly first, then with
    each remedy Snakemake's message names (`--unlock` for a lock a killed run
    left, then the same command again; `--rerun-incomplete` for outputs it
    marked incomplete, kept from then on).  Returns the remedies used."""
    remedies, flags = [], []
    for _ in range(4):
        result = run(workdir, config, *flags, check=False)
        if result.returncode == 0:
            return remedies
        if "Directory cannot be locked" in result.stdout:
            assert expect_lock, f"a lock was left behind by a run that was not killed:\n" \
                                f"{result.stdout[-3000:]}"
            assert "--unlock" in result.stdout
            run(workdir, config, "--unlock")
            remedies.append("--unlock")
        elif "IncompleteFilesException" in result.stdout and "--rerun-incomplete" not in flags:
            assert "--rerun-incomplete" in result.stdout
            flags.append("--rerun-incomplete")
            remedies.append("--rerun-incomplete")
        else:
            raise AssertionError(f"the re-run failed:\n{result.stdout[-5000:]}")
    raise AssertionError(f"no success after {remedies}:\n{result.stdout[-5000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("stratum", range(STRATA))
@pytest.mark.parametrize("signame", ["SIGINT", "SIGKILL"])
def test_a_killed_sweep_rerun_gives_the_same_bytes(reference, tmp_path, signame, stratum,
                                                   counts):
    sig = getattr(signal, signame)
    # The last 15% of the run is left out: a slower or faster machine than
    # the reference's might otherwise be signalled after the end.
    span = 0.85 * reference.span
    rng = random.Random(f"shortcutbench-interrupt-{signame}-{stratum}")
    delay = rng.uniform(stratum * span / STRATA, (stratum + 1) * span / STRATA)
    # A machine faster than the reference's may finish before the signal:
    # then the point is moved earlier (half the delay) and the sweep started
    # again in a fresh folder.
    for attempt in range(4):
        workdir = tmp_path / f"work{attempt}"
        sweep = Background(workdir, reference.config)
        try:
            first_job = sweep.wait_for("rule measure:")
            time.sleep(max(0.0, first_job + delay - (time.monotonic() - sweep.started)))
            moment = time.monotonic() - sweep.started
            was_running = sweep.signal_group(sig)
            returncode = sweep.wait(timeout=120)
        finally:
            sweep.kill()
        # Signalled while snakemake was still running, but was any job left?
        # A SIGINT that lands after the last job, as the interpreter shuts
        # down, is ignored ("Exception ignored in ... threading") and the run
        # ends 0, complete: that too is a run that ended before the signal.
        finished = returncode == 0 and "(100%) done" in sweep.output
        if was_running and not finished:
            break
        delay /= 2
    assert was_running and not finished, "every run ended before the signal"
    assert returncode != 0, sweep.output[-3000:]
    running, done = jobs_at(sweep.lines, moment)

    # Right after the kill: whatever sits under a final name is complete --
    # byte-identical to the uninterrupted run's file.
    after_kill = tree(workdir / "results")
    debris = [name for name in after_kill if os.path.basename(name).startswith(".tmp-")]
    for name, data in after_kill.items():
        if name in debris:
            continue
        assert name in reference.results, f"unexpected file results/{name}"
        assert data == reference.results[name], f"results/{name} is not whole after {signame}"
    flagged = marked_incomplete(workdir)

    remedies = rerun_until_done(workdir, reference.config, expect_lock=sig == signal.SIGKILL)
    difference = tree_difference(tree(workdir / "results"), reference.results)
    assert difference == "", f"results/ differs after {signame} and a re-run:\n{difference}"
    assert leftover_temporaries(workdir) == []
    assert (workdir / "report" / "index.html").exists()

    counts.add("interruption", **{f"{signame}_kill_points": 1,
                                  f"{signame}_reruns_byte_identical": 1,
                                  "files_compared_byte_for_byte": len(reference.results)})
    counts.note("interruption", "kill_points", {
        "signal": signame, "seconds_after_first_job": round(moment - first_job, 2),
        "attempts": attempt + 1,
        "running": running, "done": len(done),
        "files_present_after_kill": len(after_kill) - len(debris),
        "temporary_files_after_kill": len(debris),
        "existing_outputs_marked_incomplete": flagged, "remedies": remedies})


def gradients_csv_of(reference, folder):
    """The gradients.csv the reference run's chunks make (rule gradients_csv's
    code), whether or not its default target asked for one."""
    sweep = validate_config(dict(reference.config), str(SCHEMA_PATH))
    chunks = [c for c in plan_chunks(sweep, "/nonexistent") if c.study == ""]
    path = folder / "expected-gradients.csv"
    write_gradients_csv([reference.workdir / "results" / f"{c.name}.parquet" for c in chunks],
                        [c.params() for c in chunks], path)
    return path.read_bytes()


@pytest.mark.slow
def test_snakemake_refuses_a_half_written_output_until_it_is_remade(reference, tmp_path,
                                                                     counts):
    """Layer 2 on its own: a writer that is not atomic is killed half-way
    through results/gradients.csv (here: the gradients_csv job is killed as
    it starts, and the half file is put there by hand, as such a writer
    would leave it).  Snakemake refuses to go on from it, names it, and with
    --rerun-incomplete re-makes it; nothing downstream ever reads it."""
    target = "results/gradients.csv"
    workdir = tmp_path / "work"
    sweep = Background(workdir, reference.config, target)
    try:
        sweep.wait_for("rule gradients_csv:")
        wait_for_mark(workdir, target)
        sweep.signal_group(signal.SIGKILL)
        sweep.wait(timeout=60)
    finally:
        sweep.kill()
    gradients = workdir / target
    whole = gradients_csv_of(reference, tmp_path)
    gradients.write_bytes(whole[: len(whole) // 2])
    assert target in marked_incomplete(workdir)

    run(workdir, reference.config, "--unlock")
    refused = run(workdir, reference.config, target, check=False)
    assert refused.returncode != 0
    assert "IncompleteFilesException" in refused.stdout
    assert target in refused.stdout.split("Incomplete files:")[1]
    assert "--rerun-incomplete" in refused.stdout
    assert gradients.read_bytes() == whole[: len(whole) // 2]  # left as it was, unused

    run(workdir, reference.config, "--rerun-incomplete", target)
    assert gradients.read_bytes() == whole
    # every chunk as the uninterrupted run measured it, none twice
    chunks = {name: data for name, data in tree(workdir / "results").items()
              if name.startswith("cells/")}
    assert chunks == {name: data for name, data in reference.results.items()
                      if name.startswith("cells/")}
    counts.add("interruption", half_written_outputs_refused_by_snakemake=1)


# ------------------------------------------------------------ atomic writes, in one process

WRITER = """
import sys, time
from shortcutbench.core.files import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write("new," * 100000)
    f.flush()
    print("half-way", flush=True)
    time.sleep(60)
"""


def kill_writer_half_way(path, sig):
    """A process writing `path` with atomic_write, killed by `sig` half-way."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "half-way"
        writer.send_signal(sig)
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)
    return writer.returncode


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("existed", [False, True], ids=["new file", "replacing a file"])
def test_a_write_killed_half_way_leaves_the_old_file_or_none(tmp_path, signame, existed,
                                                              counts):
    path = tmp_path / "chunk.csv"
    if existed:
        path.write_text("old\n")
    returncode = kill_writer_half_way(path, getattr(signal, signame))
    assert returncode != 0
    if existed:
        assert path.read_text() == "old\n"
    else:
        assert not path.exists()
    if signame == "SIGINT":  # KeyboardInterrupt: the writer cleans up itself
        assert leftover_temporaries(tmp_path) == []
    # The next write of the same file is whole, and leaves no debris behind.
    with atomic_write(path) as f:
        f.write("whole\n")
    assert path.read_text() == "whole\n"
    assert leftover_temporaries(tmp_path) == []
    counts.add("interruption", atomic_writes_killed_half_way=1)


def test_a_write_does_not_remove_temporaries_of_other_files(tmp_path):
    """The clean-up is exact: only NAME's own temporaries (.tmp-NAME-XXXXXXXX)."""
    others = [tmp_path / ".tmp-chunk.csv-older-abc12345", tmp_path / ".tmp-chunk.csv2-abc12345",
              tmp_path / ".tmp-other.csv-abc12345"]
    for other in others:
        other.write_text("x")
    with atomic_write(tmp_path / "chunk.csv") as f:
        f.write("whole\n")
    assert all(other.exists() for other in others)


def test_an_atomic_write_gets_the_mode_open_gives(tmp_path):
    """mkstemp's 0600 would make results and the report private to one user."""
    with atomic_write(tmp_path / "atomic.csv") as f:
        f.write("x\n")
    (tmp_path / "plain.csv").write_text("x\n")
    assert (tmp_path / "atomic.csv").stat().st_mode == (tmp_path / "plain.csv").stat().st_mode


# A chunk's Parquet file, its write stopped half-way: the store writes the
# whole file's bytes through atomic_write, held here after half of them.
PARQUET_WRITER = """
import contextlib, sys, time
from shortcutbench.core import store
from shortcutbench.core.records import COLUMNS, Cell, record_fields

class HalfThenWait:
    def __init__(self, f):
        self.f = f
    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        print("half-way", flush=True)
        time.sleep(60)

real = store.atomic_write
@contextlib.contextmanager
def held(path, mode="w", **kwargs):
    with real(path, mode, **kwargs) as f:
        yield HalfThenWait(f)
store.atomic_write = held
cell = record_fields(Cell(depth=2, width=3, seed=int(sys.argv[2]), shortcut=True))
records = [{**cell, "layer": i, "param": f"layers.{i}.0.weight", "tied": "", "ndim": 2,
            "numel": 9, "grad_abs_mean": 0.5, "grad_l2": 1.0, "grad_zero_share": 0.0,
            "bias_grad_abs_mean": 0.25, "output_rms": 2.0,
            "grad_stream_cos": 0.0, "loss": 1.5, "output": -0.5, "token_cosine": float("nan"),
            "finite": True}
           for i in range(2)]
store.write_records(records, sys.argv[1])
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("existed", [False, True], ids=["new chunk", "replacing a chunk"])
def test_a_chunk_write_killed_half_way_leaves_the_old_chunk_or_none(tmp_path, signame, existed,
                                                                   counts):
    path = tmp_path / "seeds~1.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def writer(seed, sig=None):
        proc = subprocess.Popen([sys.executable, "-c", PARQUET_WRITER, str(path), str(seed)],
                                env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "half-way"
            proc.send_signal(sig or signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        return proc.returncode

    if existed:  # a whole chunk, written by the store without interruption
        old = subprocess.run([sys.executable, "-c", PARQUET_WRITER.replace(
            "store.atomic_write = held", ""), str(path), "7"], env=env, check=True)
        assert old.returncode == 0
        before = path.read_bytes()
    assert writer(1, getattr(signal, signame)) != 0
    if existed:
        assert path.read_bytes() == before
        assert read_records(path).column("seed").to_pylist() == [7, 7]
    else:
        assert not path.exists()
    debris = leftover_temporaries(tmp_path)
    assert debris == [] if signame == "SIGINT" else len(debris) <= 1
    counts.add("interruption", chunk_writes_killed_half_way=1)
