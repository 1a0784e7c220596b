"""The torch half of device choice: inside a measuring job, the torch.device
for a configured name, after checking that this host really has it (the
names and `auto` are core/devices.py's, resolved without torch), and the
settings that make a GPU give the same bytes every run."""

import os
import socket

import torch

from shortcutbench.core.devices import check_device_name


class DeviceUnavailable(RuntimeError):
    pass


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


def deterministic(name):
    """Make a job on device `name` give the same bytes every run, before it
    touches the device.  On the CPU (one thread) every kernel already does.
    On CUDA: cuDNN's deterministic algorithms and no autotuning (the ResNet's
    conv and BatchNorm backward), torch's deterministic algorithms (the
    GPT's embedding backward), and cuBLAS's fixed workspace that those need,
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
