"""Training runs batched over seeds (`engine: batched`).

The exact path (training.train_run) trains one network at a time; a step of
the book's network is a few small matmuls, so its time is Python and torch's
per-op overhead.  Here BATCH runs of one training group train at once: each
layer's parameters are one tensor stacked over the runs ([runs, out, in]),
the forward goes through torch.baddbmm, and the optimizer steps the stacked
tensors.  Adam and SGD are elementwise (no norm or statistic across a
tensor), so stepping a stacked tensor is each run's own step.

Each run's network is drawn exactly as the exact path draws it (its seed,
then nn.Linear's draws, measuring/mlp/batched.py's stacked draws), and each
run's loss is its own mean over the task's samples, so only the batching of
the arithmetic differs, and with it the last bits (benchmarks/training.py
measures the agreement).

A run's bits depend on its own seed and config alone: the batch is always
BATCH runs (the last one padded with repeats of a real run, whose results
are dropped), runs with and without shortcuts share a batch through a
per-run mask (torch.where picks each run's own sum, so no run's arithmetic
changes), and the job runs on one thread (tests/test_training.py trains one
run beside different companions and compares the bytes).
"""

import torch
import torch.nn.functional as F

from shortcutbench.core.families.mlp import TRAINING_BATCH as BATCH
from shortcutbench.core.records import Cell
from shortcutbench.measuring.mlp.batched import _draw_stacked
from shortcutbench.measuring.mlp.model import ACTIVATIONS, layer_input

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def train_runs_batched(runs, x, y):
    """Train every run of one group (TrainingRun's that differ only in seed
    and shortcut) on the task (x, y); returns (losses, start, end) per run,
    in the order of `runs`, as training.train_run returns them, a batch at
    a time (a generator: the job logs each batch as it ends)."""
    for start in range(0, len(runs), BATCH):
        yield from _train_batch(runs[start:start + BATCH], x, y)


def _train_batch(runs, x, y):
    """Train up to BATCH runs of one group at once."""
    run = runs[0]
    seeds = list(dict.fromkeys(r.seed for r in runs))
    # Cell carries only what the draws depend on: depth, width, init, device, dtype.
    stacked = _draw_stacked(Cell(run.depth, run.width, 0, False), seeds)
    rows = [seeds.index(r.seed) for r in runs]
    shortcuts = [r.shortcut for r in runs]
    padding = BATCH - len(runs)
    rows += [rows[0]] * padding
    shortcuts += [shortcuts[0]] * padding
    index = torch.tensor(rows)
    leaves = [t.index_select(0, index).requires_grad_() for pair in stacked for t in pair]
    weights, biases = leaves[0::2], leaves[1::2]
    with_shortcut = torch.tensor(shortcuts).view(BATCH, 1, 1)
    act = ACTIVATIONS[run.activation][0]
    inputs = x.expand(BATCH, *x.shape)
    targets = y.expand(BATCH, *y.shape)

    def losses_of_runs():
        h = inputs
        for weight, bias in zip(weights, biases):
            layer_output = act(torch.baddbmm(bias.unsqueeze(1), layer_input(h, run.norm),
                                             weight.transpose(1, 2)))
            # ExampleDeepNeuralNetwork's shortcut, where a run has one
            if h.shape == layer_output.shape:
                h = torch.where(with_shortcut, h + layer_output, layer_output)
            else:
                h = layer_output
        # each run's MSELoss; the sum's gradient is each run's own
        return F.mse_loss(h, targets, reduction="none").mean(dim=(1, 2))

    def gradient_profile():
        return torch.stack([w.grad.abs().mean(dim=(1, 2)) for w in weights], dim=1)

    optimizer = OPTIMIZERS[run.optimizer](leaves, lr=run.learning_rate)
    losses = []
    for step in range(run.steps + 1):
        optimizer.zero_grad()
        loss = losses_of_runs()
        loss.sum().backward()
        losses.append(loss.detach())
        if step == 0:
            start = gradient_profile()
        if step < run.steps:
            optimizer.step()
    losses = torch.stack(losses, dim=1).tolist()
    start, end = start.tolist(), gradient_profile().tolist()
    return [(losses[i], start[i], end[i]) for i in range(len(runs))]
