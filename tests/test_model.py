"""The network and one cell's measurement: the book's numbers, bit for bit."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shortcutbench.core.book import BOOK_GRADIENTS, RTOL
from shortcutbench.core.records import COLUMNS, Cell
from shortcutbench.measuring.family import DTYPES
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.mlp.exact import measure_cell, measure_cell_book_style
from shortcutbench.measuring.mlp.model import (
    ACTIVATIONS,
    ExampleDeepNeuralNetwork,
    forward,
    init_parameters,
    layer_sizes,
    sample_input,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Measuring jobs run with one intra-op thread; so do these tests."""
    configure_torch()


def same(a, b):
    """Records equal bit for bit, NaN (an undefined cosine) equal to NaN."""
    def mark(records):
        return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v
                                 for k, v in r.items()} for r in records]
    return mark(a) == mark(b)


def book_print_gradients(model, x):
    """The book's print_gradients, returning instead of printing."""
    output = model(x)
    target = torch.tensor([[0.]])
    loss = nn.MSELoss()
    loss = loss(output, target)
    loss.backward()
    return [param.grad.abs().mean().item()
            for name, param in model.named_parameters() if "weight" in name]


def book_listing(use_shortcut, activation="gelu_tanh", seed_first=True, x=None):
    """The book's own listing: seed, build, print_gradients."""
    if seed_first:
        torch.manual_seed(123)
    model = ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], use_shortcut, activation)
    if not seed_first:
        torch.manual_seed(123)
    return book_print_gradients(model, sample_input(3) if x is None else x)


def test_sample_input_is_the_books():
    assert sample_input(3).tolist() == [[1.0, 0.0, -1.0]]
    assert layer_sizes(5, 3) == [3, 3, 3, 3, 3, 1]


def test_parameter_names_are_the_books():
    model = ExampleDeepNeuralNetwork(layer_sizes(5, 3), True)
    weights = [name for name, _ in model.named_parameters() if "weight" in name]
    assert weights == [f"layers.{i}.0.weight" for i in range(5)]


@pytest.mark.parametrize("shortcut", [False, True])
def test_reference_module_reproduces_the_book(shortcut):
    assert book_listing(shortcut) == pytest.approx(BOOK_GRADIENTS[shortcut], rel=RTOL)


@pytest.mark.parametrize("shortcut", [False, True])
def test_measurement_reproduces_the_book(shortcut):
    records = measure_cell(Cell(depth=5, width=3, seed=123, shortcut=shortcut))
    assert [r["param"] for r in records] == [f"layers.{i}.0.weight" for i in range(5)]
    assert [r["grad_abs_mean"] for r in records] == pytest.approx(BOOK_GRADIENTS[shortcut],
                                                                  rel=RTOL)
    assert all(r["finite"] for r in records)
    assert list(records[0]) == COLUMNS


@pytest.mark.parametrize("mistake", ["exact GELU", "seeded after building", "input [1, 0, 1]"])
def test_classic_mistakes_give_other_numbers(mistake):
    if mistake == "exact GELU":
        got = book_listing(True, activation="gelu")
    elif mistake == "seeded after building":
        torch.manual_seed(0)  # whatever state the reader's session happened to be in
        got = book_listing(True, seed_first=False)
    else:
        got = book_listing(True, x=torch.tensor([[1., 0., 1.]]))
    # Off by far more than the tolerance the reproduction is judged with.
    worst = max(abs(g / b - 1) for g, b in zip(got, BOOK_GRADIENTS[True]))
    assert worst > 100 * RTOL


CELLS = [Cell(depth, width, seed, shortcut, activation=activation)
         for depth in (1, 2, 7, 30)
         for width in (1, 3, 16)
         for seed in (0, 123)
         for shortcut in (False, True)
         for activation in ACTIVATIONS]


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_fast_path_is_bit_identical_to_the_module(cell):
    # Exact equality on purpose: same draws, same operations, same floats.
    assert same(measure_cell(cell), measure_cell_book_style(cell))


KNOBS = [Cell(depth, 5, 7, shortcut, scale if shortcut else 0.0, activation, init, norm)
         for depth in (1, 6) for shortcut in (False, True) for scale in (0.5, 1.1)
         for activation in ("gelu_tanh", "relu") for init in ("xavier_uniform", "kaiming_normal")
         for norm in ("none", "pre_layernorm")]


