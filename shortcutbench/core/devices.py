"""Device names and `auto`, without torch: this runs where Snakemake builds
the DAG, where importing torch would cost ~1.7 s on every `snakemake` call.
Its twin on the measuring side, measuring/devices.py's `torch_device`,
checks inside a measuring job that the device exists; the two are all the
device-specific code there is.

`auto` means cpu plus every accelerator this host has, found without
importing torch: CUDA if the installed torch was built with CUDA and an
NVIDIA GPU is visible; MPS on Apple silicon.  Explicit names are trusted when
the DAG is built (a cluster's compute node may have a GPU the login node
lacks) and checked inside the job.
"""

import glob
import importlib.util
import os
import platform
import re
import sys
from pathlib import Path

DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:[0-9]+)?)$")
ALLOWED = "'auto', 'cpu', 'cuda', 'cuda:N' (N = 0, 1, ...) or 'mps'"


def check_device_name(name):
    """Raise ValueError unless `name` is a device name we know how to use."""
    if name == "auto" or DEVICE_PATTERN.fullmatch(str(name)):
        return
    raise ValueError(f"devices: unknown device {name!r}; use {ALLOWED}")


def _torch_cuda_version():
    """torch.version.cuda, read from the file so that torch is not imported."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    version_file = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    try:
        text = version_file.read_text()
    except OSError:
        return None
    match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return match.group(1) if match else None


def _visible_nvidia_gpus(environ):
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    gpus = len(glob.glob("/proc/driver/nvidia/gpus/*")) or len(glob.glob("/dev/nvidia[0-9]*"))
    if visible is not None:
        gpus = min(gpus, len([v for v in visible.split(",") if v.strip()]))
    return gpus


def probe_accelerators(environ=None, cuda_version=None, machine=None, platform_name=None):
    """Accelerators this host offers torch, without importing torch.

    The keyword arguments exist for tests; by default they are read off the host.
    """
    environ = os.environ if environ is None else environ
    cuda_version = _torch_cuda_version() if cuda_version is None else cuda_version
    machine = platform.machine() if machine is None else machine
    platform_name = sys.platform if platform_name is None else platform_name
    found = []
    if cuda_version and cuda_version != "none" and _visible_nvidia_gpus(environ) > 0:
        found.append("cuda")
    if platform_name == "darwin" and machine == "arm64":
        found.append("mps")
    return found


def expand_devices(names, accelerators=None):
    """The config's device list with 'auto' replaced, duplicates dropped, order kept."""
    for name in names:
        check_device_name(name)
    expanded = []
    for name in names:
        if name == "auto":
            found = probe_accelerators() if accelerators is None else accelerators
            candidates = ["cpu", *found]
        else:
            candidates = [name]
        expanded.extend(c for c in candidates if c not in expanded)
    return expanded


def is_gpu(name):
    """Whether a job for this device needs a GPU from the scheduler."""
    return name.startswith("cuda")
