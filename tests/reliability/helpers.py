"""Shared by the reliability tests: the real snakemake, run in the
background when a test must signal it, and byte-for-byte tree snapshots.

Named helpers.py (not conftest.py) so that `from conftest import ...` in the
test modules keeps meaning tests/conftest.py.
"""

import contextlib
import copy
import fcntl
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import REPO, SMALL_CONFIG, snakemake, snakemake_command, snakemake_environment

from shortcutbench.core.config import load_schema

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
COUNTS_PATH = REPO / "tests" / "output" / "reliability-counts.json"

# Every config a test passes to snakemake replaces config/config.yaml instead
# of being merged over it: the default studies and training runs would
# otherwise come along and cost minutes.
REPLACE = "--replace-workflow-config"


def schema():
    return load_schema(SCHEMA_PATH)


def workflow_config(**overrides):
    """A small, complete config for real runs: tests/conftest.py's
    SMALL_CONFIG, without the optional extras the schema may offer
    (training runs, studies), with `overrides` on top."""
    config = copy.deepcopy(SMALL_CONFIG)
    properties = schema()["properties"]
    if "enabled" in properties.get("training", {}).get("properties", {}):
        config["training"] = {"enabled": False}
    if "studies" in properties:
        config["studies"] = {}
    config.update(copy.deepcopy(overrides))
    return config


# The argv and environment of tests/conftest.py's snakemake().
command = snakemake_command
environment = snakemake_environment


def run(workdir, config, *args, timeout=300, check=True):
    """The real snakemake, to the end (tests/conftest.py's helper); the
    config replaces the workflow's default config."""
    return snakemake(workdir, config, REPLACE, *args, timeout=timeout, check=check)


class Background:
    """snakemake in its own process group (as a shell runs a command), its
    merged output read line by line with the time each line arrived."""

    def __init__(self, workdir, config, *args, env=None, preexec_fn=None):
        self.argv = command(workdir, config, REPLACE, *args)
        self.lines = []  # (seconds since start, line)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=workdir, env=env or environment(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True,
                                     preexec_fn=preexec_fn)
        self.pgid = self.proc.pid  # start_new_session: the leader's pid
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append((time.monotonic() - self.started, line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self):
        return "".join(line for _, line in self.lines)

    def wait_for(self, text, timeout=120):
        """Seconds since start at which `text` first appeared in the output;
        fails if the process ends or the time runs out first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for when, line in self.lines[seen:]:
                    if text in line:
                        return when
                seen = len(self.lines)
                if not self._reader.is_alive():
                    raise AssertionError(f"snakemake ended before printing {text!r}:\n"
                                         f"{self.output[-4000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output[-4000:]}")
                self._changed.wait(min(left, 0.5))

    def signal_group(self, sig):
        """Send `sig` to snakemake and every job it started (the whole group,
        as Ctrl-C in a terminal or a batch system's kill does).  Returns
        whether snakemake was still running when it was sent."""
        running = self.proc.poll() is None
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:  # ended, and every job with it
            return False
        return running

    def wait(self, timeout=300):
        """Wait for snakemake and for every process of its group to end."""
        try:
            self.proc.wait(timeout)
        finally:
            self._reader.join(timeout)
        wait_group_gone(self.pgid, timeout)
        return self.proc.returncode

    def kill(self):
        """Clean-up for a test that failed half-way."""
        if self.proc.poll() is None or group_alive(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(30)
            wait_group_gone(self.pgid, 30)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pgid, timeout=60):
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of group {pgid} still running after {timeout} s")
        time.sleep(0.05)


def tree(root):
    """{path relative to root: bytes} for every file below root, hidden ones too."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def tree_difference(got, expected):
    """A readable account of how two tree() snapshots differ ('' if equal)."""
    lines = []
    for name in sorted(set(expected) - set(got)):
        lines.append(f"missing:   {name}")
    for name in sorted(set(got) - set(expected)):
        lines.append(f"extra:     {name} ({len(got[name])} bytes)")
    for name in sorted(set(got) & set(expected)):
        if got[name] != expected[name]:
            lines.append(f"different: {name} ({len(got[name])} bytes, expected "
                         f"{len(expected[name])})")
    return "\n".join(lines)


def leftover_temporaries(root):
    """atomic_write's temporary files (.tmp-NAME-XXXX) below root."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob(".tmp-*")) if root.exists() else []


class Counts:
    """What the reliability tests tried and how it went, by section; written
    to tests/output/reliability-counts.json for the README's table."""

    def __init__(self):
        self.sections = {}

    def add(self, section, **numbers):
        entry = self.sections.setdefault(section, {})
        for key, value in numbers.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                entry[key] = entry.get(key, 0) + value
            else:
                entry[key] = value

    def note(self, section, key, value):
        """Append `value` to the list `key` of `section` (details, e.g. kill points)."""
        self.sections.setdefault(section, {}).setdefault(key, []).append(value)

    def write(self, path=COUNTS_PATH):
        if not self.sections:
            return
        from shortcutbench.core.files import atomic_write

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # pytest-xdist's workers each write their own sections, perhaps at
        # once: one read-merge-write at a time, or one loses the other's.
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                previous = json.loads(path.read_text())
            except (OSError, ValueError):
                previous = {}
            data = previous.get("sections", {})
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for section, numbers in self.sections.items():
                data[section] = {**numbers, "when": stamp}
            with atomic_write(path) as f:
                json.dump({"about": "counts from the last run of tests/reliability; "
                                    "each section is replaced when its tests run",
                           "sections": data}, f, indent=1, sort_keys=True)
                f.write("\n")
