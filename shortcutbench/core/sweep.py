"""The sweep: which cells to measure, and how they are grouped into jobs.

Torch-free and pandas-free: this runs inside Snakemake while it builds the DAG.

The config's top-level axes are the main sweep (results/gradients.csv); each
entry of `studies` is another sweep, the main one with some axes replaced,
whose tables go to results/studies/NAME/.

A *chunk* is one job's work: every depth, shortcut variant, init and norm,
for a block of seeds, at one (device, dtype, activation, width).  Importing
torch costs a process ~1.7 s while a cell costs milliseconds, so a job must
hold many cells; the chunk's path says exactly which:

    results/cells/device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~0-9.parquet

Seeds fall into blocks of `seeds_per_job` by value (seed // seeds_per_job).
When a sweep grows, chunks already on disk whose seeds are all still wanted
are kept, and only the seeds no chunk holds are measured: adding seed 10 to
seeds 0-9 adds the chunk `seeds~10` instead of re-measuring `seeds~0-10`.
A chunk's numbers do not depend on which chunk a cell was measured in (every
cell is seeded on its own), so the final tables are the same bytes either way.

Every other model family (core/families/: the book's GPT, He et al.'s
ResNet, the user's own) has chunks of its own (FamilyChunk), one per
(device, dtype, block of seeds), holding every depth x norm x shortcut cell
of the family's one model config:

    results/cells/model~gpt/device~cpu/dtype~float32/seeds~0-4.parquet

The MLP's chunk paths have no model~ part.  Studies are the MLP's.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shortcutbench.core import families
from shortcutbench.core.family_check import family_source
from shortcutbench.core.records import BRANCH_RULE, branch_label

# What a measuring job is handed (Chunk.params(), FamilyChunk.params()): plain
# JSON-able values, which Snakemake also compares to decide a re-run.
ChunkParams = dict[str, Any]

# The keys of a sweep (the main one or a study) and what the config omits.
AXES = ("depths", "widths", "seeds", "shortcut", "shortcut_scales", "devices", "activations",
        "inits", "norms", "dtypes", "branch_scales")
CHUNK_PATTERN = (r"((studies/[a-z][a-z0-9_]*/)?cells/device~[a-z0-9-]+/dtype~[a-z0-9]+/"
                 r"activation~[a-z_]+/width~[0-9]+/seeds~[0-9_-]+"
                 r"|cells/model~[a-z][a-z0-9_]*/device~[a-z0-9-]+/dtype~[a-z0-9]+/seeds~[0-9_-]+)")
PREFIX_PATTERN = r"(studies/[a-z][a-z0-9_]*/)?"


def seed_runs(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 3, 7, 9, 10] -> [(0, 3), (7, 7), (9, 10)]: runs of consecutive seeds."""
    seeds = sorted(int(s) for s in seeds)
    runs = []
    for _, run in itertools.groupby(enumerate(seeds), key=lambda p: p[1] - p[0]):
        run = [seed for _, seed in run]
        runs.append((run[0], run[-1]))
    return runs


def seeds_slug(seeds: Iterable[int]) -> str:
    """[0, 1, 2, 3, 7, 9, 10] -> '0-3_7_9-10' (a chunk's file name)."""
    return "_".join(str(a) if a == b else f"{a}-{b}" for a, b in seed_runs(seeds))


def parse_seeds_slug(text: str) -> tuple[int, ...]:
    """'0-3_7' -> (0, 1, 2, 3, 7); the inverse of seeds_slug."""
    seeds = []
    for part in text.split("_"):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return tuple(seeds)


def device_slug(device: str) -> str:
    """'cuda:1' -> 'cuda-1': no colons in paths."""
    return device.replace(":", "-")


def study_prefix(study: str) -> str:
    """Where a study's files live under results/ (and logs/): '' for the main sweep."""
    return f"studies/{study}/" if study else ""


def shortcut_variants(shortcuts, scales):
    """(shortcut, lambda) pairs: lambda only means something with a shortcut;
    cells without one record 0.0."""
    variants = [(False, 0.0)] if False in shortcuts else []
    if True in shortcuts:
        variants += [(True, float(scale)) for scale in sorted(scales)]
    return variants


