"""The Parquet store of the records (shortcutbench.core.store): one file per
chunk, byte-deterministic, checked (sha256, schema, cells); and
results/gradients.csv made from it with the bytes the CSV merge wrote."""

import csv
import hashlib
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shortcutbench.core import store
from shortcutbench.core.records import COLUMNS, SORT_COLUMNS, Cell
from shortcutbench.core.sweep import cells_of
from shortcutbench.measuring.mlp.exact import measure_cells


def params(width=3, seeds=(1, 2), activation="gelu_tanh"):
    return {"device": "cpu", "dtype": "float32", "activation": activation, "width": width,
            "seeds": list(seeds), "depths": [1, 3, 6], "shortcuts": [False, True],
            "shortcut_scales": [0.5, 1.0], "inits": ["pytorch", "xavier_uniform"],
            "norms": ["none", "pre_layernorm"], "branch_scales": ["1", "0.1", "1/sqrt(depth)"]}


# Interleaved seed sets (as a grown sweep reuses chunks), two widths, two
# activations: every sort column differs somewhere.
CHUNKS = [params(3, (1, 5)), params(3, (2, 3)), params(8, (0, 4)), params(3, (7,), "relu")]


@pytest.fixture(scope="module")
def measured():
    return [measure_cells([Cell(**c) for c in cells_of(p)], progress=None) for p in CHUNKS]


