"""He et al. 2016's CIFAR ResNet in numbers, torch-free: its depths, its
parameter count, which weighted layer a parameter belongs to, and the memory
one cell needs.

The network (measuring/resnet.py) has 6n+2 weighted layers: a 3x3 conv with
16 filters (layer 0), three stages of n basic blocks of two 3x3 convs each
(16, 32 and 64 filters; layers 1 .. 6n), and a 10-way linear layer after
global average pooling (layer 6n+1).  A BatchNorm belongs to the conv it
follows.  Option A shortcuts have no parameters, so the plain network and the
residual one have the same parameters.
"""

import math

from shortcutbench.core.families import SCALE_KEYS, FamilySpec, Layout, register_family
from shortcutbench.core.resources import BASELINE_MB, DTYPE_BYTES, PEAK_PER_PARAMETER_BYTE

NAME = "resnet"
STAGE_WIDTHS = (16, 32, 64)
CLASSES = 10
IMAGE = (3, 32, 32)
# He et al.'s Table 6: the depths and their parameter counts.
HE_DEPTHS = (20, 32, 44, 56, 110)
SAVED_PER_ACTIVATION = 3.6  # what autograd keeps per conv output (measured 3.1-3.4)


def blocks_per_stage(depth: int) -> int:
    """n of a 6n+2-layer network; ValueError naming the key unless depth is 6n+2, n >= 1."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depths: {depth!r} is not 6n+2 with n >= 1 (He et al.'s CIFAR "
                         f"ResNets have 8, 14, 20, 32, 44, 56, 110, ... layers); use such a "
                         f"depth")
    return (depth - 2) // 6


def n_parameters(depth: int) -> int:
    """The parameters of ResNet-depth: convs without bias, two per BatchNorm
    channel, the linear layer's weight and bias (269,722 for depth 20)."""
    n = blocks_per_stage(depth)
    total, c_in = 9 * IMAGE[0] * STAGE_WIDTHS[0] + 2 * STAGE_WIDTHS[0], STAGE_WIDTHS[0]
    for width in STAGE_WIDTHS:
        for _ in range(n):
            total += 9 * c_in * width + 9 * width * width + 4 * width
            c_in = width
    return total + STAGE_WIDTHS[-1] * CLASSES + CLASSES


def layer_of(name: str, depth: int) -> int:
    """The weighted layer a parameter belongs to: 0 for the first conv (and
    its BatchNorm), 1 + 2 * block + (conv - 1) for stages.S.B.convC (and the
    BatchNorm after it), 6n+1 for the linear layer."""
    n = blocks_per_stage(depth)
    parts = name.split(".")
    if parts[0] == "stem":
        return 0
    if parts[0] == "fc":
        return 6 * n + 1
    stage, block, part = int(parts[1]), int(parts[2]), parts[3]
    return 1 + 2 * (stage * n + block) + int(part[-1]) - 1


def fit_stages(depth: int) -> list[int]:
    """Per weighted layer, the stage whose intercept the per-layer factor's
    fit gives it (core/cell_stats.py), or -1 where the layer is left out:
    the first conv (its input is the image, not a normalised stream) and the
    linear layer.  One intercept per stage: where the filters double and the
    image halves, the per-weight gradient jumps for reasons unrelated to
    depth."""
    n = blocks_per_stage(depth)
    return [-1] + [(layer - 1) // (2 * n) for layer in range(1, 6 * n + 1)] + [-1]


def activations_per_image(depth: int) -> int:
    """The outputs of every conv for one image (channels x height x width)."""
    n = blocks_per_stage(depth)
    size = STAGE_WIDTHS[0] * IMAGE[1] * IMAGE[2]
    per_stage = [size, size // 2, size // 4]  # 16x32x32, 32x16x16, 64x8x8
    return size + 2 * n * sum(per_stage)


def mem_mb(depth: int, batch_size: int, dtype_bytes: int = 4) -> int:
    """Megabytes a measuring job of cells up to `depth` needs: what a
    measuring process holds anyway (core/resources.py's BASELINE_MB), what
    autograd keeps of each conv's output for the batch, and the weights and
    their gradients (measured at 110 layers: 400 MB for a batch of 16, 852 MB
    for 64; this asks 557 and 1,281)."""
    size = max(dtype_bytes, 4)
    saved = SAVED_PER_ACTIVATION * activations_per_image(depth) * batch_size * size
    weights = PEAK_PER_PARAMETER_BYTE * n_parameters(depth) * size
    return BASELINE_MB + math.ceil((saved + weights) / 2 ** 20)


def _resnet_memory(section, dtype, checked=None):
    return mem_mb(max(section["depths"]), section["batch_size"], DTYPE_BYTES[dtype])


def _resnet_check(section):
    for depth in section.get("depths", []):
        blocks_per_stage(depth)


SPEC = register_family(FamilySpec(
    NAME, "He et al.\u2019s CIFAR ResNet", "layers", "resnet",
    Layout(profile=r"(stem\.conv|stages\.\d+\.\d+\.conv[12]|fc)\.weight",
           head=r"fc\.weight", fit=fit_stages),
    "shortcutbench.measuring.resnet:ResNetFamily",
    records_per_block=3,  # a layer's: its conv's weight, its BatchNorm's two
    fields={"width": STAGE_WIDTHS[0], "activation": "relu",
            "init": "kaiming_normal", "norm": "batchnorm"},
    model_keys=("batch_size", *SCALE_KEYS), check=_resnet_check, memory=_resnet_memory,
    memory_fix="smaller resnet.depths or resnet.batch_size",
    switch="one residual add per basic block, out + shortcut(x) before its last ReLU "
           "(option A: the identity, subsampled and zero-padded where the shape changes; "
           "BasicBlock.forward, shortcutbench/measuring/resnet.py); without shortcut the "
           "block is plain",
    switch_blocks=r"stages\.(\d+)\.(\d+)\.",
    # BatchNorm without shortcuts (Yang et al.): its last conv is layer
    # depth - 2 (the linear layer is depth - 1)
    laws={"batchnorm": {"last": -2}},
    template="families/resnet.html.j2", order=2))
