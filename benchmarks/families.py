"""What the families other than the MLP cost to measure, printed (nothing asserted).

    .venv/bin/python benchmarks/families.py

1. per cell, through the contract's runner (measuring/family.py): the default
   config's reduced GPT at a few block counts and the ResNet at He et al.'s
   depths, without and with shortcuts, median of several runs;
2. the 124M GPT cell (GPT_CONFIG_124M, 64 tokens) and ResNet-110 at batch 16
   and 64: time and peak RSS in a fresh process (the first cell of a job),
   beside each family's memory estimate (core/families/'s mem_mb), which is
   what a measuring job asks a cluster for;
3. the default config's GPT and ResNet parts: their cells' CPU time in one
   thread.

One intra-op thread throughout, as measuring jobs run.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from shortcutbench.core import families  # noqa: E402
from shortcutbench.core.families import gpt, resnet  # noqa: E402
from shortcutbench.measuring.family import configure_torch, family_of, measure_cell  # noqa: E402

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
GPT_OPTIONS = {k: DEFAULT["gpt"][k] for k in gpt.MODEL_KEYS}
REPEATS = 5


def cell(model, depth, shortcut, norm, seed=0):
    fields = families.spec(model).cell_fields(GPT_OPTIONS if model == "gpt" else {})
    return {"model": model, "depth": depth, "seed": seed, "shortcut": shortcut,
            "shortcut_scale": 1.0 if shortcut else 0.0, "branch_scale": "1", "norm": norm,
            "device": "cpu", "dtype": "float32", **{k: v for k, v in fields.items()
                                                    if k != "norm"}}


def timed(model, options, fields):
    return median_time(family_of(model, options), fields, options)


def median_time(family, fields, options):
    """One cell's time through the contract's runner, median of REPEATS
    after a warm-up run."""
    measure_cell(family, fields, options)  # warm
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        measure_cell(family, fields, options)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def per_cell():
    print(f"1. per cell through the contract's runner (median of {REPEATS})")
    print(f"   GPT, the default config's (emb {GPT_OPTIONS['emb_dim']}, "
          f"{GPT_OPTIONS['n_heads']} heads, {GPT_OPTIONS['n_tokens']} tokens), pre-LN:")
    for blocks in (8, 32, 64):
        row = [timed("gpt", GPT_OPTIONS, cell("gpt", blocks, s, "pre_layernorm"))
               for s in (False, True)]
        print(f"     {blocks:>3} blocks: {row[0] * 1e3:6.1f} ms without, "
              f"{row[1] * 1e3:6.1f} ms with shortcuts")
    print("   ResNet, batch 16:")
    for depth in resnet.HE_DEPTHS:
        row = [timed("resnet", {"batch_size": 16}, cell("resnet", depth, s, "batchnorm"))
               for s in (False, True)]
        print(f"     {depth:>3} layers: {row[0] * 1e3:6.1f} ms plain, {row[1] * 1e3:6.1f} ms "
              f"ResNet")


# The peak is this process's high-water mark (VmHWM), not ru_maxrss: on Linux
# ru_maxrss carries over the peak of the process that forked it.
CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from shortcutbench.measuring.family import configure_torch, family_of, measure_cell

def high_water_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

configure_torch()
baseline = high_water_kb()
options, fields = json.loads(sys.argv[1])
family = family_of(fields["model"], options)
started = time.perf_counter()
measure_cell(family, fields, options)
seconds = time.perf_counter() - started
peak = high_water_kb()
json.dump(dict(seconds=seconds, peak_mb=peak / 1024, baseline_mb=baseline / 1024), sys.stdout)
"""


def in_a_fresh_process(options, fields):
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO)),
                          json.dumps([options, fields])],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def big_cells():
    print("2. big cells, each in a fresh process: time, peak RSS, the family's estimate")
    options = {"emb_dim": 768, "n_heads": 12, "vocab_size": 50257, "context_length": 1024,
               "n_tokens": 64, "qkv_bias": False}
    fields = {**cell("gpt", 12, True, "pre_layernorm", seed=123), "width": 768}
    run = in_a_fresh_process(options, fields)
    section = {**options, "depths": [12]}
    estimate = families.spec("gpt").mem_mb(section, "float32")
    print(f"   GPT 124M, 64 tokens: {run['seconds']:5.2f} s, peak {run['peak_mb']:5.0f} MB "
          f"(torch alone {run['baseline_mb']:.0f} MB); estimate {estimate:,} MB")
    for batch in (16, 64):
        run = in_a_fresh_process({"batch_size": batch}, cell("resnet", 110, False, "batchnorm"))
        estimate = families.spec("resnet").mem_mb({"depths": [110], "batch_size": batch},
                                                  "float32")
        print(f"   ResNet-110, batch {batch}: {run['seconds']:5.2f} s, peak "
              f"{run['peak_mb']:5.0f} MB (torch alone {run['baseline_mb']:.0f} MB); estimate "
              f"{estimate:,} MB")


def default_parts():
    print("3. the default config's GPT and ResNet parts, CPU time in one thread")
    for model in ("gpt", "resnet"):
        section = DEFAULT[model]
        depths = section["blocks"] if model == "gpt" else section["depths"]
        norms = section["norms"] if model == "gpt" else ["batchnorm"]
        options = GPT_OPTIONS if model == "gpt" else {"batch_size": section["batch_size"]}
        family = family_of(model, options)
        cells = [cell(model, d, s, n, seed) for d in depths for n in norms
                 for s in section["shortcut"] for seed in section["seeds"]]
        started = time.process_time()
        for fields in cells:
            measure_cell(family, fields, options)
        print(f"   {model}: {len(cells)} cells, {time.process_time() - started:.1f} s "
              f"(plus ~1.5 s per job to import torch)")


if __name__ == "__main__":
    configure_torch()
    per_cell()
    big_cells()
    default_parts()
