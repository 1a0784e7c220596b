"""He et al. 2016's CIFAR ResNet (Deep Residual Learning, section 4.2).

6n+2 weighted layers: a 3x3 conv with 16 filters, then three stages of n
basic blocks with 16, 32 and 64 filters (the first block of stages 2 and 3
halves the image with stride 2), global average pooling and a 10-way linear
layer.  Every conv is followed by BatchNorm, has no bias, and is drawn with
He et al. 2015's init (normal, std sqrt(2 / fan_in)).  A basic block is

    out = ReLU(BN(conv(x))); out = BN(conv(out)); return ReLU(out + shortcut(x))

with option A shortcuts: the identity, and where the shape changes the input
subsampled by 2 and its channels zero-padded, so a shortcut has no
parameters.  Without shortcut ("plain") the same network drops `+ shortcut(x)`
and keeps the same parameters.

`ResNetFamily` measures a cell as He et al. train: train mode (BatchNorm on
the batch's statistics), on a seeded random batch of 3 x 32 x 32 images
(N(0, 1)) with random labels, cross-entropy.  core/families/resnet.py has its
arithmetic (depths, parameter counts, the layer of a parameter).

This module imports torch and never pandas, seaborn or Snakemake.
"""

import torch
import torch.nn.functional as F
from torch import nn

from shortcutbench.core.families import resnet
from shortcutbench.measuring.family import Family


def conv3x3(c_in, c_out, stride=1):
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return conv


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, shortcut=True):
        super().__init__()
        self.shortcut = shortcut
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = c_out - c_in  # channels option A adds as zeros
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + self.option_a(x)
        return F.relu(out)

    def option_a(self, x):
        """The identity; where the shape changes, every second pixel and
        zero channels on both sides."""
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = conv3x3(resnet.IMAGE[0], resnet.STAGE_WIDTHS[0])
        self.bn = nn.BatchNorm2d(resnet.STAGE_WIDTHS[0])

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ResNet(nn.Module):
    def __init__(self, depth, shortcut=True):
        super().__init__()
        n = resnet.blocks_per_stage(depth)
        self.stem = Stem()
        stages, c_in = [], resnet.STAGE_WIDTHS[0]
        for s, width in enumerate(resnet.STAGE_WIDTHS):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(c_in, width, 2 if s > 0 and b == 0 else 1, shortcut))
                c_in = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(resnet.STAGE_WIDTHS[-1], resnet.CLASSES)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))  # global average pooling


class ResNetFamily(Family):
    """The ResNet through the measurement contract: `depth` is 6n+2, `norm`
    is always "batchnorm", `options` holds batch_size."""

    name = resnet.NAME
    mode = "train"

    def build(self, depth, shortcut, norm, options):
        model = ResNet(depth, shortcut)
        batch = options["batch_size"]
        images = torch.randn(batch, *resnet.IMAGE)
        labels = torch.randint(0, resnet.CLASSES, (batch,))

        def loss_fn(logits):
            return F.cross_entropy(logits, labels.to(logits.device))

        return model, (images,), loss_fn

    def layer_of(self, name, depth):
        return resnet.layer_of(name, depth)
