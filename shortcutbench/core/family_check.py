"""Checking a family of the user's own before any job runs, in a process of
its own: the workflow's process never imports torch or the user's code
(measuring/user_family.py's `check` does the work)."""

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

from shortcutbench.core.families import SHIPPED, sections
from shortcutbench.core.files import read_json, sha256_of, write_json

CHECK_SECONDS = 600  # a factory that takes longer to build and run its cells is stuck


def module_sha256(factory: str, workdir: str) -> str | None:
    """The sha256 of the source file of a factory's module ('module:function',
    found as the measuring job imports it: the run's directory first), or
    None if there is none.  Found without importing anything: it runs in
    every Snakemake process, where the user's code and torch must not load."""
    from importlib.machinery import PathFinder

    path = [os.path.abspath(workdir), *sys.path]
    spec = None
    for part in factory.partition(":")[0].split("."):
        spec = PathFinder.find_spec(part, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations or []
    if not spec.has_location or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return sha256_of(spec.origin)


def family_source(section: dict[str, Any], workdir: str) -> str | None:
    """What a user family's cells are made from beyond its section: its
    module's sha256, or the version of the library that builds it
    ("transformers==5.23.0"); None where the module is not found.  Read
    without importing anything."""
    from importlib.metadata import PackageNotFoundError, version

    if "factory" in section:
        return module_sha256(section["factory"], workdir)
    library = next(key for key in ("transformers", "timm") if key in section)
    try:
        return f"{library}=={version(library)}"
    except PackageNotFoundError:
        return f"{library} (not installed)"


def _own_code() -> str:
    """The sha256 of the package's core and measuring code, which the check
    runs (the contract's runner, the specs, the records)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for part in ("core", "measuring"):
        folder = os.path.join(package, part)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def _passed_check(name, section, workdir):
    """Where a check that passed is kept, so that every snakemake command
    (-n, --report, a cluster's login node) does not build the model again;
    named by everything the check depends on (the section, the module's
    source, shortcutbench's code that runs it, the Python and its torch);
    None when the module is not found."""
    from importlib.metadata import PackageNotFoundError, version

    source = family_source(section, workdir)
    if source is None:
        return None
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = None
    key = json.dumps([name, section, source, sys.executable, torch_version, _own_code()],
                     sort_keys=True)
    return os.path.join(workdir, ".snakemake", "shortcutbench", "family_checks",
                        hashlib.sha256(key.encode()).hexdigest() + ".json")


def check_user_families(config: dict[str, Any], workdir: str) -> dict[str, dict[str, Any]]:
    """Check every user family `models` lists; returns {name: what its check
    measured}; raises ValueError('families.NAME...: what is wrong and the
    fix').  A check that passed is not run again until what it depends on
    changes."""
    facts = {}
    for name, section in sections(config).items():
        if name in SHIPPED:
            continue
        kept = _passed_check(name, section, workdir)
        if kept is not None and os.path.exists(kept):
            try:
                facts[name] = read_json(kept)
                continue
            except (OSError, ValueError):  # a damaged copy: check again
                pass
        request = json.dumps({"name": name, "section": section,
                              "workdir": os.path.abspath(workdir)})
        try:
            done = subprocess.run([sys.executable, "-m", "shortcutbench.measuring.user_family"],
                                  input=request, capture_output=True, text=True,
                                  timeout=CHECK_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise ValueError(f"families.{name}.factory: building and measuring the smallest "
                             f"cells took more than {CHECK_SECONDS} s; make the factory "
                             f"faster") from None
        lines = done.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            # only a file the crash went through is blamed
            shadows = [name for name in _standard_library_names(workdir)
                       if os.path.join(os.path.abspath(workdir), name) in done.stderr]
            one = len(shadows) == 1
            hint = (f"{', '.join(shadows)} in the run's directory hide{'s' if one else ''} "
                    f"the standard library's module{'' if one else 's'} of "
                    f"{'that name' if one else 'those names'}, which torch imports: rename "
                    f"{'it' if one else 'them'}" if shadows else "does that Python have torch?")
            raise ValueError(f"families.{name}: its check crashed (exit {done.returncode}, "
                             f"{sys.executable}) before it could answer; {hint}\n{tail}")
        if not answer.get("ok"):
            raise ValueError(answer.get("error", f"families.{name}: its check failed"))
        facts[name] = answer
        if kept is not None:
            write_json(answer, kept)
    return facts


def _standard_library_names(workdir):
    """The files in the run's directory, first on a family's import path,
    that hide a module of Python's standard library ('random.py')."""
    return sorted(entry for entry in os.listdir(workdir)
                  if entry.endswith(".py") and entry[:-3] in sys.stdlib_module_names)
