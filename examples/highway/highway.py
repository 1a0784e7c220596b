"""A family of your own, for shortcutbench: Srivastava et al. 2015's highway
network, the shortcut with a gate.

    y = T(x) * H(x) + (1 - T(x)) * x,   H(x) = ReLU(W_H x + b_H),
                                        T(x) = sigmoid(W_T x + b_T)

The gate T decides, per unit, how much of the layer's output H(x) passes and
how much of its input x is carried; its bias starts at -2, so that every
layer starts close to carrying its input (the paper's advice for deep
networks).  Without the shortcut the same layers are plain: y = H(x), and
they have no gate.

shortcutbench calls build(depth=..., shortcut=..., **options) once per cell,
right after torch.manual_seed(seed): it returns the model, its inputs and the
loss of its output.  The inputs are drawn here, after the model, so that a
seed gives the same weights and the same batch every time.  The parameters
of layer i are named blocks.{i}.*, which the config's `blocks` pattern reads.
"""

import torch
import torch.nn.functional as F
from torch import nn


class HighwayLayer(nn.Module):
    def __init__(self, width, gated, gate_bias=-2.0):
        super().__init__()
        self.transform = nn.Linear(width, width)
        self.gated = gated
        if gated:
            self.gate = nn.Linear(width, width)
            nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x):
        h = torch.relu(self.transform(x))
        if not self.gated:
            return h
        t = torch.sigmoid(self.gate(x))
        return t * h + (1 - t) * x


class Highway(nn.Module):
    def __init__(self, depth, width, gated, classes):
        super().__init__()
        self.blocks = nn.ModuleList(HighwayLayer(width, gated) for _ in range(depth))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build(depth, shortcut, width=16, batch=32, classes=10):
    """One cell: a highway network of `depth` layers (plain without the
    shortcut), a random batch of inputs and labels, cross-entropy."""
    model = Highway(depth, width, shortcut, classes)
    x = torch.randn(batch, width)
    labels = torch.randint(0, classes, (batch,))

    def loss_fn(logits):
        return F.cross_entropy(logits, labels.to(logits.device))

    return model, (x,), loss_fn
