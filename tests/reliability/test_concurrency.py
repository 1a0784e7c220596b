"""Concurrency: a second `snakemake` started in the same directory while a
first one runs is refused with Snakemake's lock message, and the first run's
results are unharmed.

Snakemake locks the files a run will read and write (.snakemake/locks/)
once its DAG is built; a second run whose files overlap is refused before it
starts any job.  To make "while the first one runs" certain on a loaded
machine, the first run is paused with SIGSTOP (its jobs too: the whole
process group) while the second is tried, then resumed with SIGCONT.
"""

import signal

import pytest

from .helpers import Background, run, tree, tree_difference

LOCK_MESSAGE = "Directory cannot be locked"


def second_runs(config):
    """Second runs a person might start: the same command, and a bigger
    sweep asking for one table (each overlaps the first run's files)."""
    return {
        "the same command": (config, ()),
        "a bigger sweep, one target": ({**config, "seeds": config["seeds"] + [5]},
                                       ("results/summary.csv",)),
    }


@pytest.mark.slow
def test_a_second_snakemake_is_refused_and_the_first_finishes_unharmed(reference, tmp_path,
                                                                      counts):
    workdir = tmp_path / "work"
    first = Background(workdir, reference.config)
    try:
        first.wait_for("rule measure:")  # the DAG is built and the lock taken
        refusals = {}
        for name, (config, targets) in second_runs(reference.config).items():
            first.signal_group(signal.SIGSTOP)
            try:
                second = run(workdir, config, *targets, check=False, timeout=120)
            finally:
                first.signal_group(signal.SIGCONT)
            assert first.proc.poll() is None, "the first run ended before the second was tried"
            refusals[name] = second
        returncode = first.wait(timeout=300)
    finally:
        first.kill()

    for name, second in refusals.items():
        assert second.returncode != 0, f"{name}: the second run was not refused:\n" \
                                       f"{second.stdout[-3000:]}"
        assert LOCK_MESSAGE in second.stdout, second.stdout[-3000:]
        assert str(workdir) in second.stdout  # it names the directory
        assert "Traceback" not in second.stdout
        counts.add("concurrency", second_runs_tried=1, second_runs_refused_with_lock_message=1)

    assert returncode == 0, first.output[-5000:]
    assert LOCK_MESSAGE not in first.output
    difference = tree_difference(tree(workdir / "results"), reference.results)
    assert difference == "", f"the first run's results were harmed:\n{difference}"
    counts.add("concurrency", first_runs_unharmed=1)
