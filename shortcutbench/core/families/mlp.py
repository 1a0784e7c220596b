"""The book's MLP (chapter 4.4) as a family: its spec.

Its section is the config's top level: depths, widths, seeds, shortcut,
activations, inits, norms, shortcut_scales, branch_scales, dtypes and
devices are the main sweep's axes, and `studies` and `training` are its
further sweeps (core/sweep.py).  Its measuring code is the package measuring/mlp/.
"""

import itertools
import math

from shortcutbench.core import resources
from shortcutbench.core.axes import branch_labels, device_slug, shortcut_arms, study_prefix
from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.families import FamilySpec, Layout, register_family

NAME = "mlp"

SPEC = register_family(FamilySpec(
    NAME, "The book\u2019s MLP (chapter 4.4)", "layers", "",
    Layout(profile=r"layers\.\d+\.0\.weight", stream=True),
    "shortcutbench.measuring.mlp.family:MLPFamily", generic_figures=(),
    records_per_block=1,  # one record a layer (its weight)
    main_variant={axis: BOOK_CASE[axis] for axis in ("width", "activation", "init", "norm",
                                                      "dtype", "device")},
    switch="one residual add per layer where the shapes match, x = x + layer(x) "
           "(ExampleDeepNeuralNetwork.forward and the fast path's forward, "
           "shortcutbench/measuring/mlp/model.py); without shortcut x = layer(x), and with "
           "shortcut_scale \u03bb and branch_scale \u03b1, x = \u03bb\u00b7x + "
           "\u03b1\u00b7layer(x)",
    findings="shortcutbench.analysis.mlp.laws:findings",
    sections="shortcutbench.analysis.mlp.report", template="families/mlp.html.j2",
    rules="workflow/rules/mlp.smk",
    order=0, planning="shortcutbench.core.families.mlp",
    cell_values="shortcutbench.core.cell_stats:layer_values_many",
    # (its measuring code is the package measuring/mlp/, its own by its name)
    own_modules=("shortcutbench.core.book",)))


# ------------------------------------------------ its chunks (core/sweep.py)

# The keys of one of its sweeps (the main one or a study) in the config.
AXES = ("depths", "widths", "seeds", "shortcut", "shortcut_scales", "devices", "activations",
        "inits", "norms", "dtypes", "branch_scales")


def sweeps(config):
    """{study name ('' for the main sweep): its axes}, from a validated config
    whose 'devices' are already expanded; none where `models` leaves it out.
    Each study is the main sweep with some axes replaced."""
    if NAME not in config.get("models", [NAME]):
        return {}
    main = {axis: config[axis] for axis in AXES if axis in config}
    found = {"": main}
    for name, overrides in sorted(config.get("studies", {}).items()):
        found[name] = {**main, **overrides}
    return found


# The batched engine (measuring/mlp/batched.py): seeds stacked in a batch
# (fixed: another size could change a cell's bits), and the most parameters
# a batch may stack; a cell whose batch would stack more is measured the
# exact way (its matmuls are big enough on their own).
BATCH = 32
BATCH_ELEMENTS = 2 ** 22
# A batch's peak memory above the baseline, per byte of its stacked weights
# (measured, depth 32 x width 64 x 32 seeds: 335 MB in float32, 401 MB in
# float64, against 239 MB for one cell; weights, gradients and the
# activations of every seed held at once; margin included).
BATCH_PEAK_PER_BYTE = 6


def batchable(depth, width):
    """Whether the batched engine stacks a cell of this shape: its config
    alone decides."""
    return BATCH * resources.cell_parameters(depth, width) <= BATCH_ELEMENTS


def chunk_mem_mb(depths, width, dtype, engine="exact"):
    """The estimated peak memory (MB) of measuring a chunk's cells: its
    deepest cell's, or with the batched engine its deepest stacked batch's
    where that is more."""
    mem = resources.cell_mem_mb(max(depths), width, dtype)
    stacked = [depth for depth in depths if batchable(depth, width)]
    if engine == "batched" and stacked:
        stacked_bytes = (BATCH * resources.cell_parameters(max(stacked), width)
                         * resources.DTYPE_BYTES[dtype])
        mem = max(mem, resources.BASELINE_MB
                  + math.ceil(BATCH_PEAK_PER_BYTE * stacked_bytes / resources.MB))
    return mem


# Training (measuring/mlp/batched_training.py): runs of one group trained at
# once by the batched engine (fixed, as BATCH), and a run's peak memory above
# the baseline per float32 parameter and per activation (samples x width x
# depth), measured with Adam: depth 16 x width 1024 and 2048 (one run) 5.6
# and 5.1 bytes per parameter's 4; depth 16 and 64 x width 1024, 8 runs,
# 64 and 4,096 samples: 4.3 activations' 4 bytes each; margins included
# (the estimates are 1.1-1.2x those peaks).
TRAINING_BATCH = 8  # fixed: a different size could change a run's bits
TRAINING_COPIES = 6
TRAINING_ACTIVATIONS = 5


def training_mem_mb(group):
    """The estimated peak memory (MB) of training one group (a training
    job's, sweep.training_jobs, is its biggest group's): every run at once
    with the batched engine, one at a time with the exact one."""
    runs = TRAINING_BATCH if group.get("engine") == "batched" else 1
    depth, width = group["depth"], group["width"]
    floats = (TRAINING_COPIES * resources.cell_parameters(depth, width)
              + TRAINING_ACTIVATIONS * group["samples"] * width * depth)
    return resources.BASELINE_MB + math.ceil(runs * 4 * floats / resources.MB)