def branch_labels(values):
    """The config's branch scales -> their labels (records.branch_label), in a
    fixed order: numbers by value, then the rule "1/sqrt(depth)"."""
    labels = {branch_label(v) for v in values}
    return tuple(sorted(labels, key=lambda label: (label == BRANCH_RULE,
                                                   0.0 if label == BRANCH_RULE else float(label))))


# The keys of every chunk's params besides its family's options.
CHUNK_KEYS = ("model", "device", "dtype", "seeds", "depths", "shortcuts", "norms", "options")


def chunk_family(params: ChunkParams) -> str:
    """The family a chunk's params are of (the top-level family's name none)."""
    return params.get("model", families.top_level_family())


def chunk_options(params: ChunkParams) -> dict[str, Any]:
    """What a chunk's family needs besides its swept axes: its `options`; the
    top-level family's chunks hold them beside the shared keys, as its
    chunks' params always have (Snakemake re-runs a job whose params change)."""
    if "options" in params:
        return params["options"]
    return {key: value for key, value in params.items() if key not in CHUNK_KEYS}


def cells_of(params: ChunkParams) -> list[dict[str, Any]]:
    """Every cell of a chunk, from its params, as plain dicts with
    records.Cell's fields, in a fixed order.  The branch scale alpha only
    means something with a shortcut; cells without one record "1".  A family
    chunk's cells (params["model"] names a family other than the MLP) are
    family_cells'."""
    if params.get("model", families.top_level_family()) != families.top_level_family():
        return family_cells(params)
    alphas = branch_labels(params.get("branch_scales", [1]))
    return [
        {"model": "mlp", "depth": depth, "width": params["width"], "seed": seed,
         "shortcut": shortcut, "shortcut_scale": scale, "branch_scale": alpha,
         "activation": params["activation"], "init": init, "norm": norm,
         "device": params["device"], "dtype": params["dtype"]}
        for seed in params["seeds"] for depth in params["depths"]
        for init in params["inits"] for norm in params["norms"]
        for shortcut, scale in shortcut_variants(params["shortcuts"], params["shortcut_scales"])
        for alpha in (alphas if shortcut else ("1",))
    ]


def family_cells(params: ChunkParams) -> list[dict[str, Any]]:
    """Every cell of a family chunk, in the order seed, depth, norm, shortcut
    (without first), lambda, alpha.  A cell without shortcut records lambda
    0 and alpha "1"; one with records the family's shortcut_scales and
    branch_scales (the generic switch's; [1] where it names none).  Width,
    activation, init (and norm, where the family has no norm axis) are its
    model config's (families.FamilySpec.cell_fields)."""
    fields = families.spec(params["model"]).cell_fields(params["options"])
    options = params["options"]
    alphas = branch_labels(options.get("branch_scales", [1]))
    return [
        {"model": params["model"], "depth": depth, "width": fields["width"], "seed": seed,
         "shortcut": shortcut, "shortcut_scale": scale, "branch_scale": alpha,
         "activation": fields["activation"], "init": fields["init"], "norm": norm,
         "device": params["device"], "dtype": params["dtype"]}
        for seed in params["seeds"] for depth in params["depths"]
        for norm in params["norms"] for shortcut, scale in shortcut_variants(
            params["shortcuts"], options.get("shortcut_scales", [1.0]))
        for alpha in (alphas if shortcut else ("1",))
    ]


