"""Facts about the machine a job runs on (no torch, no pandas)."""

import importlib.metadata
import platform
import sys


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def imported_distributions(modules=None) -> dict[str, str]:
    """{distribution: version} of every installed distribution whose
    top-level module this process imported (`modules`: sys.modules), the
    standard library left out: what a job's numbers may depend on beyond
    torch -- a family's transformers, timm, tokenizers, ...  A module no
    distribution installed (the user's own file, __main__) names none.
    Reading every distribution's file list takes ~0.2 s: once per job."""
    names = {name.partition(".")[0] for name in (sys.modules if modules is None else modules)}
    owners = importlib.metadata.packages_distributions()
    found = {}
    for name in sorted(names - set(sys.stdlib_module_names)):
        for dist in owners.get(name, ()):
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))
