"""The book's GELU (ch. 4): the tanh approximation, written out by hand as
the book writes it.  Both of the book's networks use it: the shortcut
example's layers and the transformer block's feed-forward.

This module imports torch and never pandas, seaborn or Snakemake.
"""

import functools

import torch
from torch import nn


def gelu_tanh(x):
    """The book's GELU: the tanh approximation, written out by hand."""
    return 0.5 * x * (1 + torch.tanh(
        _sqrt_2_over_pi(x.dtype, x.device) *
        (x + 0.044715 * torch.pow(x, 3))
    ))


@functools.cache
def _sqrt_2_over_pi(dtype, device):
    # The book computes torch.sqrt(torch.tensor(2.0 / torch.pi)) on every call;
    # the value is the same each time, so compute it once per dtype and device.
    return torch.sqrt(torch.tensor(2.0 / torch.pi, dtype=dtype, device=device))


class GELU(nn.Module):
    def forward(self, x):
        return gelu_tanh(x)