@dataclass(frozen=True)
class Chunk:
    study: str
    device: str
    dtype: str
    activation: str
    width: int
    seeds: tuple[int, ...]
    depths: tuple[int, ...]
    shortcuts: tuple[bool, ...]
    shortcut_scales: tuple[float, ...]
    inits: tuple[str, ...]
    norms: tuple[str, ...]
    branch_scales: tuple[str, ...] = ("1",)
    engine: str = "exact"  # the config's `engine` (measuring/batched.py)
    model = families.top_level_family()

    @property
    def study_prefix(self) -> str:
        return study_prefix(self.study)

    @property
    def group_path(self) -> str:
        return (f"{study_prefix(self.study)}cells/device~{device_slug(self.device)}/"
                f"dtype~{self.dtype}/activation~{self.activation}/width~{self.width}")

    @property
    def name(self) -> str:
        """The chunk's id; its records are results/{name}.parquet (core.store)."""
        return f"{self.group_path}/seeds~{seeds_slug(self.seeds)}"

    def params(self) -> ChunkParams:
        """What the measuring job needs; also what Snakemake compares to decide a re-run."""
        return {"device": self.device, "dtype": self.dtype, "activation": self.activation,
                "width": self.width, "seeds": list(self.seeds), "depths": list(self.depths),
                "shortcuts": list(self.shortcuts),
                "shortcut_scales": list(self.shortcut_scales), "inits": list(self.inits),
                "norms": list(self.norms), "branch_scales": list(self.branch_scales),
                # only when batched: the exact engine's params (and so its
                # chunks, which Snakemake re-runs when they change) stay as they were
                **({"engine": self.engine} if self.engine != "exact" else {})}

    def cells(self) -> list[dict[str, Any]]:
        return cells_of(self.params())


@dataclass(frozen=True)
class FamilyChunk:
    """One measuring job of a model family other than the MLP
    (core/families/): every depth x norm x shortcut cell of its one model
    config (`options`), for a block of seeds, on one device in one dtype."""
    model: str
    device: str
    dtype: str
    seeds: tuple[int, ...]
    depths: tuple[int, ...]
    shortcuts: tuple[bool, ...]
    norms: tuple[str, ...]
    options: dict[str, Any] = field(hash=False, compare=False)
    mem: int = 0  # megabytes its biggest cell needs (families.FamilySpec.mem_mb)
    study: str = ""

    @property
    def study_prefix(self) -> str:
        return ""

    @property
    def group_path(self) -> str:
        return f"cells/model~{self.model}/device~{device_slug(self.device)}/dtype~{self.dtype}"

    @property
    def name(self) -> str:
        """The chunk's id; its records are results/{name}.parquet (core.store)."""
        return f"{self.group_path}/seeds~{seeds_slug(self.seeds)}"

    def params(self) -> ChunkParams:
        return {"model": self.model, "device": self.device, "dtype": self.dtype,
                "seeds": list(self.seeds), "depths": list(self.depths),
                "shortcuts": list(self.shortcuts), "norms": list(self.norms),
                "options": self.options}

    def cells(self) -> list[dict[str, Any]]:
        return family_cells(self.params())

    def mem_mb(self) -> int:
        return self.mem


def _existing_seed_sets(group_dir):
    """Seed sets of the chunk files already in one group's folder (Parquet;
    CSV chunks of earlier versions are not reused)."""
    try:
        names = os.listdir(group_dir)
    except OSError:
        return []
    found = []
    for name in names:
        match = re.fullmatch(r"seeds~([0-9_-]+)\.parquet", name)
        if match:
            try:
                found.append(parse_seeds_slug(match.group(1)))
            except ValueError:
                continue
    return found


