"""The torch half of device choice: inside a measuring job, the torch.device
for a configured name, after checking that this host really has it (the
names and `auto` are core/devices.py's, resolved without torch), and the
settings that make a GPU give the same bytes every run, and what a cell
that needs an op without a deterministic GPU implementation is told."""

import os
import re
import socket
from contextlib import contextmanager

import torch

from shortcutbench.core.devices import check_device_name
from shortcutbench.core.families import top_level_family


class DeviceUnavailable(RuntimeError):
    pass


class NotDeterministic(RuntimeError):
    """A cell's model uses an op that torch cannot run deterministically on
    its device; the message names the family's config key, the op and the fix."""


# torch's error (deterministic algorithms on, warn_only off) begins with the op.
NO_DETERMINISTIC_OP = re.compile(r"(\S+) does not have a deterministic implementation")
DETERMINISM_DOCS = ("https://pytorch.org/docs/stable/generated/"
                    "torch.use_deterministic_algorithms.html")


def torch_device(name):
    """The torch.device for `name`, after checking this host really has it."""
    check_device_name(name)
    host = socket.gethostname()
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"device {name!r} is not available on host {host!r}: torch "
                f"{torch.__version__} sees no CUDA device (torch.version.cuda="
                f"{torch.version.cuda}). Run this cell on a GPU node, or remove "
                f"{name!r} from 'devices' in the config.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"device {name!r} is not available on host {host!r}: it has "
                f"{torch.cuda.device_count()} CUDA device(s). Use cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1}.")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailable(
                f"device 'mps' is not available on host {host!r}: torch sees no "
                f"Apple-silicon GPU. Remove 'mps' from 'devices' in the config.")
        return torch.device("mps")
    raise AssertionError(name)  # check_device_name let an unknown name through


def unavailable_here(names):
    """What refuses a device among `names` that this host lacks, naming the
    config key, or None: a local run's check before its first job."""
    for name in names:
        try:
            torch_device(name)
        except DeviceUnavailable as error:
            return f"config key devices: {error} Nothing was run."
    return None


def deterministic(name):
    """Make a job on device `name` give the same bytes every run, before it
    touches the device.  On the CPU (one thread) every kernel already does.
    On CUDA: cuDNN's deterministic algorithms and no autotuning (conv and
    BatchNorm backward), torch's deterministic algorithms (an embedding's
    backward), and cuBLAS's fixed workspace that those need,
    which must be set before CUDA starts.  Returns what was set, for the
    job's machine facts."""
    if not name.startswith("cuda"):
        return {}
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
    return {"deterministic_algorithms": True,
            "cublas_workspace_config": os.environ["CUBLAS_WORKSPACE_CONFIG"]}


@contextmanager
def deterministic_ops(key, device):
    """Around a cell's run on `device` (forward, loss, backward) for the
    family whose config section is `key`: torch's RuntimeError for an op
    with no deterministic implementation (deterministic() asks for them on
    CUDA, where e.g. AdaptiveAvgPool2d's, interpolate's and scatter_add's
    backward have none) becomes a NotDeterministic that names the family,
    the op and the fix.  Determinism stays strict: a result that differs
    from run to run would not be reproducible bit for bit."""
    try:
        yield
    except RuntimeError as error:
        found = NO_DETERMINISTIC_OP.search(str(error))
        if found is None:
            raise
        op, where = found.group(1), f"in {key}" if key else "at the config's top level"
        family = key or top_level_family()
        raise NotDeterministic(
            f"{family}: the model runs {op}, which torch cannot run deterministically on "
            f"{device}; shortcutbench measures every cell deterministically (the same bytes "
            f"every run, torch.use_deterministic_algorithms(True)). Replace that layer in "
            f"the model with ops that have a deterministic implementation (e.g. "
            f"x.mean(dim=(2, 3)) for nn.AdaptiveAvgPool2d(1); torch's list: "
            f"{DETERMINISM_DOCS}), or measure this family on the CPU: devices: [cpu] "
            f"{where}") from error