def training_groups(job):
    """The groups of a training job (sweep.training_jobs): a pack's, or the
    one group it is."""
    return job.get("groups", [job])


def training_job_mem_mb(job):
    return max(training_mem_mb(group) for group in training_groups(job))


def training_memory_problem(jobs, max_mem_mb=None):
    """A message naming the biggest training group that cannot fit, its
    estimate, the limit and the fix, or None."""
    groups = [group for job in jobs for group in training_groups(job)]
    if not groups:
        return None
    worst = max(groups, key=training_mem_mb)
    return resources.too_big(
        training_mem_mb(worst), max_mem_mb,
        f"the training group depth {worst['depth']} x width {worst['width']} "
        f"({f'{TRAINING_BATCH} runs at once' if worst.get('engine') == 'batched' else 'one run'}"
        f", {worst['samples']} samples)",
        "its estimate, shortcutbench/core/families/mlp.py",
        "smaller training.widths or training.depths, or fewer training.samples")


def variants(config, checks=None):
    """Its chunks' variants, before their seeds are split into blocks: one
    per study x device x dtype x activation x width, every depth, shortcut,
    lambda, alpha, init and norm of it in each chunk (core/sweep.py)."""
    out = []
    for study, sweep in sweeps(config).items():
        shared = {"shortcut_scales": tuple(sorted(float(s) for s in sweep["shortcut_scales"])),
                  "inits": tuple(sorted(sweep["inits"])),
                  "branch_scales": branch_labels(sweep.get("branch_scales", [1])),
                  "engine": config.get("engine", "exact")}
        depths = tuple(sorted(sweep["depths"]))
        for device, dtype, activation, width in itertools.product(
                sweep["devices"], sweep["dtypes"], sweep["activations"], sweep["widths"]):
            out.append({"study": study, "device": device, "dtype": dtype, "depths": depths,
                        "shortcuts": tuple(sorted(sweep["shortcut"])),
                        "norms": tuple(sorted(sweep["norms"])),
                        "options": {"activation": activation, "width": width, **shared},
                        "mem": chunk_mem_mb(depths, width, dtype, shared["engine"]),
                        "seeds": sweep["seeds"], "seeds_per_job": config["seeds_per_job"]})
    return out


def chunk_folder(chunk):
    """results/[studies/NAME/]cells/device~D/dtype~T/activation~A/width~W."""
    return (f"{study_prefix(chunk.study)}cells/device~{device_slug(chunk.device)}/"
            f"dtype~{chunk.dtype}/activation~{chunk.options['activation']}/"
            f"width~{chunk.options['width']}")


def chunk_params(chunk):
    """Its chunks' params: its options beside the shared keys, in the order
    they always had (Snakemake re-runs a job whose params change); the
    engine only when batched."""
    options = chunk.options
    engine = options.get("engine", "exact")
    return {"device": chunk.device, "dtype": chunk.dtype, "activation": options["activation"],
            "width": options["width"], "seeds": list(chunk.seeds), "depths": list(chunk.depths),
            "shortcuts": list(chunk.shortcuts),
            "shortcut_scales": list(options["shortcut_scales"]),
            "inits": list(options["inits"]), "norms": list(chunk.norms),
            "branch_scales": list(options["branch_scales"]),
            **({"engine": engine} if engine != "exact" else {})}


def chunk_cells(params):
    """Every cell of one of its chunks, from its params, as plain dicts with
    records.Cell's fields, in a fixed order.  The branch scale alpha only
    means something with a shortcut; cells without one record "1"."""
    arms = shortcut_arms(params["shortcuts"], params["shortcut_scales"],
                         params.get("branch_scales", [1]))
    return [
        {"model": NAME, "depth": depth, "width": params["width"], "seed": seed,
         "shortcut": shortcut, "shortcut_scale": scale, "branch_scale": alpha,
         "activation": params["activation"], "init": init, "norm": norm,
         "device": params["device"], "dtype": params["dtype"]}
        for seed in params["seeds"] for depth in params["depths"]
        for init in params["inits"] for norm in params["norms"]
        for shortcut, scale, alpha in arms
    ]


def memory_words(chunk):
    """(its biggest cell, how its memory was estimated, the fix) for the
    message refusing a chunk that cannot fit."""
    depth, width = max(chunk.depths), chunk.options["width"]
    where = f" of study {chunk.study!r}" if chunk.study else ""
    return (f"the cell depth {depth} x width {width} ({chunk.dtype}){where}",
            f"{resources.cell_parameters(depth, width):,} parameters; "
            f"shortcutbench/core/resources.py: {resources.BASELINE_MB} MB + "
            f"~{resources.PEAK_PER_PARAMETER_BYTE} x the parameters' bytes",
            "lower the largest depth or width")


def n_cells(sweep):
    """How many cells one of its sweeps (main or study) has."""
    arms = shortcut_arms(sweep["shortcut"], sweep["shortcut_scales"],
                         sweep.get("branch_scales", [1]))
    return (len(sweep["devices"]) * len(sweep["dtypes"]) * len(sweep["activations"])
            * len(sweep["widths"]) * len(sweep["seeds"]) * len(sweep["depths"])
            * len(sweep["inits"]) * len(sweep["norms"]) * len(arms))
