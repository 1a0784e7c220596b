"""The store of the tidy records: one Parquet file per measuring job (chunk),
results/cells/.../seeds~A-B.parquet, read together as one dataset.

pyarrow only (no torch, no pandas): the measuring job writes a chunk, the
merge and the gradients.csv export read them, and a person queries them all
in one line (README-store.md).

A chunk file is written atomically and byte-deterministically: the schema is
fixed here (from records.COLUMNS and the Cell's field types), and so are the
writer's settings, so the same records written with the same pyarrow give the
same bytes, and write_records returns their sha256.  The measuring job
records that digest (partial.json's records_sha256); verify() checks it, so a
believable number edited into a chunk is refused, naming the file.

check_cells() is the one check of a table of records against the cells its
jobs were asked for (every cell once, its rows), for rows read from Parquet
(read_chunk) or from results/gradients.csv (check_gradients_csv).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import heapq
import io
import itertools
import os
import pickle
import re
import tempfile
from collections.abc import Iterable, Sequence
from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow

from shortcutbench.core import families
from shortcutbench.core.files import atomic_write, sha256_of
from shortcutbench.core.records import (
    CELL_COLUMNS,
    CELL_TYPES,
    COLUMNS,
    SORT_COLUMNS,
    VALUE_COLUMNS,
    Record,
)
from shortcutbench.core.sweep import ChunkParams, cells_of

# Every column's type: a cell's fields as records.Cell declares them, then
# the layer's, then the cell's results.
COLUMN_TYPES = {**CELL_TYPES, "layer": int, "param": str, "tied": str, "ndim": int, "numel": int,
                **{c: float for c in VALUE_COLUMNS}, "finite": bool}
assert set(COLUMN_TYPES) == set(COLUMNS)

# The writer's settings, fixed (chosen by measurement on a 1,400-cell,
# 25,400-row chunk, README-store.md: CSV 5.18 MB in ~230 ms; this 0.60 MB in
# ~9 ms): zstd level 3 (snappy and lz4 +30% bytes, gzip 25x slower, level 9
# 2x slower for 1% less); one row group per chunk (seeds_per_job bounds a
# chunk to a few MB); dictionaries only for the columns that repeat (names,
# flags, the per-cell values), not for the per-layer floats, whose values
# all differ and which are stored byte-stream-split (the float's bytes
# grouped, 5% smaller); page checksums, so a damaged page is caught even
# where no digest was recorded.
COMPRESSION, COMPRESSION_LEVEL = "zstd", 3
ROW_GROUP_SIZE = 1 << 30  # rows: more than any chunk holds, so one row group
DICTIONARY_COLUMNS = [c for c in COLUMNS if COLUMN_TYPES[c] is not float
                      or c in ("shortcut_scale", "loss", "output")]
SPLIT_COLUMNS = [c for c in COLUMNS if c not in DICTIONARY_COLUMNS]


class CorruptChunk(ValueError):
    """A table of records (a chunk, results/gradients.csv) that is not what
    its jobs were asked for; the message names the file."""


def corrupt(path, what):
    return CorruptChunk(
        f"{path}: {what}. The file is incomplete, was edited, or comes from another "
        f"sweep; delete it and run snakemake again to re-make it.")


def schema():
    """The Arrow schema of a chunk file: records.COLUMNS in order; ints
    int64, floats float64, flags bool, names string; no nulls."""
    import pyarrow as pa

    kinds = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
    return pa.schema([pa.field(c, kinds[COLUMN_TYPES[c]], nullable=False) for c in COLUMNS])


def _table(records):
    import pyarrow as pa

    return pa.Table.from_pydict({c: [r[c] for r in records] for c in COLUMNS}, schema=schema())


def _parquet_bytes(table):
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=COMPRESSION,
                   compression_level=COMPRESSION_LEVEL, row_group_size=ROW_GROUP_SIZE,
                   use_dictionary=DICTIONARY_COLUMNS, use_byte_stream_split=SPLIT_COLUMNS,
                   write_statistics=True,
                   write_page_checksum=True)
    return buffer.getvalue()


def write_records(records: Sequence[Record], path: PathLike) -> str:
    """Write one chunk's records (dicts with records.COLUMNS, in the order
    given) as one Parquet file, atomically; returns the sha256 (hex) of the
    bytes written."""
    data = _parquet_bytes(_table(records))
    with atomic_write(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def verify(path: PathLike, sha256: str) -> None:
    """Raise CorruptChunk (naming the file) unless `path`'s bytes have the
    sha256 the measuring job recorded."""
    try:
        found = sha256_of(path)
    except OSError as error:
        raise corrupt(path, f"cannot be read ({error.strerror})") from None
    if found != sha256:
        raise corrupt(path, f"has sha256 {found[:16]}..., but the job that measured it "
                            f"recorded {sha256[:16]}...")


def recorded_sha256(partial_path: PathLike, params: ChunkParams | None = None) -> str | None:
    """The sha256 a measuring job recorded for its chunk (records_sha256 in
    the chunk's partial.json), or None where there is no partial.json.  A
    partial.json that cannot be read, records no valid digest, or belongs
    to other chunk params than `params` is refused, naming it."""
    import json

    try:
        with open(partial_path) as f:
            partial = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise corrupt(partial_path, f"cannot be read as JSON ({error})") from None
    sha256 = partial.get("records_sha256") if isinstance(partial, dict) else None
    if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise corrupt(partial_path, "records no sha256 of its chunk (records_sha256)")
    if params is not None and partial.get("chunk") != params:
        raise corrupt(partial_path, "belongs to another chunk than the one asked for")
    return sha256


def read_records(path: PathLike, expected_sha256: str | None = None) -> pyarrow.Table:
    """A chunk file as an Arrow table with exactly the chunk schema (checked:
    names, types, no nulls, and, if given, the recorded sha256).  Raises
    CorruptChunk naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if expected_sha256 is not None:
        verify(path, expected_sha256)
    try:
        # One file, read by pyarrow's file reader: pq.read_table would load
        # pyarrow.dataset, and with it pandas (~0.45 s a job, for nothing).
        with pq.ParquetFile(path, page_checksum_verification=True) as chunk:
            table = chunk.read()
    except (pa.ArrowException, OSError) as error:
        raise corrupt(path, f"cannot be read as Parquet ({error})") from None
    if table.schema.remove_metadata() != schema().remove_metadata():
        found = [f"{f.name}: {f.type}" for f in table.schema]
        raise corrupt(path, f"has columns {found}, expected {COLUMNS} "
                            f"with the types of shortcutbench.core.store.schema()")
    for column in COLUMNS:
        if table.column(column).null_count:
            raise corrupt(path, f"column {column!r} has missing values")
    return table


def cell_keys(table):
    """(cell, layer) per row of a chunk table: the cell as a tuple of
    CELL_COLUMNS values."""
    columns = [table.column(c).to_pylist() for c in CELL_COLUMNS]
    return zip(zip(*columns), table.column("layer").to_pylist())


def check_cells(path: PathLike, cell_layers: Iterable[tuple[tuple, int]],
                chunk_params: Sequence[ChunkParams]) -> None:
    """Check the rows of a table of records -- given as (cell, layer) per
    row, cell a tuple of CELL_COLUMNS values -- against the cells
    `chunk_params` (a list of chunk params) ask for: every cell there and
    none other; a cell of a family with one record per layer has exactly
    one row per layer, any other family's cell one row per parameter, the
    same layers as every cell of
    its depth, norm and shortcut flag.  A truncation that loses a cell, or
    such a cell's row, is caught here; one that loses another family's row
    in a cell with no sibling of its shape only by the recorded sha256
    (read_records).  Raises CorruptChunk naming the file."""
    layers = {}
    for cell, layer in cell_layers:
        layers.setdefault(cell, []).append(layer)
    expected = {tuple(cell[c] for c in CELL_COLUMNS)
                for params in chunk_params for cell in cells_of(params)}
    if set(layers) != expected:
        missing, extra = len(expected - set(layers)), len(set(layers) - expected)
        raise corrupt(path, f"holds {len(layers)} cells, expected {len(expected)} "
                            f"({missing} missing, {extra} not asked for)")
    shape_of = ("model", "depth", "norm", "shortcut")  # what fixes a cell's parameters
    at = {name: CELL_COLUMNS.index(name) for name in shape_of}
    rows_of = {}
    per_layer = families.top_level_family()  # whose records are one per layer
    for cell, seen in layers.items():
        if cell[at["model"]] == per_layer:
            if sorted(seen) != list(range(cell[at["depth"]])):
                raise corrupt(path, f"cell {dict(zip(CELL_COLUMNS, cell))} does not have "
                                    f"exactly one row per layer")
            continue
        shape = tuple(cell[at[name]] for name in shape_of)
        if rows_of.setdefault(shape, sorted(seen)) != sorted(seen):
            raise corrupt(path, f"cell {dict(zip(CELL_COLUMNS, cell))} has other rows than "
                                f"the cells of its depth and arm (one per parameter)")


def read_chunk(path: PathLike, params: ChunkParams,
               expected_sha256: str | None = None) -> pyarrow.Table:
    """One chunk file, checked (its bytes against the recorded sha256 if
    given, its schema, its cells against `params`), as an Arrow table."""
    table = read_records(path, expected_sha256)
    check_cells(path, cell_keys(table), [params])
    return table


# ------------------------------------------------ results/gradients.csv from the chunks

# Sorted runs merged at once; more are merged in passes (open files stay few).
MERGE_FAN_IN = 128


def _sorted_run(table, run):
    """One chunk's rows as CSV text into `run` (a temporary file), one item
    per cell: (the cell's SORT_COLUMNS key without the layer, its rows'
    lines in layer order), items sorted by key.  The text is what csv writes
    for the measuring job's Python values (floats as repr, flags
    True/False): the bytes of the CSV chunks the measuring job used to write."""
    columns = {c: table.column(c).to_pylist() for c in COLUMNS}
    rows = list(zip(*(columns[c] for c in COLUMNS)))
    at = {c: i for i, c in enumerate(COLUMNS)}
    cell_key = [at[c] for c in SORT_COLUMNS if c != "layer"]
    rows.sort(key=lambda row: tuple(row[i] for i in cell_key) + (row[at["layer"]],))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for key, cell_rows in itertools.groupby(rows, key=lambda row: tuple(row[i] for i in cell_key)):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(cell_rows)
        pickle.dump((key, buffer.getvalue()), run, protocol=pickle.HIGHEST_PROTOCOL)
    run.seek(0)
    return run


def _items(run):
    """The (key, text) items of a sorted run, in order."""
    while True:
        try:
            yield pickle.load(run)
        except EOFError:
            return


def _merged(runs):
    return heapq.merge(*(_items(run) for run in runs), key=lambda item: item[0])


def write_gradients_csv(chunk_paths: Sequence[PathLike], chunk_params: Sequence[ChunkParams],
                        path: PathLike, digests: Sequence[str | None] | None = None) -> int:
    """results/[studies/NAME/]gradients.csv from a sweep's Parquet chunks:
    records.COLUMNS, rows sorted by records.SORT_COLUMNS, the same bytes the
    CSV merge of CSV chunks wrote.  Each chunk is checked before it is used
    (its recorded sha256 where `digests` has one, its schema, its cells
    against its params).  Bounded memory: chunks are read one at a time,
    each sorted into a run on an anonymous temporary file beside `path`
    (no name: nothing is left behind, even by a kill), and the runs are
    merged (k-way) as the table is written; memory holds one chunk plus a
    read buffer per run, whatever the number of seeds.  Returns the number
    of rows written."""
    digests = digests or [None] * len(chunk_paths)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with contextlib.ExitStack() as files:
        def temporary():
            return files.enter_context(tempfile.TemporaryFile(dir=folder))

        runs = [_sorted_run(read_chunk(chunk, params, sha256), temporary())
                for chunk, params, sha256 in zip(chunk_paths, chunk_params, digests)]
        while len(runs) > MERGE_FAN_IN:  # a pass: MERGE_FAN_IN runs into one
            first, runs = runs[:MERGE_FAN_IN], runs[MERGE_FAN_IN:]
            merged = temporary()
            for item in _merged(first):
                pickle.dump(item, merged, protocol=pickle.HIGHEST_PROTOCOL)
            for run in first:
                run.close()
            merged.seek(0)
            runs.append(merged)
        rows = 0
        with atomic_write(path, newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(COLUMNS)
            for _, text in _merged(runs):
                f.write(text)
                rows += text.count("\n")
        return rows


# ------------------------------------------------ results/gradients.csv, checked

# How each identity column is read back: the cell's own field types, plus layer.
KEY_TYPES = {**CELL_TYPES, "layer": int, "numel": int}


def _typed(row, path, line):
    """The row's identity fields as Python values; checks every field."""
    typed = {}
    try:
        for column, kind in KEY_TYPES.items():
            if kind is bool:
                if row[column] not in ("True", "False"):
                    raise ValueError
                typed[column] = row[column] == "True"
            else:
                typed[column] = kind(row[column])
        for column in VALUE_COLUMNS:
            float(row[column])
    except ValueError:
        raise corrupt(path, f"line {line}: column {column!r} holds {row[column]!r}, "
                         f"which is not a valid {'True/False' if kind is bool else 'value'}"
                   ) from None
    if row["finite"] not in ("True", "False"):
        raise corrupt(path, f"line {line}: column 'finite' is {row['finite']!r}, not True/False")
    return typed


def _read_csv(path, chunk_params):
    """results/gradients.csv as (typed keys, fields as written) per row,
    checked against the cells `chunk_params` (a list of chunk params) ask
    for: right header, every field of every line readable, every cell there
    and none other, the rows each cell should have.  Truncation anywhere
    loses a row and is caught; raises CorruptChunk naming the file."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != COLUMNS:
                raise corrupt(path, f"has header {header}, expected {COLUMNS}")
            rows = []
            for line, fields in enumerate(reader, start=2):
                if len(fields) != len(COLUMNS):
                    raise corrupt(path, f"line {line} has {len(fields)} fields, "
                                     f"expected {len(COLUMNS)}")
                row = dict(zip(COLUMNS, fields))
                rows.append((_typed(row, path, line), fields))
    except (UnicodeDecodeError, csv.Error) as e:
        raise corrupt(path, f"cannot be read as CSV ({e})") from None
    # The same check as a Parquet chunk's (check_cells).
    check_cells(path, ((tuple(typed[c] for c in CELL_COLUMNS), typed["layer"])
                       for typed, _ in rows), chunk_params)
    return rows


def check_gradients_csv(path: PathLike, chunk_params: Sequence[ChunkParams]) -> int:
    """Check results/[studies/NAME/]gradients.csv (rule gradients_csv) before
    a program reads it: every cell of its chunks (`chunk_params`), the rows
    each cell should have, rows in write_gradients_csv's order.  A file
    truncated or edited by hand after it was written is named and refused.
    Returns the number of rows."""
    rows = _read_csv(path, chunk_params)
    keys = [tuple(typed[c] for c in SORT_COLUMNS) for typed, _ in rows]
    if keys != sorted(keys):
        raise corrupt(path, "has its rows out of order")
    return len(rows)
