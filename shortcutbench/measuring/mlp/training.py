"""Learning, not just one step: a short training run per configuration.

The book says shortcuts make learning easier; this checks it.  Every run
fits the same small regression task (fixed inputs and targets, full batch)
with the book's network, seeded as the measurement seeds it, and records the
loss at every step and the gradient profile (mean |grad| of every layer's
weight) at the start and at the end.

Torch side: never imports pandas, seaborn or Snakemake.
"""

import csv
import math
import sys
import time
from dataclasses import dataclass

import torch

from shortcutbench.core.families.mlp import training_groups
from shortcutbench.core.files import atomic_write, write_json
from shortcutbench.core.sweep import pack_groups_path, training_group_name
from shortcutbench.measuring.family import configure_torch
from shortcutbench.measuring.mlp.batched_training import BATCH, train_runs_batched
from shortcutbench.measuring.mlp.model import ExampleDeepNeuralNetwork, layer_sizes

TASK_SEED = 0  # the task is the same for every run
RUN_COLUMNS = ["depth", "width", "seed", "shortcut", "activation", "norm", "optimizer",
               "learning_rate", "steps"]
COLUMNS = RUN_COLUMNS + ["kind", "index", "value"]
# kind: "loss" (index = step, 0 = before any update), "grad_start" / "grad_end"
# (index = layer: the gradient before the first and after the last update).


def regression_task(width, samples):
    """Inputs x ~ N(0, 1) and targets y = sin(2 x.v) for a fixed unit vector v:
    smooth, nonlinear, the same for every run of a given width."""
    generator = torch.Generator().manual_seed(TASK_SEED)
    x = torch.randn(samples, width, generator=generator)
    v = torch.randn(width, generator=generator)
    y = torch.sin(2 * x @ (v / v.norm())).unsqueeze(1)
    return x, y


def _gradient_profile(model):
    return torch.stack([layer[0].weight.grad.abs().mean() for layer in model.layers]).tolist()


@dataclass(frozen=True)
class TrainingRun:
    """One training run: the network (seeded as the measurement seeds it) and
    how it is trained."""
    depth: int
    width: int
    seed: int
    shortcut: bool
    activation: str = "gelu_tanh"
    norm: str = "none"
    steps: int = 150
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    samples: int = 64


def train_run(run: TrainingRun) -> tuple[list[float], list[float], list[float]]:
    """Train one network; returns (losses per step incl. step 0, start profile, end profile).
    A loss that overflows is recorded as inf/nan; training goes on (it is data)."""
    x, y = regression_task(run.width, run.samples)
    torch.manual_seed(run.seed)
    model = ExampleDeepNeuralNetwork(layer_sizes(run.depth, run.width), run.shortcut,
                                     run.activation, norm=run.norm)
    make_optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[run.optimizer]
    opt = make_optimizer(model.parameters(), lr=run.learning_rate)
    loss_fn = torch.nn.MSELoss()
    losses, start = [], None
    for _ in range(run.steps + 1):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(loss.item())
        if start is None:
            start = _gradient_profile(model)
        if len(losses) <= run.steps:
            opt.step()
    return losses, start, _gradient_profile(model)


def train_job(params, out_path, progress=sys.stderr):
    """A training job (sweep.training_jobs): its groups' runs, one group
    after another, into one CSV; a pack of groups also writes their names
    beside it, from which a later plan knows what it holds."""
    configure_torch()
    groups = training_groups(params)
    rows = []
    for group in groups:
        rows += _group_rows(group, progress)
    with atomic_write(out_path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    if "groups" in params:
        write_json([training_group_name(group) for group in groups], pack_groups_path(out_path))


def _group_rows(params, progress):
    """The rows of one group's runs: every seed and shortcut flag, one after
    another (`engine: exact`, the default) or batched over seeds (`engine:
    batched`, measuring/mlp/batched_training.py)."""
    rows = []
    started = time.perf_counter()
    runs = [TrainingRun(
        depth=params["depth"], width=params["width"], seed=seed, shortcut=shortcut,
        activation=params["activation"], norm=params["norm"], steps=params["steps"],
        optimizer=params["optimizer"], learning_rate=params["learning_rate"],
        samples=params["samples"])
        for seed in params["seeds"] for shortcut in params["shortcut"]]
    engine = params.get("engine", "exact")
    if progress:
        print(f"training {len(runs)} runs of {params['activation']}, depth {params['depth']}, "
              f"width {params['width']}, norm {params['norm']}, engine {engine}"
              + (f" ({BATCH} runs a batch)" if engine == "batched" else ""),
              file=progress, flush=True)
    if engine == "batched":
        results = train_runs_batched(runs, *regression_task(params["width"], params["samples"]))
    else:
        results = map(train_run, runs)
    for n, (spec, (losses, start, end)) in enumerate(zip(runs, results), 1):
        run = [getattr(spec, column) for column in RUN_COLUMNS]
        rows += [run + ["loss", step, value] for step, value in enumerate(losses)]
        rows += [run + ["grad_start", layer, value] for layer, value in enumerate(start)]
        rows += [run + ["grad_end", layer, value] for layer, value in enumerate(end)]
        final = losses[-1]
        if progress:
            print(f"trained {n}/{len(runs)}: seed {spec.seed}, shortcut {spec.shortcut}: loss "
                  f"{losses[0]:.4g} -> {final:.4g}{'' if math.isfinite(final) else ' (diverged)'} "
                  f"({time.perf_counter() - started:.1f} s)", file=progress, flush=True)
    return rows
