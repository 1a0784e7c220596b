"""Where, when and with what the report's numbers were made.

Read at report time from the measuring jobs' machine files
(logs/measure/<chunk>.machine.json: the machine, and the version of every
library the job imported), Snakemake's benchmark files
(logs/benchmark/**/*.tsv), git and the installed packages.  None of this is
deterministic (times, hosts, git state), so it goes only into report/, never
into results/.  No torch: its version is read from the package metadata.
"""

import csv
import datetime
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys

from shortcutbench.core.families import top_level_family
from shortcutbench.core.files import write_json
from shortcutbench.core.host import cpu_name

PACKAGES = ("torch", "snakemake", "pandas", "numpy", "scipy", "seaborn", "matplotlib", "jinja2")


def package_versions(packages=PACKAGES):
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def canonical(name):
    """A distribution's name as pip compares them: 'PyYAML' ~ 'pyyaml',
    'typing_extensions' ~ 'typing-extensions'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def job_packages(facts):
    """Every distribution the measuring jobs imported (their machine files'
    `packages`: a family's transformers or timm beside torch), with the
    versions they found and the families whose jobs imported it, by name."""
    found = {}
    for fact in facts:
        chunk = fact.get("chunk")
        model = chunk.get("model", top_level_family()) if isinstance(chunk, dict) else None
        for name, version in (fact.get("packages") or {}).items():
            entry = found.setdefault(canonical(name), {"name": name, "versions": set(),
                                                       "families": set()})
            entry["versions"].add(version)
            if model:
                entry["families"].add(model)
    return [{**e, "versions": sorted(e["versions"]), "families": sorted(e["families"])}
            for _, e in sorted(found.items())]



def config_hash(config):
    """sha256 of the config as run (validated, defaults filled), canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git(repo, *args):
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo):
    """The checkout's commit and whether it differs from it."""
    if _git(repo, "rev-parse", "--is-inside-work-tree") != "true":
        return {"commit": None, "dirty": None, "untracked": None,
                "note": "not a git checkout"}
    commit = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD")
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no")
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard")
    state = {"commit": commit or None,
             "dirty": bool(changed) if changed is not None else None,
             "untracked": len(untracked.splitlines()) if untracked else 0,
             "note": None if commit else "no commit yet"}
    if commit:
        state["subject"] = _git(repo, "log", "-1", "--format=%s")
    return state


def _iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(
        timespec="seconds")


def machine_files(logs_dir, chunks):
    """The measuring jobs' machine facts, one per chunk of this sweep."""
    found = []
    for chunk in chunks:
        path = os.path.join(logs_dir, "measure", f"{chunk}.machine.json")
        try:
            with open(path) as f:
                found.append({"chunk": chunk, **json.load(f)})
        except (OSError, ValueError):
            found.append({"chunk": chunk, "missing": True})
    return found


def machines(facts):
    """Distinct (host, os, cpu, gpu, python, torch) of the measuring jobs."""
    seen = {}
    for fact in facts:
        if fact.get("missing"):
            continue
        key = tuple(fact.get(k) for k in ("host", "os", "cpu", "gpu", "python", "torch",
                                          "torch_threads"))
        entry = seen.setdefault(key, {"host": key[0], "os": key[1], "cpu": key[2],
                                      "gpu": key[3], "python": key[4], "torch": key[5],
                                      "torch_threads": key[6], "devices": set(), "jobs": 0,
                                      "cells": 0})
        entry["devices"].add(fact.get("device"))
        entry["jobs"] += 1
        entry["cells"] += int(fact.get("cells") or 0)
    return [{**e, "devices": sorted(d for d in e["devices"] if d)} for e in seen.values()]


