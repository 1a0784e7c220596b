"""Would stacking seeds pay for the book's GPT?  Printed, nothing asserted.

    .venv/bin/python benchmarks/gpt_stacking.py

The GPT is measured one cell at a time (README, the precision contract):
stacking its seeds through torch.func.vmap ran at 0.1-1.1x the per-cell
loop.  This measures the other way to stack them, a family's own batched
build: S models drawn exactly as the per-cell path draws them (manual_seed,
then GPTModel), their Linear and Embedding layers replaced by layers that
hold S weights and run one torch.bmm (the seeds are the batch dimension,
which the book's attention already handles), their LayerNorms' scale and
shift stacked; one forward and backward for all S, each seed's loss its own
cross-entropy (summed, so each gradient is its seed's alone).

Printed per block count and shortcut flag (the default config's reduced
GPT, pre-LN, one intra-op thread, S = 8 seeds):
- the stacked build, forward and backward a cell, without the statistics
  (an upper bound of what stacking gains), against the contract's per-cell
  runner with them (measuring/family.py's measure_cell);
- the worst relative difference of any parameter's mean |grad| between the
  two, over every seed.
"""

import copy
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402

from shortcutbench.core import families  # noqa: E402
from shortcutbench.core.families.gpt import MODEL_KEYS, gpt_config  # noqa: E402
from shortcutbench.measuring.family import configure_torch, family_of, measure_cell  # noqa: E402
from shortcutbench.measuring.gpt import GPTModel, LayerNorm, token_ids  # noqa: E402

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
OPTIONS = {key: DEFAULT["gpt"][key] for key in MODEL_KEYS}
SEEDS = 8
REPEATS = 3


class StackedLinear(nn.Module):
    """S Linear layers as one: x (S, tokens, in) -> (S, tokens, out)."""

    def __init__(self, linears):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in linears]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in linears]))
                     if linears[0].bias is not None else None)

    def forward(self, x):
        y = torch.bmm(x, self.weight.transpose(1, 2))
        return y if self.bias is None else y + self.bias.unsqueeze(1)


class StackedEmbedding(nn.Module):
    """S embeddings as one: ids (S, tokens) or positions (tokens,) -> (S, tokens, dim)."""

    def __init__(self, embeddings):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([e.weight.detach() for e in embeddings]))

    def forward(self, ids):
        if ids.dim() == 1:
            return self.weight[:, ids]
        return self.weight[torch.arange(self.weight.shape[0]).unsqueeze(1), ids]


def stacked(models):
    """One GPTModel whose parameters hold every model's, seed first."""
    batched = copy.deepcopy(models[0])
    by_name = [dict(model.named_modules()) for model in models]
    for name, module in list(batched.named_modules()):
        if isinstance(module, LayerNorm):
            for key in ("scale", "shift"):
                values = [getattr(found[name], key).detach() for found in by_name]
                setattr(module, key, nn.Parameter(torch.stack(values).unsqueeze(1)))
            continue
        kind = {nn.Linear: StackedLinear, nn.Embedding: StackedEmbedding}.get(type(module))
        if kind:
            parent, _, attribute = name.rpartition(".")
            setattr(batched.get_submodule(parent), attribute,
                    kind([found[name] for found in by_name]))
    return batched


def stacked_cells(blocks, shortcut, norm):
    """The stacked build, forward and backward of SEEDS cells; the model."""
    cfg = gpt_config(blocks, OPTIONS["emb_dim"], OPTIONS["n_heads"], OPTIONS["vocab_size"],
                     OPTIONS["context_length"], OPTIONS["qkv_bias"])
    models = []
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        models.append(GPTModel(cfg, shortcut, norm))
    model = stacked(models).eval()
    ids, targets = token_ids(OPTIONS["n_tokens"], OPTIONS["vocab_size"])
    logits = model(ids.expand(SEEDS, -1))
    sum(F.cross_entropy(logits[s], targets[0]) for s in range(SEEDS)).backward()
    return model


def exact_cells(blocks, shortcut, norm):
    family = family_of("gpt", OPTIONS)
    fields = families.spec("gpt").cell_fields(OPTIONS)
    return [measure_cell(family, {"model": "gpt", "depth": blocks, "seed": seed,
                                  "shortcut": shortcut, "shortcut_scale": 1.0,
                                  "branch_scale": "1", "norm": norm, "device": "cpu",
                                  "dtype": "float32", **fields}, OPTIONS)
            for seed in range(SEEDS)]


def best_time(function, *args):
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    configure_torch()
    print(f"torch {torch.__version__}, {SEEDS} seeds stacked, one thread, best of {REPEATS}")
    print(f"{'blocks':>6} {'shortcut':>8} {'per cell':>10} {'stacked':>10} {'ratio':>7} "
          f"{'worst rel. diff of mean |grad|':>32}")
    for blocks in (1, 8, 32):
        for shortcut in (True, False):
            exact_s, records = best_time(exact_cells, blocks, shortcut, "pre_layernorm")
            stacked_s, model = best_time(stacked_cells, blocks, shortcut, "pre_layernorm")
            grads = dict(model.named_parameters())
            worst = 0.0
            for seed, cell in enumerate(records):
                for record in cell:
                    ours = grads[record["param"]].grad[seed].abs().mean().item()
                    if record["grad_abs_mean"]:
                        worst = max(worst, abs(ours / record["grad_abs_mean"] - 1))
            print(f"{blocks:>6} {str(shortcut):>8} {exact_s / SEEDS * 1e3:>7.1f} ms "
                  f"{stacked_s / SEEDS * 1e3:>7.1f} ms {exact_s / stacked_s:>6.2f}x {worst:>32.2g}")


if __name__ == "__main__":
    main()