def old_csv_chunk(records, path):
    """The measuring job's CSV chunk before the store (main at 823250d)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


def old_gradients_csv(chunk_paths, path):
    """main at 823250d's merge: every chunk's lines as written, sorted by
    SORT_COLUMNS (typed), one CSV table."""
    rows = []
    for chunk in chunk_paths:
        with open(chunk, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            for fields in reader:
                row = dict(zip(header, fields))
                key = tuple(row[c] == "True" if c == "shortcut" else
                            float(row[c]) if c == "shortcut_scale" else
                            int(row[c]) if c in ("width", "depth", "seed", "layer") else row[c]
                            for c in SORT_COLUMNS)
                rows.append((key, fields))
    rows.sort(key=lambda row: row[0])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(fields for _, fields in rows)


def test_same_records_same_bytes_and_the_sha256_of_the_file(measured, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    digest = store.write_records(measured[0], a)
    assert store.write_records([dict(r) for r in measured[0]], b) == digest
    assert a.read_bytes() == b.read_bytes()
    assert digest == hashlib.sha256(a.read_bytes()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_the_schema_is_fixed_and_values_come_back_exactly(measured, tmp_path):
    records = [dict(r) for r in measured[0]]
    specials = [-0.0, math.nan, math.inf, -math.inf, 5e-324]
    for record, value in zip(records, specials):
        record["grad_abs_mean"] = value
    path = tmp_path / "c.parquet"
    store.write_records(records, path)
    schema = pq.read_schema(path)
    assert schema.names == COLUMNS
    kinds = {f.name: f.type for f in schema}
    assert kinds["seed"] == pa.int64() and kinds["shortcut"] == pa.bool_()
    assert kinds["grad_abs_mean"] == pa.float64() and kinds["branch_scale"] == pa.string()
    table = store.read_chunk(path, CHUNKS[0])
    assert table.num_rows == len(records)
    # repr of every value, as the csv module would write it
    assert [[repr(v) for v in row.values()] for row in table.to_pylist()] == \
        [[repr(r[c]) for c in COLUMNS] for r in records]


def refused(call, path, *words):
    with pytest.raises(store.CorruptChunk) as error:
        call()
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "run snakemake again" in message, message
    for word in words:
        assert word in message, message
    return message


def test_a_changed_byte_or_value_fails_the_recorded_sha256(measured, tmp_path):
    path = tmp_path / "c.parquet"
    digest = store.write_records(measured[0], path)
    store.verify(path, digest)
    table = pq.read_table(path)
    values = table.column("grad_abs_mean").to_pylist()
    values[3] *= 1.5  # believable, and the file stays valid Parquet
    at = COLUMNS.index("grad_abs_mean")
    edited = table.set_column(at, store.schema().field(at), pa.array(values, pa.float64()))
    path.write_bytes(store._parquet_bytes(edited))
    store.read_chunk(path, CHUNKS[0])  # nothing else could tell
    refused(lambda: store.read_chunk(path, CHUNKS[0], digest), path, "sha256")


def test_truncated_junk_wrong_schema_and_foreign_chunks_are_refused(measured, tmp_path):
    path = tmp_path / "c.parquet"
    store.write_records(measured[0], path)
    data = path.read_bytes()
    for cut in (0, 4, len(data) // 3, len(data) // 2, len(data) - 9, len(data) - 1):
        path.write_bytes(data[:cut])
        refused(lambda: store.read_chunk(path, CHUNKS[0]), path, "cannot be read")
    path.write_bytes(b"\xff\xfe\x00garbage")
    refused(lambda: store.read_chunk(path, CHUNKS[0]), path)
    store.write_records(measured[0], path)
    table = pq.read_table(path)
    pq.write_table(table.rename_columns([c.replace("grad_l2", "grad_norm")
                                         for c in table.column_names]), path)
    refused(lambda: store.read_chunk(path, CHUNKS[0]), path, "has columns")
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    refused(lambda: store.read_chunk(path, CHUNKS[0]), path, "one row per layer")
    store.write_records(measured[1], path)  # left over from another chunk
    refused(lambda: store.read_chunk(path, CHUNKS[0]), path, "not asked for")


def test_gradients_csv_from_parquet_has_the_bytes_of_the_csv_merge(measured, tmp_path,
                                                                   monkeypatch):
    csv_chunks, parquet_chunks, digests = [], [], []
    for i, records in enumerate(measured):
        old_csv_chunk(records, tmp_path / f"c{i}.csv")
        csv_chunks.append(tmp_path / f"c{i}.csv")
        digests.append(store.write_records(records, tmp_path / f"c{i}.parquet"))
        parquet_chunks.append(tmp_path / f"c{i}.parquet")
    old_gradients_csv(csv_chunks, tmp_path / "old.csv")
    expected = (tmp_path / "old.csv").read_bytes()
    n = store.write_gradients_csv(parquet_chunks, CHUNKS, tmp_path / "new.csv", digests)
    assert n == sum(map(len, measured)) == expected.count(b"\n") - 1
    assert (tmp_path / "new.csv").read_bytes() == expected
    # and the checked CSV reader takes it as the merge's table
    assert store.check_gradients_csv(tmp_path / "new.csv", CHUNKS) == n
    # merged in passes when there are more chunks than files held open
    monkeypatch.setattr(store, "MERGE_FAN_IN", 2)
    store.write_gradients_csv(parquet_chunks, CHUNKS, tmp_path / "passes.csv")
    assert (tmp_path / "passes.csv").read_bytes() == expected


def test_gradients_csv_refuses_a_bad_chunk_and_writes_nothing(measured, tmp_path):
    paths, digests = [], []
    for i, records in enumerate(measured[:2]):
        paths.append(tmp_path / f"c{i}.parquet")
        digests.append(store.write_records(records, paths[-1]))
    paths[1].write_bytes(paths[1].read_bytes()[:-100])
    out = tmp_path / "gradients.csv"
    refused(lambda: store.write_gradients_csv(paths, CHUNKS[:2], out, digests), paths[1])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c0.parquet",
                                                                               "c1.parquet"]


def test_the_recorded_sha256_is_read_from_partial_json(tmp_path):
    partial = tmp_path / "c.partial.json"
    assert store.recorded_sha256(partial) is None  # none recorded: nothing to check
    partial.write_text('{"version": 1, "chunk": {"width": 3}, "records_sha256": "%s"}'
                       % ("ab" * 32))
    assert store.recorded_sha256(partial, {"width": 3}) == "ab" * 32
    refused(lambda: store.recorded_sha256(partial, {"width": 8}), partial, "another chunk")
    partial.write_text('{"version": 1}')
    refused(lambda: store.recorded_sha256(partial), partial, "records_sha256")
    partial.write_text('{"vers')
    refused(lambda: store.recorded_sha256(partial), partial, "JSON")
