"""The book's GPT and one GPT cell's measurement: the book's numbers, and
the fast measurement equal to the plain nn.Module one bit for bit."""

import itertools
import math

import pytest
import torch

from shortcutbench.measuring import measure_gpt
from shortcutbench.measuring.gpt import GPT_CONFIG_124M, NORMS, GPTModel, gpt_config
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.measure_gpt import (
    GPTCell,
    init_gpt_parameters,
    measure_gpt_cell,
    measure_gpt_cell_reference,
)

RECORD_KEYS = ["model", "depth", "width", "seed", "shortcut", "shortcut_scale", "activation",
               "init", "norm", "device", "dtype", "layer", "param", "grad_abs_mean", "grad_l2",
               "output_rms", "loss", "token_cosine", "finite"]

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


def small_cell(**changes):
    """A GPT small enough for milliseconds a cell."""
    fields = {"blocks": 3, "emb_dim": 32, "n_heads": 4, "vocab_size": 64,
              "context_length": 16, "n_tokens": 12, "seed": 0, "shortcut": True,
              "norm": "pre_layernorm"}
    return GPTCell(**{**fields, **changes})


@pytest.fixture(autouse=True)
def one_thread():
    """Measuring jobs run with one intra-op thread; so do these tests."""
    configure_torch()


def same_records(fast, reference):
    """Equal bit for bit (NaN equal to NaN), key order included."""
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        assert list(a) == list(b)
        for key in a:
            if isinstance(a[key], float) and math.isnan(a[key]):
                assert math.isnan(b[key]), (a["param"], key)
            else:
                assert a[key] == b[key] and type(a[key]) is type(b[key]), \
                    (a["param"], key, a[key], b[key])


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


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_drawn_parameters_are_the_modules(qkv_bias):
    cfg = gpt_config(2, 32, 4, 64, 16, qkv_bias)
    torch.manual_seed(9)
    module = dict(GPTModel(cfg).named_parameters())
    torch.manual_seed(9)
    drawn = init_gpt_parameters(cfg)
    assert list(drawn) == list(module)
    assert all(torch.equal(drawn[name], module[name]) for name in module)


CASES = list(itertools.product([False, True], NORMS, [0, 123]))


@pytest.mark.parametrize("shortcut, norm, seed", CASES)
def test_measurement_equals_the_reference_bit_for_bit(shortcut, norm, seed):
    cell = small_cell(shortcut=shortcut, norm=norm, seed=seed)
    same_records(measure_gpt_cell(cell), measure_gpt_cell_reference(cell))


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
    same_records(measure_gpt_cell(cell), measure_gpt_cell_reference(cell))


def test_records_layout():
    cell = small_cell(seed=3)
    records = measure_gpt_cell(cell)
    assert all(list(r) == RECORD_KEYS for r in records)
    torch.manual_seed(0)
    names = [n for n, _ in GPTModel(cell.config()).named_parameters()]
    assert [r["param"] for r in records] == names
    layers = {r["param"]: r["layer"] for r in records}
    assert layers["tok_emb.weight"] == layers["pos_emb.weight"] == -1
    assert layers["trf_blocks.2.ff.layers.0.weight"] == 2
    assert layers["final_norm.scale"] == layers["out_head.weight"] == cell.blocks
    first = records[0]
    assert (first["model"], first["depth"], first["width"], first["shortcut_scale"]) == \
        ("gpt", 3, 32, 1.0)
    assert measure_gpt_cell(small_cell(shortcut=False))[0]["shortcut_scale"] == 0.0
    assert all(r["finite"] for r in records)
    assert len({r["loss"] for r in records}) == len({r["token_cosine"] for r in records}) == 1


def test_unapplied_norms_have_zero_gradient():
    records = measure_gpt_cell(small_cell(norm="none"))
    norm_rows = [r for r in records if r["param"].endswith((".scale", ".shift"))]
    assert norm_rows and all(r["grad_abs_mean"] == r["grad_l2"] == 0.0 for r in norm_rows)
    assert all(r["grad_abs_mean"] > 0 for r in records if r not in norm_rows)


