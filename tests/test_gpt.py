"""The book's GPT and one GPT cell's measurement through the family contract:
the book's numbers, and the measurement equal to a plain nn.Module reference
(seed, build, forward, backward(), one .item() per number) bit for bit."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shortcutbench.core.records import COLUMNS
from shortcutbench.measuring import family as runner
from shortcutbench.measuring.family import DTYPES, configure_torch
from shortcutbench.measuring.gpt import (
    GPT_CONFIG_124M,
    NORMS,
    GPTFamily,
    GPTModel,
    gpt_config,
    token_cosine,
    token_ids,
)

# The book's ch. 4 printout of GPTModel(GPT_CONFIG_124M)(batch) after
# torch.manual_seed(123): the first and last three logits of every token.
BOOK_BATCH = [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]
BOOK_LOGITS = [
    [[0.3613, 0.4222, -0.0711, 0.3483, 0.4661, -0.2838],
     [-0.1792, -0.5660, -0.9485, 0.0477, 0.5181, -0.3168],
     [0.7120, 0.0332, 0.1085, 0.1018, -0.4327, -0.2553],
     [-1.0076, 0.3418, -0.1190, 0.7195, 0.4023, 0.0532]],
    [[-0.2564, 0.0900, 0.0335, 0.2659, 0.4454, -0.6806],
     [0.1230, 0.3653, -0.2074, 0.7705, 0.2710, 0.2246],
     [1.0558, 1.0318, -0.2800, 0.6936, 0.3205, -0.3178],
     [-0.1565, 0.3926, 0.3288, 1.2630, -0.1858, 0.0388]],
]
SMALL = {"blocks": 3, "emb_dim": 32, "n_heads": 4, "vocab_size": 64, "context_length": 16,
         "n_tokens": 12, "seed": 0, "shortcut": True, "norm": "pre_layernorm",
         "qkv_bias": False, "dtype": "float32"}
MODEL_KEYS = ("emb_dim", "n_heads", "vocab_size", "context_length", "n_tokens", "qkv_bias")


def small_cell(**changes):
    """A GPT small enough for milliseconds a cell, as (cell fields, options)."""
    c = {**SMALL, **changes}
    cell = {"model": "gpt", "depth": c["blocks"], "width": c["emb_dim"], "seed": c["seed"],
            "shortcut": c["shortcut"], "shortcut_scale": 1.0 if c["shortcut"] else 0.0,
            "branch_scale": "1", "activation": "gelu_tanh", "init": "pytorch",
            "norm": c["norm"], "device": "cpu", "dtype": c["dtype"]}
    return cell, {k: c[k] for k in MODEL_KEYS}


def measure(cell_options):
    cell, options = cell_options
    return runner.measure_cell(GPTFamily(), cell, options)


def reference(cell_options):
    """The plain way, written out here: seed, GPTModel, eval, forward with
    hooks on the embeddings and blocks, cross-entropy against the next id,
    backward(), then one .item() per number."""
    cell, o = cell_options
    blocks = cell["depth"]
    cfg = gpt_config(blocks, o["emb_dim"], o["n_heads"], o["vocab_size"], o["context_length"],
                     o["qkv_bias"])
    torch.manual_seed(cell["seed"])
    model = GPTModel(cfg, cell["shortcut"], cell["norm"]).to(DTYPES[cell["dtype"]])
    model.eval()
    streams = {}
    model.drop_emb.register_forward_hook(lambda m, i, out: streams.__setitem__(-1, out))
    for b, block in enumerate(model.trf_blocks):
        block.register_forward_hook(lambda m, i, out, b=b: streams.__setitem__(b, out))
    ids, targets = token_ids(o["n_tokens"], o["vocab_size"])
    logits = model(ids)
    streams[blocks] = logits
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    with torch.no_grad():
        rms = {k: v.double().square().mean().sqrt().item() for k, v in streams.items()}
        cosine = token_cosine(streams[blocks - 1]).item()
        records = []
        for name, p in model.named_parameters():
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            layer = (int(name.split(".")[1]) if name.startswith("trf_blocks.") else
                     -1 if name.startswith(("tok_emb.", "pos_emb.")) else blocks)
            records.append({"param": name, "layer": layer, "numel": p.numel(),
                            "grad_abs_mean": grad.abs().mean().item(),
                            "grad_l2": torch.linalg.vector_norm(grad,
                                                                dtype=torch.float64).item(),
                            "output_rms": rms[layer], "loss": loss.item(),
                            "token_cosine": cosine})
    values = [v for r in records for v in (r["grad_abs_mean"], r["grad_l2"], r["output_rms"])]
    finite = all(math.isfinite(v) for v in values + [loss.item(), cosine])
    return [{**r, "finite": finite} for r in records]


@pytest.fixture(autouse=True)
def one_thread():
    """Measuring jobs run with one intra-op thread; so do these tests."""
    configure_torch()


def same_records(measured, expected):
    """Every key of the reference's records equal bit for bit (NaN equal to NaN)."""
    assert len(measured) == len(expected)
    for a, b in zip(measured, expected):
        for key in b:
            if isinstance(b[key], float) and math.isnan(b[key]):
                assert math.isnan(a[key]), (b["param"], key)
            else:
                assert a[key] == b[key] and type(a[key]) is type(b[key]), \
                    (b["param"], key, a[key], b[key])


