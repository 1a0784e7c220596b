"""The network of the book's shortcut-connection example, generalised.

`ExampleDeepNeuralNetwork` is the listing from *Build a Large Language Model
From Scratch*, ch. 4.4, with `layer_sizes = [width] * depth + [1]`, a choice
of activation, and three knobs the book keeps fixed (their defaults are the
book's network):

- `init`: how the Linear layers are drawn (`pytorch` is nn.Linear's own);
- `shortcut_scale` (lambda): the shortcut becomes x = lambda * x + layer(x);
- `branch_scale` (alpha): the residual branch is scaled, x = lambda * x +
  alpha * layer(x), the literature's fix (Fixup, SkipInit: alpha ~ 1/sqrt(depth));
  alpha = 1 skips the multiply, so the book's numbers stay bit for bit;
- `norm`: `pre_layernorm` feeds each layer LayerNorm(x), as transformer blocks do.

Parameter names stay the book's: `layers.{i}.0.weight`.

`init_parameters` and `forward` are the same network without `nn.Module`:
the same random draws in the same order and the same tensor operations, so
the numbers are bit-identical (tests/test_model.py checks it), at about half
the Python overhead.  The measurement uses them (measuring/mlp/exact.py);
the module is the reference, and measuring/mlp/family.py's `MLPFamily` the network
through the contract every family is measured by (measuring/family.py).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from shortcutbench.measuring.gelu import GELU, gelu_tanh

# Name in the config -> (function, module).  `gelu_tanh` is the book's own;
# `gelu` (exact erf) is the classic reader's mistake.
ACTIVATIONS = {
    "gelu_tanh": (gelu_tanh, GELU),
    "gelu": (F.gelu, nn.GELU),
    "relu": (torch.relu, nn.ReLU),
    "tanh": (torch.tanh, nn.Tanh),
    "sigmoid": (torch.sigmoid, nn.Sigmoid),
}
INITS = ("pytorch", "xavier_uniform", "kaiming_normal")


def layer_sizes(depth, width):
    """The book's example, [3, 3, 3, 3, 3, 1], is layer_sizes(5, 3)."""
    return [width] * depth + [1]


def layer_input(x, norm):
    """What a layer is fed: x itself, or LayerNorm(x) (no affine: at
    initialisation LayerNorm's gain is 1 and its bias 0)."""
    return F.layer_norm(x, x.shape[-1:]) if norm == "pre_layernorm" else x


def add_shortcut(x, layer_output, shortcut_scale, branch_scale=1.0):
    """x = lambda * x + alpha * layer(x); lambda = alpha = 1 is the book's
    x + layer(x), with no multiply at all."""
    if branch_scale != 1:
        layer_output = branch_scale * layer_output
    if shortcut_scale == 1:
        return x + layer_output
    return shortcut_scale * x + layer_output


class ExampleDeepNeuralNetwork(nn.Module):
    def __init__(self, layer_sizes, use_shortcut, activation="gelu_tanh",
                 shortcut_scale=1.0, norm="none", branch_scale=1.0):
        super().__init__()
        self.use_shortcut = use_shortcut
        self.shortcut_scale = shortcut_scale
        self.branch_scale = branch_scale
        self.norm = norm
        make_activation = ACTIVATIONS[activation][1]
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Linear(n_in, n_out), make_activation())
            for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
        ])

    def forward(self, x):
        for layer in self.layers:
            # Compute the output of the current layer
            layer_output = layer(layer_input(x, self.norm))
            # Check if shortcut can be applied
            if self.use_shortcut and x.shape == layer_output.shape:
                x = add_shortcut(x, layer_output, self.shortcut_scale, self.branch_scale)
            else:
                x = layer_output
        return x


def sample_input(width):
    """The book's input [[1., 0., -1.]] at width 3: evenly spaced from 1 to -1."""
    return torch.linspace(1, -1, width).unsqueeze(0)


def linear_init_bounds(fan_in):
    # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) for the weight,
    # U(+-1/sqrt(fan_in)) for the bias.  Same arithmetic, so the same floats.
    gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    weight_bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
    bias_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return weight_bound, bias_bound


def draw_linear(n_in, n_out, init="pytorch"):
    """(weight, bias) of one Linear layer, drawn on the CPU from the global
    generator.  `pytorch` draws exactly as nn.Linear does; the others draw
    the weight with torch.nn.init and start the bias at zero."""
    if init == "pytorch":
        weight_bound, bias_bound = linear_init_bounds(n_in)
        weight = torch.empty(n_out, n_in).uniform_(-weight_bound, weight_bound)
        bias = torch.empty(n_out).uniform_(-bias_bound, bias_bound)
        return weight, bias
    weight = torch.empty(n_out, n_in)
    if init == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif init == "kaiming_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    else:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")
    return weight, torch.zeros(n_out)


def init_parameters(layer_sizes, init="pytorch"):
    """[(weight, bias), ...], layer by layer, as the module's layers draw them."""
    return [draw_linear(n_in, n_out, init)
            for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]


def reinitialize_(model, init):
    """Redraw a module's Linear layers with `init`, in init_parameters' order.
    (nn.Linear has already drawn its own; reseed before calling this.)"""
    with torch.no_grad():
        for layer in model.layers:
            weight, bias = draw_linear(layer[0].in_features, layer[0].out_features, init)
            layer[0].weight.copy_(weight)
            layer[0].bias.copy_(bias)


def forward(parameters, x, use_shortcut, activation="gelu_tanh", shortcut_scale=1.0,
            norm="none", branch_scale=1.0):
    """ExampleDeepNeuralNetwork.forward on plain tensors.

    Returns the output and the hidden state after every layer (what flows on
    to the next layer, shortcut included).
    """
    act = ACTIVATIONS[activation][0]
    hidden = []
    for weight, bias in parameters:
        layer_output = act(F.linear(layer_input(x, norm), weight, bias))
        if use_shortcut and x.shape == layer_output.shape:
            x = add_shortcut(x, layer_output, shortcut_scale, branch_scale)
        else:
            x = layer_output
        hidden.append(x)
    return x, hidden