def test_token_collapse_without_shortcuts():
    """The issue's case: 48 blocks of emb 128 (4 heads, vocab 512), seed 123.
    Without shortcuts every token leaves the top block as the same vector,
    and block 0's W_query gradient all but vanishes; with them, neither."""
    def measure(shortcut):
        records = measure_gpt_cell(GPTCell(48, 128, 4, 512, 64, 64, 123, shortcut))
        w_query = next(r["grad_abs_mean"] for r in records
                       if r["param"] == "trf_blocks.0.att.W_query.weight")
        return records[0]["token_cosine"], w_query

    (cos_without, w_without), (cos_with, w_with) = measure(False), measure(True)
    assert cos_without > 0.999 and w_without < 1e-15
    assert cos_with == pytest.approx(0.37, abs=0.02) and w_with == pytest.approx(1.4e-4, rel=0.05)


def test_overflow_is_recorded_not_raised(monkeypatch):
    """An inf among the weights (as an overflowing dtype would make) comes
    back as finite=False from both measurements, alike."""
    def poisoned(draw):
        def wrapper(*args, **kwargs):
            result = draw(*args, **kwargs)
            weights = result.tok_emb.weight if isinstance(result, GPTModel) \
                else result["tok_emb.weight"]
            with torch.no_grad():
                weights[0, 0] = math.inf
            return result
        return wrapper

    monkeypatch.setattr(measure_gpt, "init_gpt_parameters",
                        poisoned(measure_gpt.init_gpt_parameters))
    monkeypatch.setattr(measure_gpt, "GPTModel", poisoned(GPTModel))
    cell = small_cell()
    fast, reference = measure_gpt_cell(cell), measure_gpt_cell_reference(cell)
    assert not any(r["finite"] for r in fast)
    same_records(fast, reference)


@pytest.mark.parametrize("changes, key", [
    ({"emb_dim": 30, "n_heads": 4}, "emb_dim"),
    ({"n_tokens": 17}, "n_tokens"),
    ({"n_tokens": 1}, "n_tokens"),
    ({"blocks": 0}, "blocks"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"norm": "layernorm"}, "norm"),
    ({"dtype": "float8"}, "dtype"),
])
def test_bad_configs_name_the_key(changes, key):
    cell = small_cell(**changes)
    for measure in (measure_gpt_cell, measure_gpt_cell_reference):
        with pytest.raises(ValueError, match=f"^{key}:"):
            measure(cell)


@pytest.mark.slow
def test_124m_gradients_per_block():
    """Seed 123, 64 tokens: with shortcuts W_query's mean |grad| is nearly
    flat over the 12 blocks (6.2e-5 to 4.7e-5, as the issue measured);
    without them it falls by two orders of magnitude."""
    def w_query(shortcut):
        records = measure_gpt_cell(GPTCell(12, 768, 12, 50257, 1024, 64, 123, shortcut))
        return [r["grad_abs_mean"] for r in records if r["param"].endswith("W_query.weight")]

    with_shortcut, without = w_query(True), w_query(False)
    assert with_shortcut[0] == pytest.approx(6.2e-5, rel=0.01)
    assert with_shortcut[-1] == pytest.approx(4.7e-5, rel=0.01)
    assert without[0] / without[-1] > 100


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_batched_statistics_equal_one_tensor_at_a_time(dtype):
    """measure_gpt_cell stacks same-shaped gradients and reduces them in one
    op; the floats must be those of reducing each tensor alone."""
    generator = torch.Generator().manual_seed(0)
    for shape in [(1,), (7,), (512,), (3072,), (16383,), (31, 45), (64, 64), (1, 64, 768)]:
        tensors = [torch.randn(shape, generator=generator).to(dtype) for _ in range(3)]
        out = torch.empty(6, dtype=torch.float64)
        measure_gpt._grad_statistics(tensors, out)
        alone = [v for t in tensors
                 for v in (t.abs().mean().item(),
                           torch.linalg.vector_norm(t, dtype=torch.float64).item())]
        assert out.tolist() == alone
        rms = measure_gpt._rms(torch.stack(tensors)).tolist()
        assert rms == [t.double().square().mean().sqrt().item() for t in tensors]
