"""The GPT family in the workflow (issue 13): its config and its errors,
its chunks, its cells' partial results and states, and a real small run
with models [mlp, gpt] through to the report's GPT section."""

import json
import math
import re

import numpy as np
import pytest
from conftest import REPO, snakemake

from shortcutbench.core import cell_stats, gpt, partials
from shortcutbench.core.config import ConfigError, validate_config
from shortcutbench.core.records import COLUMNS
from shortcutbench.core.sweep import CHUNK_PATTERN, n_gpt_cells, plan_chunks

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY_GPT = {"blocks": [1, 2], "emb_dim": 16, "n_heads": 2, "vocab_size": 32,
            "context_length": 16, "n_tokens": 8, "seeds": [0, 1]}


def config(**changes):
    return {"depths": [1, 2], "widths": [3], "seeds": [122, 123], "devices": ["cpu"],
            **changes}


def test_models_default_to_the_mlp_and_gpt_takes_the_fast_defaults():
    plain = config()
    validate_config(plain, SCHEMA)
    assert plain["models"] == ["mlp"]
    with_gpt = config(models=["mlp", "gpt"])
    sweep = validate_config(with_gpt, SCHEMA)
    assert with_gpt["gpt"] == {
        "blocks": [1, 2, 4, 6, 8, 12, 16, 24, 32], "seeds": [0, 1, 2, 3, 4],
        "shortcut": [False, True], "norms": ["pre_layernorm", "post_layernorm", "none"],
        "emb_dim": 128, "n_heads": 4, "vocab_size": 512, "context_length": 64,
        "n_tokens": 64, "qkv_bias": False}
    assert n_gpt_cells(sweep) == 270


@pytest.mark.parametrize("section, key, words", [
    ({"emb_dim": 30}, "emb_dim", "not divisible by n_heads"),
    ({"n_tokens": 65}, "n_tokens", "more than context_length"),
    ({"n_tokens": 1}, "n_tokens", "minimum of 2"),
    ({"norms": ["layernorm"]}, "norms", "is not one of"),
    ({"heads": 4}, "heads", "did you mean 'n_heads'"),
])
def test_gpt_config_errors_name_the_key_before_anything_runs(section, key, words):
    with pytest.raises(ConfigError) as error:
        validate_config(config(models=["mlp", "gpt"], gpt=section), SCHEMA)
    assert key in str(error.value) and words in str(error.value)


def test_the_124m_config_is_reachable():
    c = config(models=["mlp", "gpt"], gpt={"blocks": [12], "emb_dim": 768, "n_heads": 12,
                                     "vocab_size": 50257, "context_length": 1024})
    chunk, = [ch for ch in plan_chunks(validate_config(c, SCHEMA), "/nonexistent")
              if ch.params().get("model") == "gpt"]
    p = chunk.params()
    assert gpt.gpt_config(12, p["width"], p["n_heads"], p["vocab_size"], p["context_length"],
                          p["qkv_bias"]) == gpt.GPT_CONFIG_124M
    assert gpt.n_parameters(12, 768, 50257, 1024) == 163_009_536
    # ~0.4 GiB of torch + ~2.6x the parameters' 622 MiB, measured; requested with a margin
    assert 2300 < chunk.mem_mb() < 4000


