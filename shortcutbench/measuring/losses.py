"""The loss of a model's output where a family gives none: what Hugging Face
models return (a ModelOutput) read the way their own training reads it.

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F


def default_loss(output: Any, inputs: Mapping[str, torch.Tensor] | tuple) -> torch.Tensor:
    """The model's own loss where it computed one (`output.loss`, from the
    `labels` among its inputs); else cross-entropy of `output.logits`: on
    `labels` where the inputs have them, on the next token of `input_ids`
    (a causal LM) where they do not; else the book's statistic, the mean
    square of the output (MSE against 0)."""
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    named = inputs if isinstance(inputs, Mapping) else {}
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        labels = named.get("labels")
        if labels is not None:
            return F.cross_entropy(logits.flatten(0, -2), labels.to(logits.device).flatten())
        ids = named.get("input_ids")
        if ids is not None:
            return F.cross_entropy(logits[:, :-1].flatten(0, -2),
                                   ids[:, 1:].to(logits.device).flatten())
    tensor = _first_tensor(output)
    if tensor is None:
        raise TypeError(f"no loss in a {type(output).__name__}: it has no loss, logits or "
                        f"tensor; give the factory a loss_fn")
    # in the output's own precision, at least float32 (a float64 cell stays float64)
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32)).square().mean()


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, Mapping) else (
        output if isinstance(output, tuple | list) else ())
    return next((v for v in values if isinstance(v, torch.Tensor)), None)
