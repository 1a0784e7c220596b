"""The sweep: which cells to measure, and how they are grouped into jobs.

Torch-free and pandas-free: this runs inside Snakemake while it builds the DAG.

A *chunk* (Chunk) is one job's work, of any family: every depth, shortcut
variant and norm of one variant of the family (its `options`: its model
config), for a block of seeds, on one device in one dtype.  Importing torch
costs a process ~1.7 s while a cell costs milliseconds, so a job must hold
many cells; the chunk's path says exactly which:

    results/cells/model~NAME/device~cpu/dtype~float32/seeds~0-4.parquet

A family's spec (core/families/) may name a module that plans its chunks
where this generic planning does not fit (`planning`): the top-level
family's, for example, has one variant per study x device x dtype x
activation x width, chunk paths without a model~ part and its options
beside the shared keys in its params:

    results/cells/device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~0-9.parquet

Seeds fall into blocks of `seeds_per_job` by value (seed // seeds_per_job).
When a sweep grows, chunks already on disk whose seeds are all still wanted
are kept, and only the seeds no chunk holds are measured: adding seed 10 to
seeds 0-9 adds the chunk `seeds~10` instead of re-measuring `seeds~0-10`.
A chunk's numbers do not depend on which chunk a cell was measured in (every
cell is seeded on its own), so the final tables are the same bytes either way.

Small chunks of one family, study, device and dtype are packed into one job
(Pack), up to the family's `cells_per_job` cells:

    results/cells/model~NAME/device~cpu/dtype~float32/pack~5d4eeb5974b0.parquet

named by the digest of its chunks' names, which its job writes beside its
partial results (results/partials/.../pack~....chunks.json): a later plan
keeps a finished pack whose chunks are all still wanted and packs the rest
again the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from shortcutbench.core import families, resources
from shortcutbench.core.axes import (  # noqa: F401  (importable from here too)
    branch_labels,
    device_slug,
    parse_seeds_slug,
    seed_runs,
    seeds_slug,
    shortcut_arms,
    shortcut_variants,
    study_prefix,
)
from shortcutbench.core.family_check import family_source
from shortcutbench.core.files import write_json

# What a measuring job is handed (Chunk.params()): plain JSON-able values,
# which Snakemake also compares to decide a re-run.
ChunkParams = dict[str, Any]

CHUNK_PATTERN = (r"((studies/[a-z][a-z0-9_]*/)?cells/device~[a-z0-9-]+/dtype~[a-z0-9]+/"
                 r"activation~[a-z_]+/width~[0-9]+/seeds~[0-9_-]+"
                 r"|cells/model~[a-z][a-z0-9_]*/device~[a-z0-9-]+/dtype~[a-z0-9]+/seeds~[0-9_-]+"
                 r"|(studies/[a-z][a-z0-9_]*/)?cells/model~[a-z][a-z0-9_]*/device~[a-z0-9-]+/"
                 r"dtype~[a-z0-9]+/pack~[0-9a-f]{12})")
PREFIX_PATTERN = r"(studies/[a-z][a-z0-9_]*/)?"
# The keys of every chunk's params besides its family's options.
CHUNK_KEYS = ("model", "device", "dtype", "seeds", "depths", "shortcuts", "norms", "options")


def _planning(name: str, function: str):
    """A family's own planning function (its spec's `planning` module), or None."""
    module = families.spec(name).planning
    return getattr(importlib.import_module(module), function, None) if module else None


def chunk_family(params: ChunkParams) -> str:
    """The family a chunk's (or a pack's) params are of (the top-level
    family's where they name none)."""
    return params.get("model", families.top_level_family())


def units_of(params: ChunkParams) -> list[tuple[str | None, ChunkParams]]:
    """A job's chunks as (name, params): a pack's (Pack.params()), or the
    chunk itself (its name not in its params: None)."""
    if "pack" in params:
        return [(unit["name"], unit["params"]) for unit in params["pack"]]
    return [(None, params)]


def chunk_options(params: ChunkParams) -> dict[str, Any]:
    """What a chunk's family needs besides its swept axes: its `options`; a
    family whose params hold them beside the shared keys (the top-level
    family's, as its chunks' params always have) gives the rest."""
    if "options" in params:
        return params["options"]
    return {key: value for key, value in params.items() if key not in CHUNK_KEYS}


def cells_of(params: ChunkParams) -> list[dict[str, Any]]:
    """Every cell of a chunk (or of a pack: its chunks' in turn), from its
    params, as plain dicts with records.Cell's fields, in a fixed order: its
    family's own enumeration where it has one, else family_cells'."""
    if "pack" in params:
        return [cell for _, unit in units_of(params) for cell in cells_of(unit)]
    own = _planning(chunk_family(params), "chunk_cells")
    return own(params) if own else family_cells(params)


def family_cells(params: ChunkParams) -> list[dict[str, Any]]:
    """Every cell of a chunk, in the order seed, depth, norm, shortcut
    (without first), lambda, alpha.  A cell without shortcut records lambda
    0 and alpha "1"; one with records the family's shortcut_scales and
    branch_scales (the generic switch's; [1] where it names none).  Width,
    activation, init (and norm, where the family has no norm axis) are its
    model config's (families.FamilySpec.cell_fields)."""
    fields = families.spec(params["model"]).cell_fields(params["options"])
    options = params["options"]
    arms = shortcut_arms(params["shortcuts"], options.get("shortcut_scales", [1.0]),
                         options.get("branch_scales", [1]))
    return [
        {"model": params["model"], "depth": depth, "width": fields["width"], "seed": seed,
         "shortcut": shortcut, "shortcut_scale": scale, "branch_scale": alpha,
         "activation": fields["activation"], "init": fields["init"], "norm": norm,
         "device": params["device"], "dtype": params["dtype"]}
        for seed in params["seeds"] for depth in params["depths"]
        for norm in params["norms"] for shortcut, scale, alpha in arms
    ]


def job_folder(job) -> str:
    """results/[studies/NAME/]cells/model~M/device~D/dtype~T: the folder of a
    family's chunks of one study, device and dtype, and of their packs."""
    return (f"{study_prefix(job.study)}cells/model~{job.model}/"
            f"device~{device_slug(job.device)}/dtype~{job.dtype}")


@dataclass(frozen=True)
class Chunk:
    """One measuring job of any family: every depth x norm x shortcut cell
    of one variant (`options`: its model config), for a block of seeds, on
    one device in one dtype; `mem`: the megabytes its biggest cell needs."""
    model: str
    study: str
    device: str
    dtype: str
    seeds: tuple[int, ...]
    depths: tuple[int, ...]
    shortcuts: tuple[bool, ...]
    norms: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    mem: int = 0
    mem_given: bool = False  # `mem` is the job's, as its config section says

    @property
    def study_prefix(self) -> str:
        return study_prefix(self.study)

    @property
    def group_path(self) -> str:
        """The folder of its variant's chunks."""
        own = _planning(self.model, "chunk_folder")
        return own(self) if own else job_folder(self)

    @property
    def name(self) -> str:
        """The chunk's id; its records are results/{name}.parquet (core.store)."""
        return f"{self.group_path}/seeds~{seeds_slug(self.seeds)}"

    def params(self) -> ChunkParams:
        """What the measuring job needs; also what Snakemake compares to decide a re-run."""
        own = _planning(self.model, "chunk_params")
        if own:
            return own(self)
        return {"model": self.model, "device": self.device, "dtype": self.dtype,
                "seeds": list(self.seeds), "depths": list(self.depths),
                "shortcuts": list(self.shortcuts), "norms": list(self.norms),
                "options": self.options}

    def cells(self) -> list[dict[str, Any]]:
        return cells_of(self.params())

    def mem_mb(self) -> int:
        """Its biggest cell's, and its records', which it holds until it
        writes them (or what its section says a job needs)."""
        return self.mem if self.mem_given else self.mem + records_mb(self)


@dataclass(frozen=True)
class Pack:
    """One measuring job holding several chunks of one family, study, device
    and dtype (up to `cells_per_job` cells): a sweep of many small variants
    is then a few jobs, not one import of torch per variant.  Its name is
    the digest of its chunks' names; beside its partial results, the job
    writes their names (results/partials/{name}.chunks.json), from which a
    later plan knows what the pack holds (_existing_packs)."""
    chunks: tuple[Chunk, ...]

    @property
    def model(self) -> str:
        return self.chunks[0].model

    @property
    def study(self) -> str:
        return self.chunks[0].study

    @property
    def device(self) -> str:
        return self.chunks[0].device

    @property
    def dtype(self) -> str:
        return self.chunks[0].dtype

    @property
    def study_prefix(self) -> str:
        return study_prefix(self.study)

    @property
    def group_path(self) -> str:
        return job_folder(self)

    @property
    def name(self) -> str:
        return f"{self.group_path}/{pack_name(c.name for c in self.chunks)}"

    def params(self) -> ChunkParams:
        return {"model": self.model, "device": self.device, "dtype": self.dtype,
                "pack": [{"name": c.name, "params": c.params()} for c in self.chunks]}

    def cells(self) -> list[dict[str, Any]]:
        return cells_of(self.params())

    def mem_mb(self) -> int:
        """Its biggest cell's (the job measures one cell, or one engine's
        stack of cells, at a time), and every chunk's records, which it
        holds until it writes them."""
        return max(c.mem for c in self.chunks) + sum(
            records_mb(c) for c in self.chunks if not c.mem_given)


# A measuring job: one chunk, or a pack of them.
Job = Chunk | Pack
# What one record costs a measuring job in memory before it is written (a
# Python dict of 27 fields: measured ~1,050 bytes).
RECORD_BYTES = 1100


def records_mb(chunk: Chunk) -> int:
    """The megabytes of a chunk's records while its job holds them: a row
    per block (and the parameters outside them) of every cell, as many as
    its family's spec says a block writes."""
    per_block = families.spec(chunk.model).records_per_block
    cells = len(chunk.seeds) * len(chunk.norms) * len(chunk.shortcuts) * _variants(chunk)
    rows = cells * sum(depth + 2 for depth in chunk.depths) * per_block
    return math.ceil(rows * RECORD_BYTES / resources.MB)


def _variants(chunk: Chunk) -> int:
    """A chunk's cells per seed, depth, norm and shortcut flag: its options'
    inits, lambdas and alphas (an upper bound: a cell without shortcut has
    one lambda and alpha)."""
    options = chunk.options
    return (len(options.get("inits", [None])) * len(options.get("shortcut_scales", [1.0]))
            * len(options.get("branch_scales", [1])))


PACK_DIGEST = 12  # hex digits of a pack's name


def pack_name(names) -> str:
    """pack~<digest>: the name of a job that holds several chunks (or
    training groups), from their names; the list of them written beside its
    results is checked against it, so an edited list is never trusted."""
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return f"pack~{digest[:PACK_DIGEST]}"


def kept_packs(finished, wanted, name_of):
    """The finished packs ({name: the names it holds}) a new plan keeps, as
    (name, names): every name it holds still wanted, none held by a pack
    kept before it (the largest first, then by name), and its name what
    name_of(names) gives (its digest)."""
    kept, taken = [], set()
    for name, held in sorted(finished.items(), key=lambda item: (-len(item[1]), item[0])):
        if set(held) <= wanted and not taken & set(held) and name_of(held) == name:
            kept.append((name, held))
            taken |= set(held)
    return kept


PACK_CHUNKS = ".chunks.json"  # beside a pack's partial results: the names of its chunks


def pack_chunks_path(partial_path: str) -> str:
    """Where the names of a pack's chunks are written: beside its partial
    results (results/partials/...), not among its records, so that
    results/cells/ still reads as one Parquet dataset."""
    return re.sub(r"\.json$", "", str(partial_path)) + PACK_CHUNKS


def write_pack_lists(jobs: list[Job], results_dir: str = "results") -> None:
    """The names of each planned pack's chunks, where its job writes them
    too (pack_chunks_path), written when the pack is planned: a process that
    plans again while the sweep runs (a cluster job's Snakemake, after other
    packs have finished) may pack the rest differently, and still finds a
    pack of this plan by its name (job_named).  A pack's name is the digest
    of these names, so the file of a name is always the same."""
    for job in jobs:
        if isinstance(job, Pack):
            path = os.path.join(results_dir, pack_chunks_path(f"partials/{job.name}.json"))
            names = [chunk.name for chunk in job.chunks]
            try:
                with open(path) as f:
                    if json.load(f) == names:
                        continue
            except (OSError, ValueError):
                pass  # missing or not JSON: written again
            try:
                write_json(names, path)
            except OSError:
                # results/ cannot be written: the pack's job, which writes
                # the same file, stops with the message that says so
                return


def job_named(name: str, jobs: dict[str, Job], results_dir: str = "results") -> Job:
    """The measuring job of this name: the plan's own (`jobs`, by name), or
    a pack an earlier plan of this sweep made (write_pack_lists), of this
    plan's chunks.  A KeyError naming the job and the fix where neither."""
    if name in jobs:
        return jobs[name]
    chunks = {chunk.name: chunk for job in jobs.values()
              for chunk in getattr(job, "chunks", (job,))}
    try:
        with open(os.path.join(results_dir, pack_chunks_path(f"partials/{name}.json"))) as f:
            held = json.load(f)
        pack = Pack(tuple(chunks[chunk] for chunk in held))
    except (OSError, ValueError, KeyError, TypeError):
        pack = None
    if pack is None or pack.name != name:
        raise KeyError(f"no measuring job {name!r} in this sweep's plan: the config or "
                       f"results/ changed while it ran; run snakemake again")
    return pack


def _existing_packs(results_dir, folder):
    """{pack name: its chunks' names} of the finished packs of one folder
    (its records there, the names of its chunks under results/partials/)."""
    found = _pack_manifests(os.path.join(results_dir, "partials", folder), PACK_CHUNKS,
                            ".parquet", os.path.join(results_dir, folder))
    return {f"{folder}/{name}": held for name, held in found.items()}


def _pack_manifests(directory, manifest, output, outputs_dir=None):
    """{pack~...: the names it lists} of the finished packs whose list of
    names (`manifest`, a JSON list of strings) is in `directory` and whose
    `output` file is in `outputs_dir` (default: the same directory).  What a
    list says is checked by its reader: a pack's name is its names' digest."""
    try:
        names = os.listdir(directory)
        outputs = set(names if outputs_dir is None else os.listdir(outputs_dir))
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        match = re.fullmatch(r"(pack~[0-9a-f]+)" + re.escape(manifest), name)
        if not match or f"{match.group(1)}{output}" not in outputs:
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                held = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(held, list) and all(isinstance(item, str) for item in held):
            found[match.group(1)] = held
    return found


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


def family_variants(name: str, section: dict[str, Any],
                    checks: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A family's chunks' variants, before their seeds are split into blocks:
    one per (device, dtype) of its section, its one model config each."""
    spec = families.spec(name)
    options = spec.options(section)
    if name not in families.SHIPPED:
        # in its chunks' params: an edit to the module re-measures them
        source = family_source(section, os.getcwd())
        options["source_sha256" if "factory" in section else "library"] = source
    return [{"study": "", "device": device, "dtype": dtype,
             "depths": tuple(sorted(section["depths"])),
             "shortcuts": tuple(sorted(section["shortcut"])), "norms": spec.norms(section),
             "options": options, "mem": spec.mem_mb(section, dtype, (checks or {}).get(name)),
             "mem_given": "mem_mb" in section,
             "seeds": section["seeds"], "seeds_per_job": section["seeds_per_job"]}
            for device, dtype in itertools.product(section["devices"], section["dtypes"])]


def plan_chunks(config: dict[str, Any], results_dir: str = "results",
                checks: dict[str, Any] | None = None) -> list[Job]:
    """The measuring jobs that together hold every cell of every family the
    config's `models` lists, in its order: its chunks (a variant's block of
    seeds each), those of one study, device and dtype packed up to the
    family's `cells_per_job` cells a job (Pack).  checks: {user family: what
    its check measured} (its memory estimate comes from there)."""
    jobs = []
    sections = families.sections(config)
    for name in config.get("models", [families.top_level_family()]):
        own = _planning(name, "variants")
        found = own(config, checks) if own else family_variants(name, sections[name], checks)
        section = sections.get(name, config)  # the top-level family's: the config
        packs, chunks = {}, {}
        for variant in found:
            variant = dict(variant)
            seeds, per_job = variant.pop("seeds"), variant.pop("seeds_per_job")
            probe = Chunk(name, seeds=(), **variant)
            folder = job_folder(probe)
            if folder not in packs:
                packs[folder] = _existing_packs(results_dir, folder)
            existing = _existing_seed_sets(os.path.join(results_dir, probe.group_path))
            existing += [parse_seeds_slug(held.rpartition("/seeds~")[2])
                         for names in packs[folder].values() for held in names
                         if held.rpartition("/seeds~")[0] == probe.group_path]
            for block in _choose_chunks(seeds, existing, per_job):
                chunks.setdefault(folder, []).append(Chunk(name, seeds=block, **variant))
        for folder, found_chunks in chunks.items():
            jobs += _pack(found_chunks, packs[folder], section.get("cells_per_job"),
                          results_dir)
    return jobs


def _pack(chunks, finished, cells_per_job, results_dir):
    """Chunks of one family, study, device and dtype -> their jobs.  A
    finished pack whose chunks are all still wanted is kept, and so is a
    finished chunk of its own; the rest go, in name order, as many chunks
    a job as fit `cells_per_job` cells (one chunk a job where it is None; a
    pack of one chunk is that chunk)."""
    if not cells_per_job:
        return list(chunks)
    wanted = {chunk.name: chunk for chunk in chunks}
    jobs, taken = [], set()
    for _, held in kept_packs(finished, wanted.keys(),
                              lambda held: Pack(tuple(wanted[c] for c in held)).name):
        jobs.append(Pack(tuple(wanted[chunk] for chunk in held)))
        taken |= set(held)
    group, count = [], 0
    for chunk in sorted(chunks, key=lambda c: c.name):
        if chunk.name in taken:
            continue
        if os.path.exists(os.path.join(results_dir, f"{chunk.name}.parquet")):
            jobs.append(chunk)
            continue
        n = len(chunk.cells())
        if group and count + n > cells_per_job:
            jobs.append(group[0] if len(group) == 1 else Pack(tuple(group)))
            group, count = [], 0
        group.append(chunk)
        count += n
    if group:
        jobs.append(group[0] if len(group) == 1 else Pack(tuple(group)))
    return jobs


def memory_problem(jobs: list[Job], max_mem_mb: int | None = None) -> str | None:
    """A message naming the biggest cell that cannot fit, its estimate, the
    limit and the fix, or None if every chunk's biggest cell fits.  The limit
    is `max_mem_mb` (the config key) or this machine's memory."""
    chunks = [chunk for job in jobs for chunk in getattr(job, "chunks", (job,))]
    if not chunks:
        return None
    worst = max(chunks, key=lambda chunk: chunk.mem)
    own = _planning(worst.model, "memory_words")
    if own:
        what, how, fix = own(worst)
    else:
        spec = families.spec(worst.model)
        what = f"the {worst.model} cell of depth {max(worst.depths)} ({worst.dtype})"
        how = "its estimate, shortcutbench/core/families/"
        fix = f"{spec.memory_fix} in the config's {spec.section}"
    return resources.too_big(worst.mem, max_mem_mb, what, how, fix)