def test_gpt_chunks_group_by_model_config(tmp_path):
    c = config(models=["mlp", "gpt"], seeds_per_job=1,
               gpt={**TINY_GPT, "dtypes": ["float32", "float64"]})
    chunks = plan_chunks(validate_config(c, SCHEMA), tmp_path)
    names = sorted(ch.name for ch in chunks)
    assert "cells/device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~122" in names
    assert [n for n in names if "model~gpt" in n] == [
        "cells/model~gpt/device~cpu/dtype~float32/width~16/seeds~0",
        "cells/model~gpt/device~cpu/dtype~float32/width~16/seeds~1",
        "cells/model~gpt/device~cpu/dtype~float64/width~16/seeds~0",
        "cells/model~gpt/device~cpu/dtype~float64/width~16/seeds~1"]
    assert all(re.fullmatch(CHUNK_PATTERN, n) for n in names)
    gpt_chunk = next(ch for ch in chunks if "model~gpt" in ch.name)
    params = gpt_chunk.params()
    assert {k: params[k] for k in ("n_heads", "vocab_size", "context_length", "n_tokens",
                                   "qkv_bias")} == {"n_heads": 2, "vocab_size": 32,
                                                    "context_length": 16, "n_tokens": 8,
                                                    "qkv_bias": False}
    cells = gpt_chunk.cells()
    assert len(cells) == 2 * 3 * 2  # blocks x norms x shortcut, one seed
    assert cells[0] == {"model": "gpt", "depth": 1, "width": 16, "seed": 0, "shortcut": False,
                        "shortcut_scale": 0.0, "branch_scale": "1", "activation": "gelu_tanh",
                        "init": "pytorch", "norm": "none", "device": "cpu",
                        "dtype": "float32"}


def test_gpt_partials_states_and_token_cosine():
    from shortcutbench.measuring.measure_gpt import measure_gpt_chunk

    params = {"model": "gpt", "device": "cpu", "dtype": "float32", "width": 16,
              "seeds": [0, 1], "blocks": [1, 4], "shortcuts": [False, True],
              "norms": ["none", "pre_layernorm"], "n_heads": 2, "vocab_size": 32,
              "context_length": 16, "n_tokens": 8, "qkv_bias": False}
    records = measure_gpt_chunk(params, progress=None)
    assert all(list(r) == COLUMNS for r in records)
    assert all(math.isnan(r["output"]) and r["branch_scale"] == "1" for r in records)
    part = partials.chunk_partials(records)
    cells = part["cells"]
    columns = cells["columns"]
    rows = [dict(zip(columns, row)) for row in cells["rows"]]
    assert len(rows) == 2 * 2 * 2 and all(r["n_cells"] == 2 for r in rows)
    assert all(sum(r[f"state_{s.replace('-', '_')}"] for s in ("healthy", "vanished",
               "exploded", "dead", "non-finite")) == 2 for r in rows)
    assert all(r["token_cosine_n"] == 2 and -1 <= r["token_cosine_mean"] <= 1 for r in rows)
    # first_grad is block 0's W_query
    starts = [i for i, r in enumerate(records) if r["param"] == "tok_emb.weight"]
    values = cell_stats.gpt_values_many(
        {k: [r[k] for r in records] for k in COLUMNS}, starts)
    first = [r["grad_abs_mean"] for r in records
             if r["param"] == "trf_blocks.0.att.W_query.weight"]
    assert np.array_equal(values["first_grad"], first)
    assert not part["book"]["rows"]  # the book's MLP cell is never a GPT one


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gpt_run")
    snakemake(workdir, config(models=["mlp", "gpt"], gpt=TINY_GPT))
    return workdir


def test_a_small_run_with_both_families_reports_the_gpt_section(tiny_run):
    html = (tiny_run / "report" / "index.html").read_text()
    assert '<section id="gpt">' in html
    assert html.index('<section id="laws">') < html.index('<section id="gpt">') \
        < html.index('<section id="provenance">')
    numbers = json.loads((tiny_run / "results" / "gpt.json").read_text())
    assert numbers["blocks"] == [1, 2] and numbers["seeds"] == [0, 1]
    assert numbers["n_cells"] == 2 * 2 * 3 * 2
    assert numbers["config"]["n_heads"] == 2
    tables = json.loads((tiny_run / "results" / "tables.json").read_text())
    assert tables["sweep"]["axes"]["model"] == ["mlp"]  # the MLP's tables stay the MLP's
    chunk = "cells/model~gpt/device~cpu/dtype~float32/width~16/seeds~0-1"
    assert (tiny_run / "results" / f"{chunk}.parquet").exists()
    assert (tiny_run / "results" / "partials" / f"{chunk}.json").exists()
