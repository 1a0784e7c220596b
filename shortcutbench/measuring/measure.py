"""One chunk of cells -> its records, its partial results, its machine facts.

`run_chunk` is the measuring job, one road for every family: the chunk's
family (its spec's measuring class, measuring/family.py) measures the
chunk's cells, through the per-cell contract or a faster path of its own
(e.g. an exact fast path and a batched engine); the
log and the machine facts name the path it took.

This module imports torch and never pandas, seaborn or Snakemake.
"""

import platform
import socket
import sys
import time
from os import PathLike
from typing import TextIO

import torch

from shortcutbench.core.files import write_json
from shortcutbench.core.host import cpu_name, imported_distributions
from shortcutbench.core.imports import blocked_imports
from shortcutbench.core.partials import chunk_partials, write_partial
from shortcutbench.core.states import DEFAULT_BAND
from shortcutbench.core.store import write_records  # one Parquet file per chunk
from shortcutbench.core.sweep import (
    ChunkParams,
    cells_of,
    chunk_family,
    chunk_options,
    pack_chunks_path,
    units_of,
)
from shortcutbench.measuring.devices import deterministic, torch_device
from shortcutbench.measuring.family import configure_torch, family_of

__all__ = ["configure_torch", "machine_facts", "run_chunk", "write_chunk"]


def machine_facts(device):
    """Where and with what a chunk was measured (for the report's provenance)."""
    facts = {"host": socket.gethostname(), "os": platform.platform(), "cpu": cpu_name(),
             "python": platform.python_version(), "torch": torch.__version__,
             "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch_device(device))
    return facts


def write_chunk(records, path):
    """store.write_records with pandas kept out of this process: pyarrow
    imports pandas (~0.26 s of a measuring job) only to learn that lists
    are not pandas objects.  pyarrow then takes pandas as absent for such
    checks for the rest of the process (a pandas Series it is given later
    converts as a plain sequence): the measuring side never has pandas
    (tests/test_walls.py).  Returns the file's sha256."""
    with blocked_imports("pandas"):
        return write_records(records, path)


def run_chunk(params: ChunkParams, records_path: PathLike, machine_path: PathLike,
              progress: TextIO | None = sys.stderr, partial_path: PathLike | None = None,
              band: float = DEFAULT_BAND) -> None:
    """Measure one job, given by its params (sweep.Chunk.params() or
    sweep.Pack.params()): its records go to `records_path`, where and how it
    was measured to `machine_path`, and, after the records, its partial
    results (core/partials.py, with the records file's sha256 and the
    healthy band `band`; a pack's: one set of tables per chunk) to
    `partial_path`.  Each chunk's family's measuring class measures its
    cells (Family.measure_cells: per cell, or its own faster path)."""
    started = time.time()
    settings = deterministic(params["device"])
    records, parts, engines, cells = [], [], [], 0
    # A pack's chunks one after another, each through its family's class:
    # a cell's numbers do not depend on its job, nor a chunk's tables.
    for _, unit in units_of(params):
        options = chunk_options(unit)
        family = family_of(chunk_family(unit), options)
        engine, how = family.engine(options)
        if progress and engine not in engines:
            print(f"engine: {engine} ({how})", file=progress, flush=True)
        engines.append(engine)
        unit_cells = cells_of(unit)
        cells += len(unit_cells)
        unit_records = family.measure_cells(unit_cells, options, progress)
        if partial_path is not None:
            parts.append(unit_records)
        records.extend(unit_records)
    # The records file's sha256, recorded in the partial results: every later
    # reader checks the file against it (core.store.verify).
    sha256 = write_chunk(records, records_path)
    meta = {"chunk": params, "cells": cells, "engine": "/".join(dict.fromkeys(engines)),
            "started": started,
            "seconds": round(time.time() - started, 3), **machine_facts(params["device"]),
            **settings}
    if partial_path is not None:
        t0 = time.perf_counter()
        tables = [chunk_partials(part, band) for part in parts]
        write_partial(tables[0] if "pack" not in params else {"parts": tables}, partial_path,
                      params, cells, sha256, band)
        meta["partial_seconds"] = round(time.perf_counter() - t0, 3)
        if progress:
            print(f"partial results in {meta['partial_seconds']} s", file=progress, flush=True)
    # At the end, when everything the family's module pulls in is loaded.
    meta["packages"] = imported_distributions()
    write_json(meta, machine_path)
    if "pack" in params and partial_path is not None:
        # what a later plan reads to know what the pack holds (sweep.Pack)
        write_json([name for name, _ in units_of(params)], pack_chunks_path(partial_path))