def test_124m_parameter_count():
    with torch.device("meta"):  # shapes only: no memory, no time
        model = GPTModel(GPT_CONFIG_124M)
    assert sum(p.numel() for p in model.parameters()) == 163_009_536


def test_config_function_gives_the_books_dict():
    assert gpt_config(12, 768, 12, 50257, 1024, False) == GPT_CONFIG_124M


def test_books_printed_logits():
    """In training mode, as the book prints them: dropout draws from the
    generator right after the weights did, so nothing is reseeded between."""
    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)
    with torch.no_grad():
        logits = model(torch.tensor(BOOK_BATCH))
    assert logits.shape == (2, 4, 50257)
    shown = torch.cat([logits[..., :3], logits[..., -3:]], dim=-1).tolist()
    # As torch prints them: each float formatted to 4 decimals.
    as_printed = [[[f"{v:.4f}" for v in row] for row in sequence] for sequence in shown]
    assert as_printed == [[[f"{v:.4f}" for v in row] for row in sequence]
                          for sequence in BOOK_LOGITS]


@pytest.mark.parametrize("norm", NORMS)
def test_without_shortcut_the_parameters_are_the_same(norm):
    def parameters(shortcut):
        torch.manual_seed(5)
        model = GPTModel(gpt_config(2, 32, 4, 64, 16), shortcut, norm)
        return list(model.named_parameters())

    with_shortcut, without = parameters(True), parameters(False)
    assert [n for n, _ in with_shortcut] == [n for n, _ in without]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(with_shortcut, without))


CASES = list(itertools.product([False, True], NORMS, [0, 123]))


@pytest.mark.parametrize("shortcut, norm, seed", CASES)
def test_measurement_equals_the_reference_bit_for_bit(shortcut, norm, seed):
    cell = small_cell(shortcut=shortcut, norm=norm, seed=seed)
    same_records(measure(cell), reference(cell))


@pytest.mark.parametrize("changes", [
    {"qkv_bias": True},
    {"blocks": 1, "n_tokens": 2},
    {"blocks": 6, "emb_dim": 64, "n_heads": 2, "vocab_size": 100, "context_length": 40,
     "n_tokens": 40},
    {"dtype": "float64", "shortcut": False, "norm": "post_layernorm"},
    {"dtype": "bfloat16"},
])
def test_measurement_equals_the_reference_on_other_cells(changes):
    cell = small_cell(**changes)
    same_records(measure(cell), reference(cell))


@pytest.mark.parametrize("norm, shortcut, qkv_bias",
                         [(norm, True, False) for norm in NORMS] + [("none", False, True)])
def test_a_redrawn_model_is_a_new_one_bit_for_bit(norm, shortcut, qkv_bias):
    """The runner measures every seed of a depth, shortcut and norm on one
    model, drawn again per seed (GPTFamily.redraw): its weights must be
    those GPTModel draws after the same seed."""
    family = GPTFamily()
    _, options = small_cell(qkv_bias=qkv_bias)
    model, _, _ = family.build(3, shortcut, norm, options)
    for seed in (5, 0, 123):
        torch.manual_seed(seed)
        family.redraw(model)
        torch.manual_seed(seed)
        fresh, _, _ = family.build(3, shortcut, norm, options)
        drawn, expected = model.state_dict(), fresh.state_dict()
        assert list(drawn) == list(expected)
        assert all(torch.equal(drawn[k], expected[k]) for k in expected)


