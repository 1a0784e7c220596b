"""Tampering and corruption: an intermediate file edited or truncated by hand
is detected when it is aggregated, with a message naming the file.

Two intermediate tables feed the aggregation:

* the chunk files results/cells/.../seeds~A-B.csv, checked by the merge job
  (shortcutbench.analysis.merge.read_chunk) against the cells the chunk was asked
  for;
* results/gradients.csv, which aggregate, the figures and the laws read.
  shortcutbench.analysis.merge.check_gradients checks it the same way against the
  cells of all chunks; aggregate and laws call it before reading it (the
  figures wait for aggregate's summary.csv).

In-process tests truncate the tables at every line boundary and at many
byte offsets; workflow tests edit a finished run's files by hand and run
snakemake again, as a person would.
"""

import random
import shutil

import pytest

from shortcutbench.analysis.merge import CorruptChunk, check_gradients, merge_chunks, read_chunk
from shortcutbench.core.records import COLUMNS, Cell
from shortcutbench.core.sweep import cells_of
from shortcutbench.measuring.measure import measure_cells, write_records

from .helpers import run, tree

VALUE_AT = COLUMNS.index("grad_abs_mean")


def chunk_params(seeds):
    return {"device": "cpu", "dtype": "float32", "activation": "gelu_tanh", "width": 3,
            "seeds": list(seeds), "depths": [1, 3, 6], "shortcuts": [False, True],
            "shortcut_scales": [1.0], "inits": ["pytorch"], "norms": ["none"]}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Two measured chunks and the gradients.csv merge_chunks makes of them."""
    folder = tmp_path_factory.mktemp("tables")
    params = [chunk_params([1, 2]), chunk_params([3])]
    paths = []
    for i, p in enumerate(params):
        path = folder / f"chunk{i}.csv"
        write_records(measure_cells([Cell(**c) for c in cells_of(p)], progress=None), path)
        paths.append(path)
    gradients = folder / "gradients.csv"
    merge_chunks(paths, params, gradients)
    return {"params": params, "chunks": [p.read_bytes() for p in paths],
            "gradients": gradients.read_bytes()}


def refused(check, path, data):
    path.write_bytes(data)
    with pytest.raises(CorruptChunk) as error:
        check(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "run snakemake again" in message
    return message


def cut_points(data, seed, n_random):
    """Every line boundary and `n_random` byte offsets (seeded) of `data`,
    except its full length."""
    lines = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")][:-1]
    rng = random.Random(seed)
    offsets = rng.sample(range(len(data)), min(n_random, len(data)))
    return sorted(set([0] + lines + offsets))


def test_the_untouched_tables_pass(tables, tmp_path):
    gradients = tmp_path / "gradients.csv"
    gradients.write_bytes(tables["gradients"])
    assert check_gradients(gradients, tables["params"]) == 2 * (3 * (1 + 3 + 6))
    chunk = tmp_path / "chunk.csv"
    chunk.write_bytes(tables["chunks"][0])
    assert len(read_chunk(chunk, tables["params"][0])) == 2 * 2 * (1 + 3 + 6)


def test_a_truncated_table_is_never_read_as_complete(tables, tmp_path, counts):
    """Cut at every line boundary and at 500 random byte offsets: refused."""
    tried = 0
    gradients, chunk = tmp_path / "gradients.csv", tmp_path / "chunk.csv"
    checks = [(gradients, tables["gradients"],
               lambda p: check_gradients(p, tables["params"])),
              (chunk, tables["chunks"][0], lambda p: read_chunk(p, tables["params"][0]))]
    for path, data, check in checks:
        for cut in cut_points(data, seed=len(data), n_random=500):
            refused(check, path, data[:cut])
            tried += 1
    counts.add("tampering", truncations_tried=tried, truncations_refused_naming_file=tried)


def edits(data):
    """Hand edits that break what the table promises: (name, edited bytes)."""
    lines = data.decode().splitlines(keepends=True)
    row = lines[5].rstrip("\n").split(",")
    yield "a number made text", _join(lines, 5, row, VALUE_AT, "0.1.2")
    yield "a flag made text", _join(lines, 5, row, COLUMNS.index("finite"), "maybe")
    yield "a depth changed", _join(lines, 5, row, COLUMNS.index("depth"), "2")
    yield "a seed changed", _join(lines, 5, row, COLUMNS.index("seed"), "99")
    yield "a layer changed", _join(lines, 5, row, COLUMNS.index("layer"), "17")
    yield "a field removed", "".join(lines[:5] + [",".join(row[:-1]) + "\n"] + lines[6:]).encode()
    yield "a field added", "".join(lines[:5] + [",".join(row + ["1"]) + "\n"] + lines[6:]).encode()
    yield "a row removed", "".join(lines[:5] + lines[6:]).encode()
    yield "a row repeated", "".join(lines[:6] + lines[5:]).encode()
    renamed = lines[0].replace("grad_l2", "grad_norm")
    yield "the header renamed", "".join([renamed] + lines[1:]).encode()
    yield "the header removed", "".join(lines[1:]).encode()
    yield "emptied", b""
    yield "binary junk", b"\xff\xfe\x00garbage\n"
    yield "a cell from another sweep", "".join(
        lines + [line.replace(",gelu_tanh,", ",relu,") for line in lines[1:4]]).encode()


def _join(lines, at, row, column, value):
    row = list(row)
    row[column] = value
    return "".join(lines[:at] + [",".join(row) + "\n"] + lines[at + 1:]).encode()


def test_hand_edits_are_refused_naming_the_file(tables, tmp_path, counts):
    tried = 0
    for _name, data in edits(tables["gradients"]):
        refused(lambda p: check_gradients(p, tables["params"]), tmp_path / "gradients.csv", data)
        tried += 1
    for _name, data in edits(tables["chunks"][0]):
        refused(lambda p: read_chunk(p, tables["params"][0]), tmp_path / "chunk.csv", data)
        tried += 1
    counts.add("tampering", hand_edits_tried=tried, hand_edits_refused_naming_file=tried)


def test_rows_out_of_order_in_gradients_are_refused(tables, tmp_path):
    lines = tables["gradients"].decode().splitlines(keepends=True)
    swapped = lines[:3] + [lines[4], lines[3]] + lines[5:]
    message = refused(lambda p: check_gradients(p, tables["params"]), tmp_path / "g.csv",
                      "".join(swapped).encode())
    assert "out of order" in message


# ------------------------------------------------------------ through snakemake

def truncate_mid_line(data):
    return data[:-25]


def drop_last_row(data):
    return b"".join(data.splitlines(keepends=True)[:-1])


def empty(data):
    return b""


def edit_a_value(data):
    """A plausible number in place of the measured one: the format is kept."""
    lines = data.decode().splitlines(keepends=True)
    row = lines[2].rstrip("\n").split(",")
    row[VALUE_AT] = repr(float(row[VALUE_AT]) * 1.5)
    return "".join(lines[:2] + [",".join(row) + "\n"] + lines[3:]).encode()


def first_chunk(results):
    return sorted(name for name in results if name.startswith("cells/"))[0]


TAMPERS = {
    "chunk truncated mid-line": (first_chunk, truncate_mid_line, None),
    "chunk's last row removed": (first_chunk, drop_last_row, None),
    "chunk emptied": (first_chunk, empty, None),
    "chunk value edited, format kept": (
        first_chunk, edit_a_value,
        "a plausible number edited into a chunk keeps the format; only a digest written by "
        "the measuring job (e.g. sha256 in its machine.json or a declared .sha256 output) "
        "checked by merge_chunks could tell"),
    # aggregate and laws check gradients.csv against its chunks before reading it
    "gradients.csv truncated mid-line": (lambda results: "gradients.csv", truncate_mid_line, None),
    "gradients.csv's last row removed": (lambda results: "gradients.csv", drop_last_row, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", TAMPERS)
def test_a_tampered_intermediate_stops_the_workflow_naming_it(reference, tmp_path, name,
                                                              request, counts):
    pick, tamper, gap = TAMPERS[name]
    if gap:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=gap))
    workdir = tmp_path / "work"
    shutil.copytree(reference.workdir, workdir, symlinks=True)
    target = pick(reference.results)
    path = workdir / "results" / target
    path.write_bytes(tamper(path.read_bytes()))
    tampered = path.read_bytes()

    result = run(workdir, reference.config, check=False)
    counts.add("tampering", workflow_runs_with_a_tampered_file=1)
    # No wrong numbers left behind, whatever happened: every file is the
    # uninterrupted run's, the tampered one as the person left it, or gone.
    for other, data in tree(workdir / "results").items():
        if other != target:
            assert data == reference.results.get(other), f"results/{other} changed"
    assert path.read_bytes() == tampered or not path.exists()
    assert result.returncode != 0, f"the tampered results/{target} was used:\n" \
                                   f"{result.stdout[-3000:]}"
    assert f"results/{target}: " in result.stdout, result.stdout[-3000:]
    assert "run snakemake again" in result.stdout
    counts.add("tampering", workflow_refusals_naming_file=1)