@pytest.mark.parametrize("cell", KNOBS, ids=str)
def test_fast_path_is_bit_identical_with_every_knob(cell):
    assert same(measure_cell(cell), measure_cell_book_style(cell))


def test_lambda_zero_is_no_shortcut_and_lambda_one_is_the_books_shortcut():
    plain = measure_cell(Cell(9, 3, 123, False))
    book = measure_cell(Cell(9, 3, 123, True))
    zero = measure_cell(Cell(9, 3, 123, True, 0.0))
    one = measure_cell(Cell(9, 3, 123, True, 1.0))
    def values(records):
        return [[r[k] for k in ("grad_abs_mean", "grad_l2", "output_rms")]
                                  for r in records]
    assert values(zero) == values(plain) and values(one) == values(book)


def test_branch_scale_one_is_the_book_bit_for_bit():
    """alpha = 1 skips the multiply: the module, the fast path and the book's
    own listing give the same floats, not merely close ones."""
    torch.manual_seed(123)
    model = ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], True, branch_scale=1.0)
    assert book_print_gradients(model, sample_input(3)) == book_listing(True)
    book = measure_cell(Cell(5, 3, 123, True))
    one = measure_cell(Cell(5, 3, 123, True, branch_scale="1"))
    assert same(one, book)
    assert [r["grad_abs_mean"] for r in one] == book_listing(True)
    assert [r["branch_scale"] for r in one] == ["1"] * 5


def test_branch_scale_scales_the_branch_only():
    """alpha != 1 changes the shortcut net (and alpha = 1/sqrt(depth) is
    resolved with the cell's depth); the plain net has no branch to scale."""
    book = measure_cell(Cell(9, 3, 123, True))
    tenth = measure_cell(Cell(9, 3, 123, True, branch_scale="0.1"))
    rule = measure_cell(Cell(9, 3, 123, True, branch_scale="1/sqrt(depth)"))
    third = measure_cell(Cell(9, 3, 123, True, branch_scale=repr(1 / 9 ** 0.5)))
    assert [r["grad_abs_mean"] for r in tenth] != [r["grad_abs_mean"] for r in book]
    def values(records):
        return [r["grad_abs_mean"] for r in records]
    assert values(rule) == values(third)
    assert rule[-1]["output_rms"] < book[-1]["output_rms"]


ALPHAS = [Cell(depth, 5, 7, True, scale, activation, "pytorch", norm, branch_scale=alpha)
          for depth in (1, 6) for scale in (0.5, 1.0) for alpha in ("0.1", "1/sqrt(depth)")
          for activation in ("gelu_tanh", "relu") for norm in ("none", "pre_layernorm")]


@pytest.mark.parametrize("cell", ALPHAS, ids=str)
def test_fast_path_is_bit_identical_with_a_branch_scale(cell):
    assert same(measure_cell(cell), measure_cell_book_style(cell))


@pytest.mark.parametrize("cell", [Cell(5, 3, 123, True), Cell(5, 3, 123, False),
                                  Cell(40, 32, 3, True), Cell(12, 200, 1, True, 0.9),
                                  Cell(8, 16, 2, True, activation="relu", norm="pre_layernorm"),
                                  Cell(9, 5, 4, True, dtype="bfloat16")], ids=str)
def test_asking_for_the_stream_gradients_changes_no_weight_gradient(cell):
    """measure_cell asks autograd for dL/dx_l too; the weight and bias
    gradients stay the very same bits as when it asks for the leaves alone."""
    def gradients(with_stream):
        torch.manual_seed(cell.seed)
        parameters = [(w.to(DTYPES[cell.dtype]), b.to(DTYPES[cell.dtype]))
                      for w, b in init_parameters(layer_sizes(cell.depth, cell.width))]
        leaves = [t.requires_grad_() for pair in parameters for t in pair]
        x = sample_input(cell.width).to(DTYPES[cell.dtype])
        output, hidden = forward(parameters, x, cell.shortcut, cell.activation,
                                 cell.shortcut_scale, cell.norm)
        loss = F.mse_loss(output, torch.zeros_like(output))
        return torch.autograd.grad(loss, leaves + (hidden if with_stream else []))[:len(leaves)]
    for alone, along in zip(gradients(False), gradients(True)):
        assert torch.equal(alone, along)
    torch.manual_seed(cell.seed)
    model = ExampleDeepNeuralNetwork(layer_sizes(cell.depth, cell.width), cell.shortcut,
                                     cell.activation, cell.shortcut_scale, cell.norm)
    model = model.to(DTYPES[cell.dtype])
    assert ([r["grad_abs_mean"] for r in measure_cell(cell)]
            == book_print_gradients(model, sample_input(cell.width).to(DTYPES[cell.dtype])))