def test_a_chunk_measured_on_shared_models_equals_each_cell_alone():
    """measure_cells groups a chunk's cells by model (seeds measured on one
    model, drawn again) and gives them back in the chunk's order: every
    record equals that of the cell measured alone, in either order of the
    cells.  Among them: cells of one model with another lambda or alpha
    (the generic switch around the shared model), and float64 cells, whose
    model is moved and so built anew for each seed."""
    def cell(**changes):
        fields, _ = small_cell(**{k: v for k, v in changes.items() if k in SMALL})
        return {**fields, **{k: v for k, v in changes.items() if k not in SMALL}}

    cells = [cell(seed=seed, shortcut=shortcut, norm=norm, blocks=blocks)
             for seed in (7, 3) for blocks in (1, 2) for norm in ("pre_layernorm", "none")
             for shortcut in (False, True)]
    cells[3:3] = [cell(seed=3, dtype="float64"), cell(seed=7, dtype="float64"),
                  cell(seed=3, blocks=2, shortcut_scale=0.5),
                  cell(seed=7, blocks=2, branch_scale="1/sqrt(depth)")]
    _, options = small_cell()
    for order in (cells, cells[::-1]):
        got = GPTFamily().measure_cells(order, options, progress=None)
        same_records(got, [r for c in order for r in runner.measure_cell(GPTFamily(), c, options)])
    plain = [c for c in cells
             if c["shortcut_scale"] == float(c["shortcut"]) and c["branch_scale"] == "1"]
    same_records(GPTFamily().measure_cells(plain, options, progress=None),
                 [r for c in plain for r in reference((c, options))])


def test_records_layout():
    cell = small_cell(seed=3)
    records = measure(cell)
    assert all(list(r) == COLUMNS for r in records)
    torch.manual_seed(0)
    names = [n for n, _ in GPTModel(gpt_config(3, 32, 4, 64, 16)).named_parameters()]
    assert [r["param"] for r in records] == names
    layers = {r["param"]: r["layer"] for r in records}
    assert layers["tok_emb.weight"] == layers["pos_emb.weight"] == -1
    assert layers["trf_blocks.2.ff.layers.0.weight"] == 2
    assert layers["final_norm.scale"] == layers["out_head.weight"] == 3
    first = records[0]
    assert (first["model"], first["depth"], first["width"], first["shortcut_scale"]) == \
        ("gpt", 3, 32, 1.0)
    assert first["numel"] == 64 * 32 and first["branch_scale"] == "1"
    assert math.isnan(first["output"]) and math.isnan(first["bias_grad_abs_mean"])
    assert measure(small_cell(shortcut=False))[0]["shortcut_scale"] == 0.0
    assert all(r["finite"] for r in records)
    assert len({r["loss"] for r in records}) == len({r["token_cosine"] for r in records}) == 1


def test_unapplied_norms_have_zero_gradient():
    records = measure(small_cell(norm="none"))
    norm_rows = [r for r in records if r["param"].endswith((".scale", ".shift"))]
    assert norm_rows and all(r["grad_abs_mean"] == r["grad_l2"] == 0.0 for r in norm_rows)
    assert all(r["grad_abs_mean"] > 0 for r in records if r not in norm_rows)


def test_token_collapse_without_shortcuts():
    """The issue's case: 48 blocks of emb 128 (4 heads, vocab 512), seed 123.
    Without shortcuts every token leaves the top block as the same vector,
    and block 0's W_query gradient all but vanishes; with them, neither."""
    def collapse(shortcut):
        records = measure(small_cell(blocks=48, emb_dim=128, vocab_size=512, context_length=64,
                                     n_tokens=64, seed=123, shortcut=shortcut))
        w_query = next(r["grad_abs_mean"] for r in records
                       if r["param"] == "trf_blocks.0.att.W_query.weight")
        return records[0]["token_cosine"], w_query

    (cos_without, w_without), (cos_with, w_with) = collapse(False), collapse(True)
    assert cos_without > 0.999 and w_without < 1e-15
    assert cos_with == pytest.approx(0.37, abs=0.02) and w_with == pytest.approx(1.4e-4, rel=0.05)


def test_overflow_is_recorded_not_raised(monkeypatch):
    """An inf among the weights (as an overflowing dtype would make) comes
    back as finite=False from the measurement and the reference alike."""
    original = GPTModel.__init__

    def poisoned(self, *args, **kwargs):
        original(self, *args, **kwargs)
        with torch.no_grad():
            self.tok_emb.weight[0, 0] = math.inf

    monkeypatch.setattr(GPTModel, "__init__", poisoned)
    cell = small_cell()
    measured = measure(cell)
    assert not any(r["finite"] for r in measured)
    same_records(measured, reference(cell))


@pytest.mark.parametrize("changes, key", [
    ({"emb_dim": 30, "n_heads": 4}, "emb_dim"),
    ({"n_tokens": 17}, "n_tokens"),
    ({"n_tokens": 1}, "n_tokens"),
    ({"blocks": 0}, "blocks"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"norm": "layernorm"}, "norm"),
])
def test_bad_configs_name_the_key(changes, key):
    with pytest.raises(ValueError, match=f"^{key}:"):
        measure(small_cell(**changes))