def n_cells(sweep: dict[str, Any]) -> int:
    """How many cells one of the top-level family's sweeps (main or study) has."""
    return _planning(families.top_level_family(), "n_cells")(sweep)


TRAINING_JOB_PATTERN = (r"activation~[a-z_]+/width~[0-9]+/norm~[a-z_]+/depth~[0-9]+"
                        rf"|pack~[0-9a-f]{{{PACK_DIGEST}}}")
PACK_GROUPS = ".groups.json"  # beside a training pack's table: the names of its groups


def pack_groups_path(table_path: str) -> str:
    """Where a training pack's job writes the names of its groups, beside its table."""
    return re.sub(r"\.csv$", "", str(table_path)) + PACK_GROUPS


def training_group_name(group) -> str:
    """A training group's name: activation~A/width~W/norm~N/depth~D."""
    return (f"activation~{group['activation']}/width~{group['width']}/norm~{group['norm']}/"
            f"depth~{group['depth']}")


def training_jobs(training, engine="exact", results_dir=None):
    """The training config (validated) -> {job name: params}.  A group is
    one (activation, width, norm, depth): every seed and shortcut flag of
    it.  Groups go, in that order, as many a job as fit `runs_per_job` runs,
    so that short groups share one import of torch (deep groups take
    longest: a job of many of them runs them one after another).  A job of
    one group is named by it (activation~A/width~W/norm~N/depth~D), one of
    several by the digest of their names (pack~...).  As with the measuring
    packs, a finished job (results/training/NAME.csv; a pack's group names
    beside it) whose groups are all still wanted is kept, so that a grown
    config trains only its new groups (results_dir None: none is looked
    for).  The engine is in a group's params only when batched, as in
    Chunk.params."""
    if not training["enabled"]:
        return {}
    groups = {}
    for activation in training["activations"]:
        for width in training["widths"]:
            for norm in training["norms"]:
                for depth in training["depths"]:
                    group = {"activation": activation, "width": width, "norm": norm,
                             "depth": depth, "seeds": sorted(training["seeds"]),
                             "shortcut": sorted(training["shortcut"]),
                             **{k: training[k] for k in ("steps", "optimizer",
                                                         "learning_rate", "samples")},
                             **({"engine": engine} if engine != "exact" else {})}
                    groups[training_group_name(group)] = group
    folder = os.path.join(results_dir, "training") if results_dir else None
    finished = _pack_manifests(folder, PACK_GROUPS, ".csv") if folder else {}
    jobs, taken = {}, set()
    for name, held in kept_packs(finished, groups.keys(), pack_name):
        jobs[name] = {"groups": [groups[group] for group in held]}
        taken |= set(held)
    left = [name for name in groups if name not in taken]
    for name in left:
        if folder and os.path.exists(os.path.join(folder, f"{name}.csv")):
            jobs[name] = groups[name]
    left = [name for name in left if name not in jobs]
    runs = len(training["seeds"]) * len(training["shortcut"])
    per_job = max(1, training["runs_per_job"] // runs)
    for start in range(0, len(left), per_job):
        held = left[start:start + per_job]
        if len(held) == 1:
            jobs[held[0]] = groups[held[0]]
        else:
            jobs[pack_name(held)] = {"groups": [groups[name] for name in held]}
    return jobs
