"""A block whose weights mostly get a gradient of exactly 0 is not healthy
(core/states.py's zero-branch), and the parameters outside every block and
the tied ones are recorded (records' `tied`, partial results' `outside`)."""

import math
import textwrap

import numpy as np
import pytest
import torch

from shortcutbench.core import partials, states
from shortcutbench.measuring import family as runner
from shortcutbench.measuring.user_family import UserFamily

FIELDS = {"width": 0, "shortcut": True, "shortcut_scale": 1.0, "branch_scale": "1",
          "activation": "-", "init": "-", "norm": "-", "device": "cpu", "dtype": "float32"}


def cell_rows(blocks, seed=0, loss=1.0, model="mine"):
    """A user family's records, made up: blocks = [[(ndim, numel, mean |grad|,
    zero share), ...] per block]; a stem (layer -1) first."""
    rows = [(-1, "stem.weight", 2, 4, 1.0, 0.0)]
    rows += [(i, f"blocks.{i}.p{j}", *p) for i, block in enumerate(blocks)
             for j, p in enumerate(block)]
    return [{"model": model, "depth": len(blocks), "seed": seed, **FIELDS, "layer": layer,
             "param": name, "tied": "", "ndim": ndim, "numel": numel, "grad_abs_mean": g,
             "grad_l2": g, "grad_zero_share": zero, "bias_grad_abs_mean": math.nan,
             "output_rms": math.nan, "grad_stream_cos": math.nan, "loss": loss,
             "output": math.nan, "token_cosine": math.nan, "finite": True}
            for layer, name, ndim, numel, g, zero in rows]


def state_counts(records):
    part = partials.chunk_partials(records)
    counts = {}
    for row in part["cells"]["rows"]:
        row = dict(zip(part["cells"]["columns"], row))
        for s in states.STATES:
            counts[s] = counts.get(s, 0) + row[f"state_{s.replace('-', '_')}"]
    return {s: k for s, k in counts.items() if k}


HEALTHY = [(2, 9, 1.0, 0.0), (1, 3, 1.0, 0.0)]
# a zero-initialised branch: the weights get exactly 0, the gate's scale not
GATED = [(2, 9, 0.01, 1.0), (1, 3, 0.5, 0.0)]


@pytest.mark.parametrize("blocks, state", [
    ([HEALTHY, HEALTHY], "healthy"),
    ([GATED, HEALTHY], "zero-branch"),
    ([GATED, GATED], "zero-branch"),  # the band alone calls this healthy
    # by element: 5 of 9 weight elements is "mostly", 4 of 9 is not
    ([[(2, 9, 1.0, 5 / 9)], HEALTHY], "zero-branch"),
    ([[(2, 9, 1.0, 4 / 9)], HEALTHY], "healthy"),
    # only the weights count: a zero bias is not a zero branch
    ([[(2, 9, 1.0, 0.0), (1, 30, 1.0, 1.0)], HEALTHY], "healthy"),
    # a block without weights: all its parameters count
    ([[(1, 3, 1.0, 1.0), (1, 1, 1.0, 0.0)], HEALTHY], "zero-branch"),
    # zero-branch before the band's states
    ([GATED, [(2, 9, 1e4, 0.0)]], "zero-branch"),
    # a block that gets nothing at all vanished (its point is 0)
    ([[(2, 9, 0.0, 1.0), (1, 3, 0.0, 1.0)], HEALTHY], "vanished"),
])
def test_a_block_of_mostly_zero_weight_gradients_is_zero_branch(blocks, state):
    assert state_counts(cell_rows(blocks)) == {state: 1}


def test_a_cell_without_shortcuts_has_no_zero_branch():
    """Without its shortcuts a cell has no residual branch: a block whose
    weights mostly get exactly 0 there is what depth did (a gradient that
    underflowed on its way back), judged by the band."""
    rows = [{**r, "shortcut": False, "shortcut_scale": 0.0} for r in cell_rows([GATED, HEALTHY])]
    assert state_counts(rows) == {"vanished": 1}
    grad, share = np.array([[0.01, 1.0]]), np.array([[1.0, 0.0]])
    kwargs = {"output_rms": None, "in_rms": 1.0, "head": False, "zero_share": share}
    assert states.cell_states(grad, [1.0], shortcut=[False], **kwargs)[0] == "vanished"
    assert states.cell_states(grad, [1.0], shortcut=[True], **kwargs)[0] == "zero-branch"