def engines(facts):
    """How the cells were measured: per family and engine path (the log's
    `engine: ...`, a measuring job's machine file), its jobs and cells."""
    top = top_level_family()
    seen = {}
    for fact in facts:
        if fact.get("missing"):
            continue
        # the machine file's chunk params (an older file: the chunk's name)
        chunk = fact.get("chunk")
        model = chunk.get("model", top) if isinstance(chunk, dict) else top
        key = (model, fact.get("engine") or "exact")
        entry = seen.setdefault(key, {"family": key[0], "engine": key[1], "jobs": 0,
                                      "cells": 0})
        entry["jobs"] += 1
        entry["cells"] += int(fact.get("cells") or 0)
    return [seen[key] for key in sorted(seen)]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def benchmarks(logs_dir, chunks, skip=("report",), training=None, rules=None):
    """Per job: wall time, peak memory and CPU time from Snakemake's
    benchmark: files, in the order of `rules` (the workflow's, as it
    defines them), else by name.  Measuring jobs of chunks not in this sweep,
    where `training` names this config's training jobs those not among
    them, and where `rules` names the workflow's rules the files of others
    (left over from an earlier config or version) are counted as stale and
    left out, as are the rules in `skip` (the report's own file is from its
    previous run)."""
    root = os.path.join(logs_dir, "benchmark")
    wanted = {"measure": set(chunks)}
    if training is not None:
        wanted["train"] = set(training)
    jobs, stale = [], 0
    for path in sorted(glob.glob(os.path.join(root, "**", "*.tsv"), recursive=True)):
        name = os.path.relpath(path, root)[:-len(".tsv")].replace(os.sep, "/")
        rule, _, job = name.partition("/")
        if rule in skip:
            continue
        if (rule in wanted and job not in wanted[rule]) or \
                (rules is not None and rule not in rules):
            stale += 1
            continue
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
        except OSError:
            continue
        if not rows:
            continue
        row = rows[-1]
        jobs.append({"rule": rule, "job": job or rule, "s": _number(row.get("s")),
                     "max_rss_mb": _number(row.get("max_rss")),
                     "cpu_time": _number(row.get("cpu_time")),
                     "mean_load": _number(row.get("mean_load")),
                     "finished": _iso(os.path.getmtime(path))})
    order = {rule: i for i, rule in enumerate(rules or ())}
    jobs.sort(key=lambda j: (order.get(j["rule"], len(order)), j["job"]))
    return jobs, stale


def gather(config, devices, chunks, logs_dir, repo, now=None, all_chunks=None,
           training_jobs=None, rules=None):
    """Everything the report's provenance section shows, as JSON-able data.

    config: the config as run; devices: its devices with 'auto' expanded;
    chunks: the names (sweep.Chunk.name) of the measuring jobs behind the
    report's numbers; all_chunks: every measuring job of the config (studies
    too), for the job table (default: chunks); training_jobs: the config's
    training jobs' names (None: every training job's file is shown); rules:
    the workflow's rules in the order it defines them (None: every rule's
    files, by name).
    """
    facts = machine_files(logs_dir, chunks)
    started = [f["started"] for f in facts if isinstance(f.get("started"), (int, float))]
    jobs, stale = benchmarks(logs_dir, chunks if all_chunks is None else all_chunks,
                             training=training_jobs, rules=rules)
    gpus = sorted({f["gpu"] for f in facts if f.get("gpu")})
    now = datetime.datetime.now(datetime.UTC) if now is None else now
    imported = job_packages(facts)
    # The core packages, then every other library a measuring job imported.
    core = {canonical(name) for name in PACKAGES}
    extra = tuple(p["name"] for p in imported if canonical(p["name"]) not in core)
    return {
        "versions": package_versions(PACKAGES + extra),
        "job_packages": imported,
        "report_host": {"host": platform.node(), "os": platform.platform(), "cpu": cpu_name(),
                        "python_executable": sys.executable},
        "machines": machines(facts),
        "engines": engines(facts),
        "gpus": gpus,
        "missing_machine_files": [f["chunk"] for f in facts if f.get("missing")],
        "git": git_state(repo),
        "config": config,
        "sweep_devices": list(devices),
        "config_hash": config_hash(config),
        "started": _iso(min(started)) if started else None,
        "measure_seconds": round(sum(f.get("seconds") or 0 for f in facts), 3),
        "built": now.isoformat(timespec="seconds"),
        "jobs": jobs,
        "stale_benchmarks": stale,
        "job_seconds": round(sum(j["s"] or 0 for j in jobs), 2),
        "max_rss_mb": max((j["max_rss_mb"] or 0 for j in jobs), default=None),
    }


def write(provenance, path):
    write_json(provenance, path)