def test_grad_stream_cos_is_the_cosine_of_gradient_and_stream():
    cell = Cell(6, 8, 5, True)
    records = measure_cell(cell)
    torch.manual_seed(cell.seed)
    parameters = init_parameters(layer_sizes(6, 8))
    for t in (t for pair in parameters for t in pair):
        t.requires_grad_()
    output, hidden = forward(parameters, sample_input(8), True)
    grads = torch.autograd.grad(F.mse_loss(output, torch.zeros_like(output)), hidden)
    for record, g, x in zip(records, grads, hidden):
        expected = F.cosine_similarity(g.double().flatten(), x.detach().double().flatten(), dim=0)
        assert record["grad_stream_cos"] == pytest.approx(expected.item(), abs=1e-12)
    assert records[-1]["grad_stream_cos"] == pytest.approx(1.0)  # dL/dy = 2y: along y


def test_grad_stream_cos_is_nan_where_undefined_and_the_cell_stays_finite():
    # A relu net whose output unit is dead: output exactly 0, every gradient 0.
    for seed in range(200):
        records = measure_cell(Cell(6, 3, seed, False, 0.0, activation="relu"))
        if records[0]["output"] == 0:
            break
    assert records[0]["output"] == 0
    assert all(math.isnan(r["grad_stream_cos"]) for r in records)
    assert all(r["finite"] for r in records)
    cell = Cell(**{k: records[0][k] for k in Cell.__dataclass_fields__})
    assert same(records, measure_cell_book_style(cell))


def test_inits_draw_the_documented_distributions():
    torch.manual_seed(0)
    weight, bias = init_parameters([512, 512], "kaiming_normal")[0]
    assert weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.02)
    assert bias.abs().max().item() == 0
    weight, _ = init_parameters([512, 512], "xavier_uniform")[0]
    assert weight.abs().max().item() <= (6 / 1024) ** 0.5


@pytest.mark.parametrize("depth, width", [(3, 64), (4, 200), (2, 1024)])
def test_fast_path_is_bit_identical_at_large_widths(depth, width):
    for shortcut in (False, True):
        cell = Cell(depth, width, 5, shortcut)
        assert same(measure_cell(cell), measure_cell_book_style(cell))


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_fast_path_is_bit_identical_in_other_dtypes(dtype):
    cell = Cell(9, 5, 4, True, dtype=dtype)
    assert same(measure_cell(cell), measure_cell_book_style(cell))


def test_overflow_is_recorded_not_raised():
    records = measure_cell(Cell(depth=3000, width=3, seed=1, shortcut=True))
    assert len(records) == 3000
    assert not records[0]["finite"]
    assert not math.isfinite(records[0]["grad_abs_mean"])


def test_float64_changes_only_the_arithmetic():
    f32 = measure_cell(Cell(5, 3, 123, True))
    f64 = measure_cell(Cell(5, 3, 123, True, dtype="float64"))
    assert [r["grad_abs_mean"] for r in f64] == pytest.approx(
        [r["grad_abs_mean"] for r in f32], rel=1e-5)
    assert [r["grad_abs_mean"] for r in f64] != [r["grad_abs_mean"] for r in f32]


def test_a_cell_does_not_depend_on_what_ran_before_it():
    alone = measure_cell(Cell(12, 3, 7, True))
    measure_cell(Cell(40, 16, 3, False))
    torch.rand(100)  # disturb the global generator
    assert same(measure_cell(Cell(12, 3, 7, True)), alone)
