"""The merge: chunk files -> results/gradients.csv, one tidy table, rows in a fixed order.

Every chunk file is checked against the cells its job was asked for, so a
file that was truncated, edited or left over from another sweep is named and
refused instead of being counted.  Plain csv, no pandas: this step sits
between the measurements and the first table, and pandas would cost ~0.4 s of
import for a merge.  The measured values are copied as written, never
re-formatted, so their bytes are exactly what the measuring job printed.
"""

import csv

from shortcutbench.core.files import atomic_write
from shortcutbench.core.records import (
    CELL_COLUMNS,
    CELL_TYPES,
    COLUMNS,
    SORT_COLUMNS,
    VALUE_COLUMNS,
)
from shortcutbench.core.sweep import cells_of

# How each identity column is read back: the cell's own field types, plus layer.
KEY_TYPES = {**CELL_TYPES, "layer": int}


class CorruptChunk(ValueError):
    pass


def _bad(path, what):
    return CorruptChunk(
        f"{path}: {what}. The file is incomplete, was edited, or comes from another "
        f"sweep; delete it and run snakemake again to re-make it.")


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
        raise _bad(path, f"line {line}: column {column!r} holds {row[column]!r}, "
                         f"which is not a valid {'True/False' if kind is bool else 'value'}"
                   ) from None
    if row["finite"] not in ("True", "False"):
        raise _bad(path, f"line {line}: column 'finite' is {row['finite']!r}, not True/False")
    return typed


def read_table(path, chunk_params):
    """A table of records -- one chunk, or results/gradients.csv merged from
    chunks -- as (typed keys, fields as written) per row, checked against the
    cells `chunk_params` (a list of chunk params) ask for: right header, every
    field of every line readable, every cell there and none other, exactly
    one row per layer.  Truncation anywhere loses a row and is caught;
    raises CorruptChunk naming the file."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != COLUMNS:
                raise _bad(path, f"has header {header}, expected {COLUMNS}")
            rows = []
            for line, fields in enumerate(reader, start=2):
                if len(fields) != len(COLUMNS):
                    raise _bad(path, f"line {line} has {len(fields)} fields, "
                                     f"expected {len(COLUMNS)}")
                row = dict(zip(COLUMNS, fields))
                rows.append((_typed(row, path, line), fields))
    except (UnicodeDecodeError, csv.Error) as e:
        raise _bad(path, f"cannot be read as CSV ({e})") from None

    layers = {}
    for typed, _ in rows:
        layers.setdefault(tuple(typed[c] for c in CELL_COLUMNS), []).append(typed["layer"])
    expected = {tuple(cell[c] for c in CELL_COLUMNS)
                for params in chunk_params for cell in cells_of(params)}
    if set(layers) != expected:
        missing, extra = len(expected - set(layers)), len(set(layers) - expected)
        raise _bad(path, f"holds {len(layers)} cells, expected {len(expected)} "
                         f"({missing} missing, {extra} not asked for)")
    depth_at, model_at = CELL_COLUMNS.index("depth"), CELL_COLUMNS.index("model")
    for cell, seen in layers.items():
        if cell[model_at] == "gpt":  # one row per parameter: embeddings, blocks, head
            if sorted(set(seen)) != list(range(-1, cell[depth_at] + 1)):
                raise _bad(path, f"cell {dict(zip(CELL_COLUMNS, cell))} lacks the rows of "
                                 f"some of its blocks")
        elif sorted(seen) != list(range(cell[depth_at])):
            raise _bad(path, f"cell {dict(zip(CELL_COLUMNS, cell))} does not have exactly "
                             f"one row per layer")
    return rows


def read_chunk(path, params):
    """One chunk's rows (as written) with their typed keys, checked against
    the cells the chunk should hold."""
    return read_table(path, [params])


def check_gradients(path, chunk_params):
    """Check results/[studies/NAME/]gradients.csv before it is read: every
    cell of its chunks (`chunk_params`, as the merge rule has them), one
    row per layer, rows in the merge's order.  For the jobs that read it
    (aggregate, figures, laws): a file truncated or edited by hand after
    the merge wrote it is named and refused instead of being summarised.
    Returns the number of rows."""
    rows = read_table(path, chunk_params)
    keys = [tuple(typed[c] for c in SORT_COLUMNS) for typed, _ in rows]
    if keys != sorted(keys):
        raise _bad(path, "has its rows out of order")
    return len(rows)


def merge_chunks(chunk_paths, chunk_params, gradients_path):
    """Merge the chunks into one table sorted by SORT_COLUMNS; returns the row count."""
    rows = []
    for path, params in zip(chunk_paths, chunk_params):
        rows.extend(read_chunk(path, params))
    rows.sort(key=lambda row: tuple(row[0][c] for c in SORT_COLUMNS))
    with atomic_write(gradients_path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(fields for _, fields in rows)
    return len(rows)
