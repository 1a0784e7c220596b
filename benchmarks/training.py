"""Training batched over seeds against the exact runs: speed and agreement.

    .venv/bin/python benchmarks/training.py          # the default config's training (~1 minute)
    .venv/bin/python benchmarks/training.py 300      # more steps

One process, one intra-op thread (as training jobs run), torch imported
once.  The default config's training groups (width 32, seeds 100-102, both
flags, Adam at 1e-3, 64 samples, 100 steps; depths 4 and 32, norms none and
pre_layernorm), each trained by the exact path (training.train_run, one run
after another) and by the batched engine (batched_training, 8 runs a batch),
interleaved, median of 3.  Per depth, norm and shortcut flag: the worst
relative difference of the losses (every step) and of the gradient profiles
at the start and the end.  Beside it, the exact path against itself with
the learning rate changed by one part in 2^23 (a last-bit change of every
update): where that moves the end as far, the runs amplify any last bit and
the batched engine's difference is the training's own sensitivity, not an
error of its own.  Nothing here asserts: it prints.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shortcutbench.measuring.family import configure_torch  # noqa: E402
from shortcutbench.measuring.mlp.batched_training import BATCH, train_runs_batched  # noqa: E402
from shortcutbench.measuring.mlp.training import (  # noqa: E402
    TrainingRun,
    regression_task,
    train_run,
)

DEPTHS, NORMS, SEEDS, WIDTH = (4, 32), ("none", "pre_layernorm"), (100, 101, 102), 32
NUDGE = 1 + 2 ** -23


def worst(a, b):
    """The worst relative difference of two equally long lists (0/0 is 0)."""
    return max((abs(p - q) / abs(p) if p else float(p != q) for p, q in zip(a, b)), default=0)


def group(depth, norm, steps, learning_rate=1e-3):
    return [TrainingRun(depth, WIDTH, seed, shortcut, norm=norm, steps=steps,
                        learning_rate=learning_rate)
            for seed in SEEDS for shortcut in (False, True)]


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main(steps):
    configure_torch()
    task = regression_task(WIDTH, 64)
    print(f"training, width {WIDTH}, seeds {SEEDS[0]}-{SEEDS[-1]} x both flags, {steps} steps, "
          f"Adam 1e-3, 64 samples; batched: {BATCH} runs a batch; one thread, median of 3")
    print(f"{'depth':>5} {'norm':>13} {'exact s':>8} {'batched s':>9} {'speed-up':>8}")
    agreement = []
    for depth in DEPTHS:
        for norm in NORMS:
            runs = group(depth, norm, steps)
            times = {"exact": [], "batched": []}
            for _ in range(3):
                seconds, exact = timed(lambda runs=runs: [train_run(r) for r in runs])
                times["exact"].append(seconds)
                seconds, batched = timed(lambda runs=runs: list(train_runs_batched(runs, *task)))
                times["batched"].append(seconds)
            nudged = [train_run(r) for r in group(depth, norm, steps, 1e-3 * NUDGE)]
            exact_s, batched_s = (statistics.median(times[k]) for k in ("exact", "batched"))
            print(f"{depth:>5} {norm:>13} {exact_s:>8.2f} {batched_s:>9.2f} "
                  f"{exact_s / batched_s:>7.2f}x", flush=True)
            for shortcut in (False, True):
                pick = [i for i, r in enumerate(runs) if r.shortcut == shortcut]
                rows = [max(worst(exact[i][k], other[i][k]) for i in pick)
                        for other in (batched, nudged) for k in range(3)]
                agreement.append((depth, norm, shortcut, rows))
    print("\nworst relative difference over the 3 seeds: batched against exact | "
          "exact with the learning rate x (1 + 2^-23) against exact")
    print(f"{'depth':>5} {'norm':>13} {'shortcut':>8} | {'loss':>8} {'start':>8} {'end':>8} | "
          f"{'loss':>8} {'start':>8} {'end':>8}")
    for depth, norm, shortcut, rows in agreement:
        print(f"{depth:>5} {norm:>13} {shortcut!s:>8} | "
              + " ".join(f"{v:>8.1e}" for v in rows[:3]) + " | "
              + " ".join(f"{v:>8.1e}" for v in rows[3:]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
