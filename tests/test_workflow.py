"""The real workflow, end to end, in scratch directories."""

import csv
import os
import re
import subprocess

import pytest
import yaml
from conftest import BIN, REPO, SMALL_CONFIG, snakemake

from shortcutbench.core.book import BOOK_CASE, BOOK_GRADIENTS, RTOL
from shortcutbench.core.sweep import pack_name

pytestmark = pytest.mark.slow


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def measured_chunks(output):
    """The chunk names of the measure jobs snakemake ran, from its output."""
    return sorted(set(re.findall(r"output: results/cells/(\S+?)\.parquet", output)))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """SMALL_CONFIG's whole sweep (the default target) and gradients.csv;
    several tests read it, none changes it."""
    workdir = tmp_path_factory.mktemp("small")
    result = snakemake(workdir, SMALL_CONFIG, "all", "results/gradients.csv")
    return workdir, result


@pytest.mark.parametrize("shortcut", [False, True])
def test_the_books_case_through_the_workflow(small_run, shortcut):
    workdir, _ = small_run
    rows = [r for r in read_rows(workdir / "results" / "gradients.csv")
            if all(r[k] == str(v) for k, v in BOOK_CASE.items())
            and r["shortcut"] == str(shortcut)]
    rows.sort(key=lambda r: int(r["layer"]))
    assert [r["param"] for r in rows] == [f"layers.{i}.0.weight" for i in range(5)]
    assert [float(r["grad_abs_mean"]) for r in rows] == pytest.approx(
        BOOK_GRADIENTS[shortcut], rel=RTOL)


def test_gradients_table_is_tidy_and_complete(small_run):
    workdir, _ = small_run
    rows = read_rows(workdir / "results" / "gradients.csv")
    required = {"depth", "width", "seed", "shortcut", "device", "activation", "layer",
                "param", "grad_abs_mean"}
    assert required <= set(rows[0])
    cells = {(r["depth"], r["seed"], r["shortcut"]) for r in rows}
    assert len(cells) == 3 * 2 * 2
    assert len(rows) == sum(int(d) for d, _, _ in cells)


def test_summary_has_a_ci_over_seeds(small_run):
    workdir, _ = small_run
    rows = read_rows(workdir / "results" / "summary.csv")
    assert len(rows) == 2 * (1 + 5 + 12)
    for r in rows:
        assert r["n"] == "2"
        assert float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"])


def test_short_training_groups_run_as_one_job(small_run):
    workdir, _ = small_run
    jobs = sorted((workdir / "results" / "training").rglob("*.csv"))
    assert [job.name for job in jobs] == [f"{pack_name(GROUPS)}.csv"], jobs
    rows = read_rows(workdir / "results" / "training.csv")
    assert {(r["depth"], r["shortcut"]) for r in rows} == {
        (d, s) for d in ("2", "3") for s in ("False", "True")}


GROUPS = [f"activation~gelu_tanh/width~3/norm~none/depth~{d}" for d in (2, 3)]


def test_two_runs_give_the_same_bytes(small_run, tmp_path):
    """Same config, same machine: every file under results/ the same bytes
    (records, partial results, tables, findings, figures), the report aside
    (its provenance says when and how long)."""
    runs = [small_run[0], tmp_path / "two"]
    snakemake(runs[1], SMALL_CONFIG, "all", "results/gradients.csv")

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}

    one, two = (files(workdir / "results") for workdir in runs)
    assert sorted(one) == sorted(two) and len(one) >= 20
    assert [name for name in one if one[name] != two[name]] == []


def test_every_rule_logs_and_benchmarks(small_run):
    workdir, _ = small_run
    assert list((workdir / "logs" / "measure").rglob("*.log"))
    assert list((workdir / "logs" / "benchmark" / "measure").rglob("*.tsv"))
    assert (workdir / "logs" / "merge.log").exists()
    assert (workdir / "logs" / "gradients_csv.log").exists()


def test_runs_from_anywhere_and_writes_only_under_its_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    workdir = tmp_path / "work"
    before = repo_files()
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--cores", "2", "results/gradients.csv",
               "--configfile", str(elsewhere / "c.yaml")]
    (elsewhere / "c.yaml").write_text(yaml.safe_dump({**SMALL_CONFIG, "depths": [2]}))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(command, cwd=elsewhere, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["c.yaml"]
    assert (workdir / "results" / "gradients.csv").exists()
    after = repo_files()
    assert [p for p in after if after[p] != before.get(p)] == []


# What the test run itself writes in the checkout while other tests run beside
# it (the browser tests' tests/output, caches); a directory's own time is
# left out for the same reason: their files appearing change it.
TEST_ARTIFACTS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "node_modules"}


def repo_files():
    """{file: its mtime} of the checkout's files, test artifacts left out."""
    return {p: p.stat().st_mtime_ns for p in REPO.rglob("*")
            if not TEST_ARTIFACTS & set(p.parts) and (REPO / "tests" / "output") not in p.parents
            and p.is_file()}


def test_adding_a_seed_measures_only_the_new_cells(tmp_path):
    config = {**SMALL_CONFIG, "seeds": [1, 2]}
    first = snakemake(tmp_path, config, "results/gradients.csv")
    assert measured_chunks(first.stdout) == [
        "device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~1-2"]
    grown = snakemake(tmp_path, {**config, "seeds": [1, 2, 3]}, "results/gradients.csv")
    assert measured_chunks(grown.stdout) == [
        "device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~3"]
    fresh = tmp_path / "fresh"
    snakemake(fresh, {**config, "seeds": [1, 2, 3]}, "results/gradients.csv")
    assert (fresh / "results" / "gradients.csv").read_bytes() == \
        (tmp_path / "results" / "gradients.csv").read_bytes()
    again = snakemake(tmp_path, {**config, "seeds": [1, 2, 3]}, "results/gradients.csv")
    assert "Nothing to be done" in again.stdout


def job_priorities(dry_run):
    """{(rule, its first output): priority} of every job a dry run lists
    (Snakemake prints a job's priority only where it is not 0)."""
    jobs = re.findall(r"^\s*(?:local)?rule (\w+):((?:\n\s+\w+: .*)*)", dry_run, re.M)
    priorities = {}
    for rule, lines in jobs:
        output = re.search(r"output: ([^,\s]+)", lines)
        priority = re.search(r"priority: (\d+)", lines)
        if output:
            priorities[rule, output[1]] = int(priority[1]) if priority else 0
    return priorities


def test_the_main_sweep_and_the_training_start_before_the_studies(tmp_path):
    config = {**SMALL_CONFIG, "studies": {"init": {"inits": ["pytorch", "xavier_uniform"]}}}
    priorities = job_priorities(snakemake(tmp_path, config, "-n").stdout)
    by_rule = {}
    for (rule, output), priority in priorities.items():
        kind = "study" if output.startswith("results/studies/") else "main"
        by_rule.setdefault((rule, kind), set()).add(priority)
    assert by_rule[("measure", "main")] == {1}
    assert by_rule[("train", "main")] == {1}
    assert by_rule[("measure", "study")] == {0}
    # the rest, the report's chain included, keep Snakemake's default
    assert {p for key, ps in by_rule.items() if key[0] not in ("measure", "train")
            for p in ps} == {0}


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, SMALL_CONFIG, "--lint", check=False)
    assert result.returncode == 0, result.stdout