@pytest.mark.slow
def test_124m_gradients_per_block():
    """Seed 123, 64 tokens: with shortcuts W_query's mean |grad| is nearly
    flat over the 12 blocks (6.2e-5 to 4.7e-5, as the issue measured);
    without them it falls by two orders of magnitude."""
    def w_query(shortcut):
        records = measure(small_cell(blocks=12, emb_dim=768, n_heads=12, vocab_size=50257,
                                     context_length=1024, n_tokens=64, seed=123,
                                     shortcut=shortcut))
        return [r["grad_abs_mean"] for r in records if r["param"].endswith("W_query.weight")]

    with_shortcut, without = w_query(True), w_query(False)
    assert with_shortcut[0] == pytest.approx(6.2e-5, rel=0.01)
    assert with_shortcut[-1] == pytest.approx(4.7e-5, rel=0.01)
    assert without[0] / without[-1] > 100


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_batched_statistics_equal_one_tensor_at_a_time(dtype):
    """The runner stacks same-shaped gradients and reduces them in one op;
    the floats must be those of reducing each tensor alone."""
    generator = torch.Generator().manual_seed(0)
    for shape in [(1,), (7,), (512,), (3072,), (16383,), (31, 45), (64, 64), (1, 64, 768)]:
        tensors = [torch.randn(shape, generator=generator).to(dtype) for _ in range(3)]
        out = torch.empty(6, dtype=torch.float64)
        runner.grad_statistics(tensors, out)
        alone = [v for t in tensors
                 for v in (t.abs().mean().item(),
                           torch.linalg.vector_norm(t, dtype=torch.float64).item())]
        assert out.tolist() == alone


def test_token_collapse_section_is_of_the_reference_setting():
    """A sweep of two dtypes: the collapse table, figure and finding are of
    float32 on the CPU (analysis/family_laws.reference_setting), not a mix
    of both or whichever came last, and their labels name the setting."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from shortcutbench.analysis.gpt_section import NORM_LABELS, gpt_extra

    cosine = {("float32", False): 0.995, ("float32", True): 0.3,
              ("bfloat16", False): 0.5, ("bfloat16", True): 0.7}
    rows = [{"model": "gpt", "dtype": dtype, "device": "cpu", "norm": "pre_layernorm",
             "shortcut": shortcut, "shortcut_scale": 1.0 if shortcut else 0.0,
             "branch_scale": "1", "depth": depth, "token_cosine_n": 2,
             "token_cosine_mean": cosine[(dtype, shortcut)] - 0.01 * (depth == 2),
             "token_cosine_m2": 1e-4}
            for dtype in ("float32", "bfloat16") for shortcut in (False, True)
            for depth in (2, 8)]
    frames = {"cells": pd.DataFrame(rows)}
    extra, figures = gpt_extra(frames, {"deepest": 8, "title": "The book's GPT"})
    try:
        finding = extra["finding"]
        assert (finding["without"], finding["with"]) == (0.995, 0.3) and finding["collapse"]
        assert len(extra["collapse"]) == 4  # one row per arm and depth, none doubled
        assert {(r["dtype"], r["device"]) for r in extra["collapse"]} == {("float32", "cpu")}
        assert extra["setting"] == {"dtype": "float32", "device": "cpu"}
        assert "float32 on cpu" in finding["label"]
        assert "float32 on cpu" in extra["norm_labels"]["pre_layernorm"]  # the table's rows
        ax = figures["collapse"].axes[0]
        lines = [line for line in ax.get_lines() if len(line.get_xdata())]
        assert sorted(tuple(line.get_ydata()) for line in lines) == [(0.29, 0.3),
                                                                      (0.985, 0.995)]
        assert "float32 on cpu" in " ".join(t.get_text() for t in figures["collapse"].texts)
    finally:
        plt.close("all")

    # One setting: nothing to say about it.
    frames = {"cells": pd.DataFrame([r for r in rows if r["dtype"] == "bfloat16"])}
    extra, _ = gpt_extra(frames, {"deepest": 8, "title": "The book's GPT"})
    plt.close("all")
    assert extra["norm_labels"] == NORM_LABELS
    assert (extra["finding"]["without"], extra["finding"]["with"]) == (0.5, 0.7)


def test_the_token_cosines_interval_stays_within_a_cosines_range():
    from shortcutbench.analysis.gpt_section import _cosine

    values = np.array([0.97, 0.99, 0.999, 1.0])
    row = {"token_cosine_n": len(values), "token_cosine_mean": values.mean(),
           "token_cosine_m2": ((values - values.mean()) ** 2).sum()}
    shown = _cosine(row)
    assert shown["high"] == 1.0 and 0.9 < shown["low"] < shown["mean"] < 1.0
