"""Tampering with a pack: a measuring job that held several chunks
(core/sweep.py's Pack) wrote one records file, one partial-results file
and the names of its chunks beside its partial results
(results/partials/.../pack~....chunks.json).

An edited records file or partial result is refused by the merge, naming
the file, as a single chunk's is (test_tampering.py).  The names of its
chunks are never trusted: the pack's name is the digest of those names, so
an edited or removed list is ignored by the next plan, which packs the same
chunks into the same pack again, and results/ stays the run's bytes.
"""

import json
import shutil

import pytest

from .helpers import run, tree, workflow_config
from .test_tampering import edit_a_parquet_value, edit_a_partial_value

# Three blocks of seeds ({1}, {2, 3}, {4}), packed into one measuring job.
PACKED_CONFIG = workflow_config(depths=[1, 4, 16, 64], seeds=[1, 2, 3, 4], seeds_per_job=2)
MERGED = "results/partials.json"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A finished run of PACKED_CONFIG up to the merge, and its results/."""
    workdir = tmp_path_factory.mktemp("packed")
    run(workdir, PACKED_CONFIG, MERGED)
    results = tree(workdir / "results")
    packs = [name for name in results if "/pack~" in name and name.endswith(".parquet")]
    assert len(packs) == 1, sorted(results)
    return workdir, results, packs[0][: -len(".parquet")]


def copy_of(packed, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(packed[0], workdir, symlinks=True)
    return workdir


@pytest.mark.parametrize("part, tamper", [
    ("{pack}.parquet", edit_a_parquet_value),
    ("partials/{pack}.json", edit_a_partial_value),
])
def test_an_edited_pack_stops_the_merge_naming_the_file(packed, tmp_path, part, tamper,
                                                        counts):
    workdir, pack = copy_of(packed, tmp_path), packed[2]
    target = part.format(pack=pack)
    path = workdir / "results" / target
    path.write_bytes(tamper(path.read_bytes()))
    (workdir / MERGED).unlink()  # the merge runs again, and reads every part

    result = run(workdir, PACKED_CONFIG, MERGED, check=False)
    counts.add("tampering", pack_files_edited=1)
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"results/{target}: " in result.stdout, result.stdout[-3000:]
    assert "run snakemake again" in result.stdout
    assert not (workdir / MERGED).exists()
    counts.add("tampering", pack_edits_refused_naming_file=1)


@pytest.mark.parametrize("edit", ["one chunk's name left", "a foreign name", "removed",
                                  "not JSON"])
def test_the_names_of_a_pack_s_chunks_are_never_trusted(packed, tmp_path, edit, counts):
    workdir, results, pack = copy_of(packed, tmp_path), packed[1], packed[2]
    names = workdir / "results" / "partials" / f"{pack}.chunks.json"
    held = json.loads(names.read_text())
    assert len(held) == 3, held
    if edit == "removed":
        names.unlink()
    else:
        names.write_text({"one chunk's name left": json.dumps(held[:1]),
                          "a foreign name": json.dumps(held[:2] + [held[2] + "0"]),
                          "not JSON": "[\"cells/"}[edit])

    result = run(workdir, PACKED_CONFIG, MERGED)
    counts.add("tampering", pack_chunk_lists_edited=1)
    # the same pack, planned again from the config: nothing measured again,
    # nothing new, every result the run's bytes
    assert "Nothing to be done" in result.stdout, result.stdout[-3000:]
    after = tree(workdir / "results")
    names = f"partials/{pack}.chunks.json"
    assert set(after) - {names} == set(results) - {names}
    for name, data in results.items():
        if name != names:
            assert after[name] == data, f"results/{name} changed"
    counts.add("tampering", pack_chunk_lists_ignored=1)
