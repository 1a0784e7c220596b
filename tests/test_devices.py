"""Device choice, tested without a GPU: the names and `auto` (core/devices.py)
and the torch half that checks them in a job (measuring/devices.py)."""

import socket

import pytest

from shortcutbench.core import devices
from shortcutbench.core.devices import check_device_name, expand_devices, probe_accelerators
from shortcutbench.measuring.devices import DeviceUnavailable, torch_device


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "mps", "auto"])
def test_known_names_pass(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["tpu9", "gpu", "cuda:", "cuda:x", "CPU", "", "cuda:0:1"])
def test_unknown_names_are_refused_with_the_allowed_forms(name):
    with pytest.raises(ValueError, match=r"devices: unknown device .*'cuda:N'"):
        check_device_name(name)


def test_auto_is_cpu_plus_accelerators_in_order_without_duplicates():
    assert expand_devices(["auto"], accelerators=[]) == ["cpu"]
    assert expand_devices(["auto"], accelerators=["cuda"]) == ["cpu", "cuda"]
    assert expand_devices(["cuda", "auto"], accelerators=["cuda"]) == ["cuda", "cpu"]
    assert expand_devices(["cpu", "cuda:1"], accelerators=[]) == ["cpu", "cuda:1"]


def test_explicit_devices_are_trusted_when_the_dag_is_built():
    # A login node without a GPU still plans cuda cells for the compute nodes.
    assert expand_devices(["cuda"], accelerators=[]) == ["cuda"]


def test_probe_finds_cuda_only_with_a_cuda_build_and_a_visible_gpu(monkeypatch):
    monkeypatch.setattr(devices, "_visible_nvidia_gpus", lambda env: 2)
    assert probe_accelerators({}, cuda_version="12.8", machine="x86_64",
                              platform_name="linux") == ["cuda"]
    # A CPU build of torch cannot use the GPU, whatever the host has.
    assert probe_accelerators({}, cuda_version="none", machine="x86_64",
                              platform_name="linux") == []
    monkeypatch.setattr(devices, "_visible_nvidia_gpus", lambda env: 0)
    assert probe_accelerators({}, cuda_version="12.8", machine="x86_64",
                              platform_name="linux") == []


def test_probe_finds_mps_on_apple_silicon_only():
    assert probe_accelerators({}, cuda_version="none", machine="arm64",
                              platform_name="darwin") == ["mps"]
    assert probe_accelerators({}, cuda_version="none", machine="x86_64",
                              platform_name="darwin") == []


@pytest.mark.parametrize("visible, expected", [("", 0), ("-1", 0), ("0", 1), ("0,1", 2),
                                               (None, 4)])
def test_cuda_visible_devices_limits_the_gpus(monkeypatch, visible, expected):
    monkeypatch.setattr(devices.glob, "glob", lambda pattern: ["a", "b", "c", "d"])
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert devices._visible_nvidia_gpus(env) == expected


def test_the_probe_agrees_with_torch_on_this_host():
    import torch

    assert ("cuda" in probe_accelerators()) == torch.cuda.is_available()
    assert devices._torch_cuda_version() == (torch.version.cuda or None)


def test_cpu_is_always_there():
    assert str(torch_device("cpu")) == "cpu"


def test_a_missing_gpu_fails_in_the_job_naming_device_and_host():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    with pytest.raises(DeviceUnavailable) as error:
        torch_device("cuda:1")
    message = str(error.value)
    assert "'cuda:1'" in message and socket.gethostname() in message
    assert "remove" in message.lower()  # says what to do next


def test_a_missing_gpu_cell_fails_in_measure_cell():
    import torch

    from shortcutbench.core.records import Cell
    from shortcutbench.measuring.mlp.exact import measure_cell

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    with pytest.raises(DeviceUnavailable, match="'cuda'"):
        measure_cell(Cell(5, 3, 123, True, device="cuda"))


def test_a_gpu_job_asks_for_deterministic_kernels_and_a_cpu_job_changes_nothing(monkeypatch):
    """The same bytes every run on a GPU too: cuDNN's deterministic
    algorithms, no autotuning, torch's deterministic algorithms and cuBLAS's
    fixed workspace, set before the device is touched (a cuda job's first
    step); on the CPU nothing changes."""
    import torch

    from shortcutbench.measuring.devices import deterministic

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.are_deterministic_algorithms_enabled())
    assert deterministic("cpu") == {}
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled()) == before
    try:
        facts = deterministic("cuda:1")
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert facts == {"deterministic_algorithms": True,
                         "cublas_workspace_config": ":4096:8"}
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[:2]
        torch.use_deterministic_algorithms(before[2])


def test_an_op_without_a_deterministic_gpu_kernel_names_the_family_the_op_and_the_fix():
    """On CUDA, deterministic() makes torch raise for an op without a
    deterministic implementation (AdaptiveAvgPool2d's backward, ...); a cell
    that runs one fails naming the family's config key, the op and the fix.
    Here on the CPU a backward that raises torch's own error stands in."""
    import torch

    from shortcutbench.measuring import family as runner
    from shortcutbench.measuring.devices import NotDeterministic

    torch_says = ("adaptive_avg_pool2d_backward_cuda does not have a deterministic "
                  "implementation, but you set 'torch.use_deterministic_algorithms(True)'. "
                  "You can turn off determinism just for this operation, or you can use the "
                  "'warn_only=True' option, if that's acceptable for your application.")

    class Pool(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.mean(dim=(2, 3))

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError(torch_says)

    class Mine(runner.Family):
        name = "mine"

        def build(self, depth, shortcut, norm, options):
            model = torch.nn.Conv2d(3, 4, 3)
            x = torch.randn(2, 3, 8, 8)
            return model, (x,), lambda out: Pool.apply(out).sum()

        def layer_of(self, name, depth):
            return 0

    cell = {"model": "mine", "depth": 1, "width": 0, "seed": 0, "shortcut": False,
            "shortcut_scale": 0.0, "branch_scale": "1", "activation": "n/a", "init": "n/a",
            "norm": "n/a", "device": "cpu", "dtype": "float32"}
    with pytest.raises(NotDeterministic) as error:
        runner.measure_cell(Mine(), cell, {})
    message = str(error.value)
    assert message.startswith("families.mine: ")
    assert "adaptive_avg_pool2d_backward_cuda" in message
    assert "devices: [cpu] in families.mine" in message  # the fix
    assert "x.mean(dim=(2, 3)) for nn.AdaptiveAvgPool2d(1)" in message
    assert isinstance(error.value.__cause__, RuntimeError)  # torch's own error kept

    # Any other error passes through as it is.
    torch_says = "CUDA out of memory"
    with pytest.raises(RuntimeError, match="^CUDA out of memory$"):
        runner.measure_cell(Mine(), cell, {})
