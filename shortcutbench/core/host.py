"""Facts about the machine a job runs on (no torch, no pandas)."""

import os
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
    Read from the *.dist-info folders' names and top_level.txt files, once
    per job: importlib.metadata.packages_distributions() reads every file
    list (~0.3 s a job, more than many cells take)."""
    names = {name.partition(".")[0] for name in (sys.modules if modules is None else modules)}
    names -= set(sys.stdlib_module_names)
    found = {}
    for folder in dict.fromkeys(sys.path):
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            name, _, version = entry[:-len(".dist-info")].partition("-")
            try:
                with open(os.path.join(folder, entry, "top_level.txt")) as f:
                    provides = f.read().split()
            except OSError:  # none written: the module is the name's
                provides = [name.lower().replace("-", "_").replace(".", "_")]
            if names & set(provides):
                found.setdefault(_project_name(os.path.join(folder, entry), name), version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _project_name(dist_info, folder_name):
    """The name a distribution gives itself (PyYAML), where its folder's is
    normalised (pyyaml): its METADATA's Name line."""
    try:
        with open(os.path.join(dist_info, "METADATA"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("Name:"):
                    return line[len("Name:"):].strip()
                if not line.strip():  # the headers end
                    break
    except OSError:
        pass
    return folder_name
