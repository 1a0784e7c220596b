"""Resources: a read-only or full output directory gives a clear error -- one
line naming the path and the problem, not a traceback -- and leaves no
half-written file in results/.

How the faults are made on a machine where the tests run as root (and root
ignores permission bits):

* read-only, the common case (a folder one may not write): chmod 555, and
  snakemake run as root *without* CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
  (setpriv --bounding-set), so that the permission bits count -- the files
  it needs are root's own, so nothing else changes.  Without root: chmod.
* read-only file system: a read-only bind mount of the folder over itself;
* full disk: a 200 KiB tmpfs mounted on results/, grown afterwards.

Mounting needs root with CAP_SYS_ADMIN; where it is refused, those tests are
skipped with the reason.
"""

import contextlib
import os
import re
import shutil
import subprocess

import pytest

from .helpers import REPLACE, command, environment, leftover_temporaries, run, tree, tree_difference

TRACEBACK = "Traceback (most recent call last)"
# Small enough that the merged table no longer fits beside the chunks.
FULL_SIZE = "200k"


def _mount(*args):
    return subprocess.run(["mount", *map(str, args)], capture_output=True, text=True,
                          timeout=30)


def _umount(path):
    subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30,
                   check=True)


# Root without the capabilities that let it ignore permission bits.
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def run_unprivileged(workdir, config, *args, timeout=300):
    """snakemake as tests/conftest.py runs it, but with permission bits
    enforced (see the module docstring)."""
    argv = command(workdir, config, REPLACE, *args)
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, and no setpriv to drop CAP_DAC_OVERRIDE: root ignores chmod")
        argv = NO_DAC_OVERRIDE + argv
    return subprocess.run(argv, cwd=workdir, env=environment(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


@contextlib.contextmanager
def not_writable(path):
    """chmod 555 `path` and the folders below it, restored afterwards."""
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        yield "Permission denied"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@contextlib.contextmanager
def read_only_file_system(path):
    """`path` (a folder) bind-mounted read-only over itself."""
    if os.geteuid() != 0:
        pytest.skip("a read-only file system is made with a bind mount, which needs root")
    bound = _mount("--bind", path, path)
    if bound.returncode != 0:
        pytest.skip(f"root, but cannot bind-mount here ({bound.stderr.strip()}); a read-only "
                    f"folder cannot be made for root any other way")
    try:
        remounted = _mount("-o", "remount,bind,ro", path)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
        assert _cannot_write(path)
        yield "Read-only file system"
    finally:
        _umount(path)


def _cannot_write(path):
    try:
        (path / ".probe").write_text("x")
    except OSError:
        return True
    (path / ".probe").unlink()
    return False


@contextlib.contextmanager
def small_disk(path, size):
    """A tmpfs of `size` mounted on `path`; yields a function that grows it."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, which needs root (mount)")
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", path)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield lambda bigger: _mount("-o", f"remount,size={bigger}", path).check_returncode()
    finally:
        _umount(path)


def assert_clear_error(result, problem, traceback_allowed=False):
    """Failed, with a line naming a path under results/ and the problem, and
    no Python traceback in what the person running snakemake sees.  Returns
    the paths named."""
    assert result.returncode != 0, result.stdout[-3000:]
    named = re.findall(rf"{re.escape(problem)}: '([^']+)'", result.stdout)
    assert named, f"no line names a path with {problem!r}:\n{result.stdout[-4000:]}"
    assert all(path.startswith("results") for path in named), named
    if not traceback_allowed:
        assert TRACEBACK not in result.stdout, result.stdout[-4000:]
    return named


@pytest.mark.slow
def test_a_read_only_results_folder_stops_the_first_job_clearly(reference, tmp_path, counts):
    """Snakemake meets it first, creating the first job's output folder."""
    workdir = tmp_path / "work"
    (workdir / "results").mkdir(parents=True)
    with read_only_file_system(workdir / "results") as problem:
        result = run(workdir, reference.config, check=False)
        named = assert_clear_error(result, problem)
        assert "Failed to create output directory" in result.stdout
        assert tree(workdir / "results") == {}
    counts.add("resources", read_only_runs=1, read_only_clear_errors=1)
    counts.note("resources", "messages", f"{problem}: {named[0]}")


def grow_with_read_only_chunk_folder(reference, tmp_path, make_read_only, runner):
    """A finished run whose chunk folder is read-only grows by a seed: the
    folder exists, so the new chunk's measuring job meets the fault."""
    workdir = tmp_path / "work"
    shutil.copytree(reference.workdir, workdir, symlinks=True)
    chunk = next(name for name in reference.results if name.startswith("cells/"))
    folder = workdir / "results" / os.path.dirname(chunk)
    grown = {**reference.config, "seeds": reference.config["seeds"] + [5]}
    with make_read_only(folder) as problem:
        result = runner(workdir, grown)
    return workdir, problem, result


@pytest.mark.slow
def test_a_chunk_folder_one_may_not_write_stops_a_growing_sweep_clearly(reference, tmp_path,
                                                                      counts):
    workdir, problem, result = grow_with_read_only_chunk_folder(
        reference, tmp_path, not_writable, run_unprivileged)
    named = assert_clear_error(result, problem)
    assert any(path.endswith("seeds~5.parquet") for path in named), named
    # Our one-line summary, pointing at the log that holds the traceback.
    assert re.search(r"^error: PermissionError: .*seeds~5\.parquet'"
                     r" \(full traceback in logs/measure/\S+\.log\)$", result.stdout, re.M), \
        result.stdout[-3000:]
    # The finished run's results are as they were, with no debris.
    assert tree_difference(tree(workdir / "results"), reference.results) == ""
    counts.add("resources", read_only_runs=1, read_only_clear_errors=1)
    counts.note("resources", "messages", f"{problem}: {named[0]}")


SNAKEMAKE_EROFS = (
    "Snakemake 9.27.1 removes a job's outputs before it runs (jobs.py "
    "remove_existing_output -> io.remove), catching only FileNotFoundError; on a read-only "
    "file system os.remove of a missing file raises EROFS, and Snakemake ends with its own "
    "traceback (whose last line names the file and the problem)")


@pytest.mark.slow
def test_a_chunk_folder_on_a_read_only_file_system_stops_a_growing_sweep(reference, tmp_path,
                                                                        counts):
    workdir, problem, result = grow_with_read_only_chunk_folder(
        reference, tmp_path, read_only_file_system,
        lambda workdir, config: run(workdir, config, check=False))
    counts.add("resources", read_only_runs=1)
    assert tree_difference(tree(workdir / "results"), reference.results) == ""
    named = assert_clear_error(result, problem, traceback_allowed=True)
    assert any(path.endswith("seeds~5.parquet") for path in named), named
    if TRACEBACK in result.stdout and "snakemake/io/__init__.py" in result.stdout:
        counts.add("resources", read_only_snakemake_tracebacks=1)
        pytest.xfail(SNAKEMAKE_EROFS)
    assert TRACEBACK not in result.stdout, result.stdout[-4000:]
    counts.add("resources", read_only_clear_errors=1)


@pytest.mark.slow
def test_a_full_disk_stops_clearly_leaves_no_half_file_and_recovers(reference, tmp_path,
                                                                    counts):
    workdir = tmp_path / "work"
    results = workdir / "results"
    results.mkdir(parents=True)
    with small_disk(results, FULL_SIZE) as grow:
        result = run(workdir, reference.config, check=False)
        named = assert_clear_error(result, "No space left on device")
        # Whatever is there is whole: the reference's bytes, no temporaries.
        after = tree(results)
        assert leftover_temporaries(results) == []
        for name, data in after.items():
            assert data == reference.results.get(name), f"results/{name} is not whole"
        assert len(after) < len(reference.results)
        # Space freed (the tmpfs grown): the same command finishes the sweep.
        grow("64m")
        run(workdir, reference.config)
        assert tree_difference(tree(results), reference.results) == ""
    counts.add("resources", full_disk_runs=1, full_disk_clear_errors=1,
               full_disk_recoveries_byte_identical=1)
    counts.note("resources", "messages", f"No space left on device: {named[0]}")