def test_dead_and_non_finite_come_before_zero_branch():
    assert state_counts(cell_rows([GATED, HEALTHY], loss=0.0)) == {"dead": 1}
    rows = cell_rows([GATED, HEALTHY])
    rows[-1]["grad_abs_mean"] = math.inf
    assert state_counts(rows) == {"non-finite": 1}


def test_records_without_a_zero_share_keep_their_states():
    rows = cell_rows([GATED, HEALTHY])
    for r in rows:
        r["grad_zero_share"] = math.nan
    assert state_counts(rows) == {"healthy": 1}


def test_classify_tests_zero_branch_only_when_given_the_shares():
    grad = np.array([[0.01, 1.0]])
    share = np.array([[1.0, 0.0]])
    kwargs = {"output_rms": None, "in_rms": 1.0, "head": False}
    assert states.cell_states(grad, [1.0], **kwargs)[0] == "healthy"
    assert states.cell_states(grad, [1.0], zero_share=share, **kwargs)[0] == "zero-branch"


def test_the_shipped_families_are_never_zero_branch():
    """The MLP's, the GPT's and the ResNet's points are one weight each:
    their records' zero shares do not enter their states."""
    from shortcutbench.measuring.resnet import ResNetFamily

    cell = {"model": "resnet", "depth": 8, "seed": 0, **FIELDS, "width": 16,
            "activation": "relu", "init": "kaiming_normal", "norm": "batchnorm",
            "shortcut": True}
    records = runner.measure_cell(ResNetFamily(), cell, {"batch_size": 2})
    zeros = [{**r, "grad_zero_share": 1.0} for r in records]
    assert state_counts(zeros) == state_counts(records)


# ---------------------------------------------------------------- tied and outside

TIED = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(depth))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11, bias=False)
        self.head.weight = self.emb.weight  # tied, as GPT-2's lm_head

    def forward(self, x):
        x = self.emb(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.norm(x))


def build(depth, shortcut):
    model = Net(depth)
    x = torch.randint(0, 11, (4,))
    return model, (x,), lambda out: nn.functional.cross_entropy(out, x)
"""


def test_tied_parameters_and_those_outside_every_block_are_recorded(tmp_path):
    (tmp_path / "tied_net.py").write_text(textwrap.dedent(TIED))
    options = {"factory": "tied_net:build", "blocks": r"blocks\.(\d+)\.", "mode": "eval",
               "options": {}}
    family = UserFamily("tied", options, str(tmp_path))
    records = runner.measure_cell(family, {"model": "tied", "depth": 2, "seed": 0, **FIELDS},
                                  options)
    by_name = {r["param"]: r for r in records}
    assert "head.weight" not in by_name  # named_parameters() yields it once, as emb.weight
    assert by_name["emb.weight"]["tied"] == "head.weight"
    assert by_name["emb.weight"]["ndim"] == 2 and by_name["norm.bias"]["ndim"] == 1
    assert all(r["tied"] == "" for r in records if r["param"] != "emb.weight")
    # an Embedding's gradient reaches only the rows of the tokens used (and
    # the tied head's every row): no row of zeros here
    assert by_name["emb.weight"]["grad_zero_share"] == 0.0
    part = partials.chunk_partials(records)
    outside = [dict(zip(part["outside"]["columns"], r)) for r in part["outside"]["rows"]]
    assert [(r["param"], r["side"], r["tied"], r["numel"]) for r in outside] == [
        ("emb.weight", "before", "head.weight", 88), ("norm.weight", "after", "", 8),
        ("norm.bias", "after", "", 8)]


def test_zero_shares_count_exact_zeros_of_each_gradient():
    out = torch.empty(3, dtype=torch.float64)
    grads = [torch.tensor([0.0, 1.0, -0.0, 2.0]), torch.zeros(4),
             torch.tensor([math.nan, 0.0, 1.0, 1.0])]
    runner.zero_shares(grads, out)
    assert out.tolist() == [0.5, 1.0, 0.25]
    runner.zero_shares(grads[:1], out[:1])
    assert out[0].item() == 0.5


SCALARS = """
import torch
from torch import nn


