"""A chunk's partial results as a file, results/partials/{chunk}.json, and
the merged ones, results/{prefix}partials.json: written with the sha256 of
their content, read back checked (its version, its chunk, its records
file's sha256, every table whole).
"""

from __future__ import annotations

import json
from os import PathLike

from shortcutbench.core.files import atomic_write, compact_json
from shortcutbench.core.partial_tables import TABLES, Partial
from shortcutbench.core.store import CorruptChunk
from shortcutbench.core.sweep import ChunkParams, cells_of

# The format of a partial result; a job whose format is older is re-run
# (the measure and merge rules pass it as a param, which Snakemake compares).
VERSION = 5


class CorruptPartial(CorruptChunk):
    """A partial result that does not belong to its chunk (or whose records
    file is not the one it was made from); the message names the file."""


# A partial result's file begins with the sha256 of the rest of it, so that a
# number edited into it (the JSON kept valid) is refused: hashing the bytes as
# written costs nothing beside parsing them, unlike re-encoding the tables.
_HEAD = '{"content_sha256":"'
_HEAD_LENGTH = len(_HEAD) + 64 + len('",')


def _content_sha256(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def write_partial(partial: Partial, path: PathLike, chunk: ChunkParams, cells: int,
                  records_sha256: str, band: float) -> None:
    """results/partials/{chunk}.json: the tables with what they came from,
    after the sha256 of all of it."""
    data = {"version": VERSION, "chunk": chunk, "n_cells": cells,
            "records_sha256": records_sha256, "band": band, **partial}
    body = compact_json(data)  # thousands of rows: no indentation
    with atomic_write(path, newline="") as f:  # "\n" on every platform
        f.write(f'{_HEAD}{_content_sha256(body.encode())}",{body[1:]}\n')


def _content_intact(raw: bytes) -> bool:
    head = raw[:_HEAD_LENGTH].decode("ascii", "replace")
    body = b"{" + raw[_HEAD_LENGTH:].rstrip(b"\r\n")
    return head.startswith(_HEAD) and head[len(_HEAD):-2] == _content_sha256(body)


def _refuse(path, what):
    return CorruptPartial(
        f"{path}: {what}. It is incomplete, was edited, or comes from another sweep; "
        f"delete it and run snakemake again to re-make it.")


def _read_json(path: PathLike) -> tuple[bytes, object]:
    """A partial result's bytes and their JSON; CorruptPartial where either
    cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return raw, json.loads(raw)
    except (OSError, ValueError) as error:
        raise _refuse(path, f"cannot be read as JSON ({error})") from None


def read_partial(path: PathLike, chunk: ChunkParams | None = None,
                 records_path: PathLike | None = None, band: float | None = None) -> dict:
    """A chunk's partial.json, checked: its version, its chunk params equal
    `chunk`, its cell count that of the chunk's cells, its band `band`, and
    the sha256 of the records file equal to the one it was made from.  A
    pack's (sweep.Pack) holds one set of tables per chunk (`parts`:
    chunk_tables gives them)."""
    raw, data = _read_json(path)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise _refuse(path, f"is not a version {VERSION} partial result")
    parts = chunk_tables(data)
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise _refuse(path, "has no list of tables per chunk")
    missing = sorted({name for part in parts for name in TABLES if name not in part})
    if missing:
        raise _refuse(path, f"lacks the tables {missing}")
    if chunk is not None and "pack" in chunk and len(parts) != len(chunk["pack"]):
        raise _refuse(path, f"holds the tables of {len(parts)} chunks, expected "
                            f"{len(chunk['pack'])}")
    if chunk is not None:
        if data.get("chunk") != json.loads(json.dumps(chunk)):
            raise _refuse(path, "was made for other chunk params than this sweep's")
        if data.get("n_cells") != len(cells_of(chunk)):
            raise _refuse(path, f"holds {data.get('n_cells')} cells, expected "
                                f"{len(cells_of(chunk))}")
    if not _content_intact(raw):
        raise _refuse(path, "holds numbers other than its measuring job wrote (their sha256 "
                            "differs from the one recorded with them)")
    if band is not None and data.get("band") != band:
        raise _refuse(path, f"was made with healthy_band {data.get('band')}, not {band}")
    if records_path is not None:
        from shortcutbench.core.store import verify

        verify(records_path, str(data.get("records_sha256")))
    return data


def chunk_tables(data: dict) -> list[dict]:
    """The tables of each chunk a read partial result holds: a pack's, one
    set per chunk in its order; a chunk's, its own."""
    return data.get("parts", [data])


def read_merged(path: PathLike) -> dict:
    """A merged partial result, results/{prefix}partials.json (rule merge),
    checked before it is read: whole JSON holding every table, each row as
    long as its columns.  Raises CorruptPartial naming the file."""
    _, data = _read_json(path)
    if not isinstance(data, dict):
        raise _refuse(path, "is not a merged partial result")
    for name in TABLES:
        table = data.get(name)
        if not (isinstance(table, dict) and isinstance(table.get("columns"), list)
                and isinstance(table.get("rows"), list)):
            raise _refuse(path, f"lacks the table {name!r}")
        width = len(table["columns"])
        if any(not isinstance(row, list) or len(row) != width for row in table["rows"]):
            raise _refuse(path, f"has a row of table {name!r} without {width} fields")
    return data