def _choose_chunks(wanted, existing, seeds_per_job):
    """Split the wanted seeds into chunks, reusing existing chunks where possible.

    An existing chunk is reused if all its seeds are wanted and none is taken
    by a chunk reused before it (largest first, then lowest seed).  The seeds
    left over go into new chunks, one per block of `seeds_per_job` seeds.
    """
    wanted = set(wanted)
    taken = set()
    chosen = []
    for seeds in sorted(set(existing), key=lambda s: (-len(s), s)):
        if set(seeds) <= wanted and not taken & set(seeds):
            chosen.append(tuple(sorted(seeds)))
            taken |= set(seeds)
    left = sorted(wanted - taken)
    for _, block in itertools.groupby(left, key=lambda seed: seed // seeds_per_job):
        chosen.append(tuple(block))
    return sorted(chosen)


def study_sweeps(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{study name ('' for the main sweep): its axes}, from a validated config
    whose 'devices' are already expanded: the MLP's sweeps, none without it."""
    if families.top_level_family() not in config.get("models", [families.top_level_family()]):
        return {}
    main = {axis: config[axis] for axis in AXES if axis in config}
    sweeps = {"": main}
    for name, overrides in sorted(config.get("studies", {}).items()):
        sweeps[name] = {**main, **overrides}
    return sweeps


def plan_chunks(config: dict[str, Any], results_dir: str = "results",
                checks: dict[str, Any] | None = None) -> list[AnyChunk]:
    """The chunks that together hold every cell of every sweep in the config:
    the MLP's, then every other family's.  checks: {user family: what its
    check measured} (its memory estimate comes from there)."""
    chunks = []
    for study, sweep in study_sweeps(config).items():
        inner = dict(depths=tuple(sorted(sweep["depths"])),
                     shortcuts=tuple(sorted(sweep["shortcut"])),
                     shortcut_scales=tuple(sorted(float(s) for s in sweep["shortcut_scales"])),
                     inits=tuple(sorted(sweep["inits"])), norms=tuple(sorted(sweep["norms"])),
                     branch_scales=branch_labels(sweep.get("branch_scales", [1])),
                     engine=config.get("engine", "exact"))
        for device, dtype, activation, width in itertools.product(
                sweep["devices"], sweep["dtypes"], sweep["activations"], sweep["widths"]):
            probe = Chunk(study, device, dtype, activation, width, (), **inner)
            existing = _existing_seed_sets(os.path.join(results_dir, probe.group_path))
            for seeds in _choose_chunks(sweep["seeds"], existing, config["seeds_per_job"]):
                chunks.append(Chunk(study, device, dtype, activation, width, seeds, **inner))
    return chunks + plan_family_chunks(config, results_dir, checks)


def plan_family_chunks(config: dict[str, Any], results_dir: str = "results",
                       checks: dict[str, Any] | None = None) -> list[FamilyChunk]:
    """Every family's chunks but the MLP's: one per (device, dtype, block of
    seeds) of its section."""
    chunks = []
    for name, section in families.sections(config).items():
        spec = families.spec(name)
        options = spec.options(section)
        if name not in families.SHIPPED:
            # in its chunks' params: an edit to the module re-measures them
            source = family_source(section, os.getcwd())
            options["source_sha256" if "factory" in section else "library"] = source
        inner = dict(depths=tuple(sorted(section["depths"])),
                     shortcuts=tuple(sorted(section["shortcut"])), norms=spec.norms(section),
                     options=options)
        for device, dtype in itertools.product(section["devices"], section["dtypes"]):
            probe = FamilyChunk(name, device, dtype, (), **inner)
            existing = _existing_seed_sets(os.path.join(results_dir, probe.group_path))
            mem = spec.mem_mb(section, dtype, (checks or {}).get(name))
            for seeds in _choose_chunks(section["seeds"], existing, section["seeds_per_job"]):
                chunks.append(FamilyChunk(name, device, dtype, seeds, mem=mem, **inner))
    return chunks


def n_cells(sweep: dict[str, Any]) -> int:
    """How many cells one sweep (main or study) has."""
    alphas = len(branch_labels(sweep.get("branch_scales", [1])))
    arms = shortcut_variants(sweep["shortcut"], sweep["shortcut_scales"])
    variants = sum(alphas if shortcut else 1 for shortcut, _ in arms)
    return (len(sweep["devices"]) * len(sweep["dtypes"]) * len(sweep["activations"])
            * len(sweep["widths"]) * len(sweep["seeds"]) * len(sweep["depths"])
            * len(sweep["inits"]) * len(sweep["norms"]) * variants)


def training_jobs(training):
    """The training config (validated) -> {job name: params}, one job of
    shortcutbench.training per (activation, width, norm, depth): deep runs
    are the slow ones, so depths go to jobs that can run side by side."""
    if not training["enabled"]:
        return {}
    jobs = {}
    for activation in training["activations"]:
        for width in training["widths"]:
            for norm in training["norms"]:
                for depth in training["depths"]:
                    name = f"activation~{activation}/width~{width}/norm~{norm}/depth~{depth}"
                    jobs[name] = {"activation": activation, "width": width, "norm": norm,
                                  "depth": depth, "seeds": sorted(training["seeds"]),
                                  "shortcut": sorted(training["shortcut"]),
                                  **{k: training[k] for k in ("steps", "optimizer",
                                                              "learning_rate", "samples")}}
    return jobs


# A measuring job of any family.
AnyChunk = Chunk | FamilyChunk