class Gated(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))
        self.alphas = nn.ParameterList(nn.Parameter(torch.tensor(float(i)))
                                       for i in range(depth))

    def forward(self, x):
        for block, alpha in zip(self.blocks, self.alphas):
            x = x + alpha * block(x)
        return x


def build(depth, shortcut):
    model = Gated(depth)
    x = torch.randn(3, 4)
    return model, (x,), lambda out: out.square().mean()
"""


def test_scalar_parameters_get_their_own_statistics(tmp_path):
    """SkipInit's alphas are 0-dim: each gets its own numbers, not the mean
    of every scalar's (a reduction over no dimension reduces over all)."""
    (tmp_path / "scalars.py").write_text(textwrap.dedent(SCALARS))
    options = {"factory": "scalars:build", "blocks": r"\.(\d+)", "mode": "eval",
               "options": {}}
    family = UserFamily("scalars", options, str(tmp_path))
    cell = {"model": "scalars", "depth": 3, "seed": 0, **FIELDS}
    records = runner.measure_cell(family, cell, options)
    torch.manual_seed(0)
    model, (x,), loss_fn = family.build(3, True, "-", options)
    loss_fn(model(x)).backward()
    for r in records:
        grad = dict(model.named_parameters())[r["param"]].grad
        assert r["grad_abs_mean"] == grad.abs().mean().item(), r["param"]
        zeros = grad.numel() - torch.count_nonzero(grad).item()
        assert r["grad_zero_share"] == zeros / grad.numel()
    alphas = [r for r in records if r["param"].startswith("alphas.")]
    assert [r["layer"] for r in alphas] == [0, 1, 2]
    # alpha 0 starts the first block closed: its Linear gets exactly 0
    assert next(r for r in records if r["param"] == "blocks.0.weight")["grad_zero_share"] == 1.0
    assert state_counts(records) == {"zero-branch": 1}


# ---------------------------------------------------------------- a real timm ResNet

TIMM_NET = """
import timm
import torch
import torch.nn.functional as F


def build(depth, shortcut, zero_init_last=True):
    model = timm.create_model("resnet18", layers=[1, 1, 1, 1], num_classes=10,
                              zero_init_last=zero_init_last)
    x = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([1, 2])
    return model, (x,), lambda out: F.cross_entropy(out, labels)
"""


@pytest.fixture(scope="module")
def timm_family(tmp_path_factory):
    """timm importable beside our CPU torch (measuring/libraries.py)."""
    from shortcutbench.measuring.libraries import import_library

    import_library("timm")
    workdir = tmp_path_factory.mktemp("timm")
    (workdir / "timm_net.py").write_text(textwrap.dedent(TIMM_NET))
    return str(workdir)


@pytest.mark.zoo
@pytest.mark.parametrize("zero_init_last", [True, False])
def test_timms_zero_initialised_resnet_is_not_healthy(timm_family, zero_init_last):
    """timm's ResNet starts each block's last BatchNorm at weight 0: its
    blocks' weights get exactly 0 (the issue "no gradient hidden": the band
    called these cells healthy).  Train mode, as timm trains; without the
    zero start the cell is judged as before."""
    workdir = timm_family
    options = {"factory": "timm_net:build", "blocks": r"^layer(\d+)\.", "mode": "train",
               "options": {"zero_init_last": zero_init_last}}
    family = UserFamily("timm", options, workdir)
    records = runner.measure_cell(family, {"model": "timm", "depth": 4, "seed": 0, **FIELDS},
                                  options)
    before = [{**r, "grad_zero_share": math.nan} for r in records]  # no zero-branch test
    assert state_counts(before) == {"healthy": 1}
    blocks = [r for r in records if r["layer"] >= 0 and r["ndim"] >= 2]
    zero = sum(r["numel"] * r["grad_zero_share"] for r in blocks) / sum(r["numel"] for r in blocks)
    if zero_init_last:
        assert zero > 0.95
        assert state_counts(records) == {"zero-branch": 1}
    else:
        assert zero < 0.1
        assert state_counts(records) == state_counts(before)
    part = partials.chunk_partials(records)
    outside = [dict(zip(part["outside"]["columns"], r)) for r in part["outside"]["rows"]]
    assert [(r["param"], r["side"]) for r in outside] == [
        ("conv1.weight", "before"), ("bn1.weight", "before"), ("bn1.bias", "before"),
        ("fc.weight", "after"), ("fc.bias", "after")]
