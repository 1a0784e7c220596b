"""The generic shortcut switch (measuring/shortcut_switch.py): on each
shipped family's model built with shortcuts, the rewritten adds give the
gradients of the family's own shortcut=False build bit for bit (and the MLP's
own shortcut_scale / branch_scale); the plan finds the adds where they are
written; and what cannot be rewritten is refused with the block and the
source lines."""

import contextlib
import inspect
import json
import math
import os

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from shortcutbench.measuring import family as runner
from shortcutbench.measuring import gpt, resnet
from shortcutbench.measuring.family import Family, configure_torch
from shortcutbench.measuring.gpt import GPTFamily
from shortcutbench.measuring.mlp import model
from shortcutbench.measuring.mlp.family import MLPFamily
from shortcutbench.measuring.mlp.model import ExampleDeepNeuralNetwork
from shortcutbench.measuring.resnet import ResNetFamily
from shortcutbench.measuring.shortcut_switch import (
    ResidualAdd,
    SwitchError,
    SwitchPlan,
    find_residual_adds,
    rewritten,
)

GPT_OPTIONS = {"emb_dim": 16, "n_heads": 2, "vocab_size": 32, "context_length": 16,
               "n_tokens": 8, "qkv_bias": False}
RESNET_OPTIONS = {"batch_size": 4}
GPT_NORMS = ("pre_layernorm", "post_layernorm", "none")


@pytest.fixture(autouse=True)
def one_thread():
    configure_torch()


def mlp_blocks(net):
    # The book's layers whose input and output shapes match: the ones with a shortcut.
    return [(f"layers.{i}", layer) for i, layer in enumerate(net.layers)
            if layer[0].in_features == layer[0].out_features]


def gpt_blocks(net):
    return [(f"trf_blocks.{i}", block) for i, block in enumerate(net.trf_blocks)]


def resnet_blocks(net):
    return [(f"stages.{s}.{i}", block)
            for s, stage in enumerate(net.stages) for i, block in enumerate(stage)]


BLOCKS = {"mlp": mlp_blocks, "gpt": gpt_blocks, "resnet": resnet_blocks}


def build(family, depth, shortcut, norm, options, seed):
    """A cell's model as measure_cell builds it: seed, build, mode."""
    torch.manual_seed(seed)
    net, inputs, loss_fn = family.build(depth, shortcut, norm, options)
    net.train(family.mode == "train")
    return net, inputs, loss_fn


def plan_of(family, net, inputs, loss_fn):
    return find_residual_adds(net, BLOCKS[family.name](net), lambda: loss_fn(net(*inputs)),
                              family=f"families.{family.name}")


def grads(net):
    return {name: p.grad for name, p in net.named_parameters()}


def assert_same_grads(got, expected):
    assert list(got) == list(expected)
    for name in expected:
        assert (got[name] is None) == (expected[name] is None), name
        if expected[name] is not None:
            assert torch.equal(got[name], expected[name]), name


def switched_grads(family, depth, norm, options, seed, shortcut_scale=0.0, branch_scale=1.0):
    """Gradients of the with-shortcut build, its residual adds rewritten."""
    net, inputs, loss_fn = build(family, depth, True, norm, options, seed)
    plan = plan_of(family, net, inputs, loss_fn)
    with rewritten(net, BLOCKS[family.name](net), plan, shortcut_scale, branch_scale):
        loss_fn(net(*inputs)).backward()
    return grads(net), plan


def own_grads(family, depth, shortcut, norm, options, seed):
    net, inputs, loss_fn = build(family, depth, shortcut, norm, options, seed)
    loss_fn(net(*inputs)).backward()
    return grads(net)


def line_of(module, text, nth=1):
    """'file.py:L' of the nth line of a module's source holding `text`."""
    lines = inspect.getsource(module).splitlines()
    numbers = [k + 1 for k, line in enumerate(lines) if text in line]
    return f"{os.path.basename(module.__file__)}:{numbers[nth - 1]}"


# ---------------------------------------------------------------- the shipped families

@pytest.mark.parametrize("depth, width, norm", [
    (2, 3, "none"), (5, 3, "none"), (8, 16, "none"), (6, 8, "pre_layernorm")])
def test_the_mlp_without_shortcuts_is_its_own_shortcut_false_build(depth, width, norm):
    options = {"width": width}
    got, plan = switched_grads(MLPFamily(), depth, norm, options, seed=123)
    assert_same_grads(got, own_grads(MLPFamily(), depth, False, norm, options, seed=123))
    assert plan.blocks == tuple(f"layers.{i}" for i in range(depth - 1))


@pytest.mark.parametrize("shortcut_scale, branch_scale", [
    (0.5, 1.0), (1.0, 0.1), (0.5, 0.1), (2.0, 1.0), (1.0, "1/sqrt(depth)"),
    (0.5, "1/sqrt(depth)")])
def test_scales_are_the_mlps_own_shortcut_scale_and_branch_scale(shortcut_scale, branch_scale):
    depth, width = 8, 6
    if branch_scale == "1/sqrt(depth)":
        branch_scale = 1 / math.sqrt(depth)
    x = model.sample_input(width)
    torch.manual_seed(7)
    own = ExampleDeepNeuralNetwork(model.layer_sizes(depth, width), True,
                                   shortcut_scale=shortcut_scale, branch_scale=branch_scale)
    own(x).square().mean().backward()
    torch.manual_seed(7)
    book = ExampleDeepNeuralNetwork(model.layer_sizes(depth, width), True)
    blocks = mlp_blocks(book)
    plan = find_residual_adds(book, blocks, lambda: book(x).square().mean())
    with rewritten(book, blocks, plan, shortcut_scale, branch_scale):
        book(x).square().mean().backward()
    assert_same_grads(grads(book), grads(own))


@pytest.mark.parametrize("norm", GPT_NORMS)
def test_the_gpt_without_shortcuts_is_its_own_shortcut_false_build(norm):
    got, plan = switched_grads(GPTFamily(), 3, norm, GPT_OPTIONS, seed=5)
    assert_same_grads(got, own_grads(GPTFamily(), 3, False, norm, GPT_OPTIONS, seed=5))


@pytest.mark.parametrize("depth", [8, 20])
def test_the_resnet_in_train_mode_without_shortcuts_is_its_plain_build(depth):
    got, plan = switched_grads(ResNetFamily(), depth, "batchnorm", RESNET_OPTIONS, seed=2)
    assert_same_grads(got, own_grads(ResNetFamily(), depth, False, "batchnorm",
                                     RESNET_OPTIONS, seed=2))


class Switched(Family):
    """A shipped family whose cells are built with shortcuts and measured
    with them switched off, the way a runner would: the plan from one
    forward pass, then the rewrite active through measure_cell's pass."""

    def __init__(self, inner, stack):
        self.inner, self.stack = inner, stack
        self.name, self.mode = inner.name, inner.mode

    def build(self, depth, shortcut, norm, options):
        net, inputs, loss_fn = self.inner.build(depth, True, norm, options)
        net.train(self.mode == "train")
        plan = plan_of(self.inner, net, inputs, loss_fn)
        self.stack.enter_context(rewritten(net, BLOCKS[self.name](net), plan, 0.0, 1.0))
        return net, inputs, loss_fn

    def layer_of(self, name, depth):
        return self.inner.layer_of(name, depth)

    def watch(self, net, depth):
        return self.inner.watch(net, depth)


@pytest.mark.parametrize("family, depth, norm, options", [
    (MLPFamily(), 5, "none", {"width": 4}),
    (GPTFamily(), 2, "pre_layernorm", GPT_OPTIONS),
    (GPTFamily(), 2, "post_layernorm", GPT_OPTIONS),
    (ResNetFamily(), 8, "batchnorm", RESNET_OPTIONS)])
def test_measure_cell_records_are_the_shortcut_false_cells(family, depth, norm, options):
    cell = {"model": family.name, "depth": depth, "width": options.get("width", 0), "seed": 3,
            "shortcut": False, "shortcut_scale": 0.0, "branch_scale": "1",
            "activation": "gelu_tanh", "init": "pytorch", "norm": norm, "device": "cpu",
            "dtype": "float32"}
    expected = runner.measure_cell(family, cell, options)
    with contextlib.ExitStack() as stack:
        got = runner.measure_cell(Switched(family, stack), cell, options)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.keys() == b.keys()
        for column in a:  # NaN is NaN
            assert a[column] == b[column] or (a[column] != a[column] and b[column] != b[column])


# ---------------------------------------------------------------- the plan

def test_the_plan_finds_one_add_per_mlp_layer_where_the_shapes_match():
    net, inputs, loss_fn = build(MLPFamily(), 6, True, "none", {"width": 3}, seed=1)
    plan = plan_of(MLPFamily(), net, inputs, loss_fn)
    assert plan.blocks == tuple(f"layers.{i}" for i in range(5))  # not the 3 -> 1 layer
    add = ResidualAdd(line_of(model, "return x + layer_output"), skip=0)
    assert plan.adds == ((add,),) * 5
    summary = plan.summary()
    assert summary == {"blocks": 5, "adds_per_block": 1, "where": [add.where]}
    assert json.loads(json.dumps(summary)) == summary


@pytest.mark.parametrize("norm, text, skip", [
    ("pre_layernorm", "return out + x if self.shortcut", 1),
    ("post_layernorm", "out = out + x", 1),
    ("none", "out = out + x", 1)])
def test_the_plan_finds_two_adds_per_gpt_block(norm, text, skip):
    net, inputs, loss_fn = build(GPTFamily(), 3, True, norm, GPT_OPTIONS, seed=1)
    plan = plan_of(GPTFamily(), net, inputs, loss_fn)
    add = ResidualAdd(line_of(gpt, text), skip)
    assert plan.adds == ((add, add),) * 3  # attention's half, then the feed-forward's
    assert plan.summary() == {"blocks": 3, "adds_per_block": 2, "where": [add.where] * 2}


def test_the_plan_finds_one_add_per_resnet_block_option_a_included():
    net, inputs, loss_fn = build(ResNetFamily(), 20, True, "batchnorm", RESNET_OPTIONS, seed=1)
    plan = plan_of(ResNetFamily(), net, inputs, loss_fn)
    add = ResidualAdd(line_of(resnet, "out = out + self.option_a(x)"), skip=1)
    assert len(plan.blocks) == 9 and plan.adds == ((add,),) * 9


def test_finding_the_adds_leaves_the_generator_and_batchnorm_statistics_as_they_were():
    net, inputs, loss_fn = build(ResNetFamily(), 8, True, "batchnorm", RESNET_OPTIONS, seed=1)

    def dropout_draw(module, args, output):
        torch.rand(1)

    net.stem.register_forward_hook(dropout_draw)
    buffers = [b.clone() for b in net.buffers()]
    state = torch.get_rng_state()
    plan_of(ResNetFamily(), net, inputs, loss_fn)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(net.buffers(), buffers))


def test_the_switch_leaves_no_hooks_behind():
    net, inputs, loss_fn = build(GPTFamily(), 2, True, "pre_layernorm", GPT_OPTIONS, seed=1)
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())
    plan = plan_of(GPTFamily(), net, inputs, loss_fn)
    with rewritten(net, gpt_blocks(net), plan, 1.0, 1.0):  # nothing to rewrite
        assert sum(len(m._forward_pre_hooks) for m in net.modules()) == 0
    with rewritten(net, gpt_blocks(net), plan, 0.0, 1.0):
        loss_fn(net(*inputs))
    assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks)
               for m in net.modules()) == hooks == 0


def test_a_run_that_differs_from_the_plan_is_refused():
    net, inputs, loss_fn = build(GPTFamily(), 2, True, "pre_layernorm", GPT_OPTIONS, seed=1)
    plan = plan_of(GPTFamily(), net, inputs, loss_fn)
    blocks = gpt_blocks(net)
    moved = SwitchPlan(plan.blocks, tuple((ResidualAdd("elsewhere.py:1", 0), adds[1])
                                          for adds in plan.adds))
    with pytest.raises(SwitchError, match=r"'trf_blocks.0'.*gpt\.py:\d+.*elsewhere\.py:1"), \
            rewritten(net, blocks, moved, 0.0, 1.0):
        net(*inputs)
    fewer = SwitchPlan(plan.blocks, tuple(adds[:1] for adds in plan.adds))
    with pytest.raises(SwitchError, match=r"'trf_blocks.0'.*no more adds"), \
            rewritten(net, blocks, fewer, 0.0, 1.0):
        net(*inputs)
    more = SwitchPlan(plan.blocks, tuple(adds * 2 for adds in plan.adds))
    with pytest.raises(SwitchError, match=r"did not run: 'trf_blocks.0' ran 2 of 4"), \
            rewritten(net, blocks, more, 0.0, 1.0):
        net(*inputs)


# ---------------------------------------------------------------- in-place adds

class InPlaceBlock(nn.Module):
    """The add in place, as timm's and torchvision's ResNets write it."""

    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        out = self.fc(torch.tanh(x))  # a Linear keeps its input for backward, not its output
        before = out
        out += x
        self.same_tensor = out is before
        return out


class Stack(nn.Module):
    def __init__(self, block, depth=3, width=4, wrap=None):
        super().__init__()
        self.stem = nn.Linear(width, width)
        self.blocks = nn.ModuleList(block(width) for _ in range(depth))
        self.wrap = wrap

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = self.wrap(block, x) if self.wrap else block(x)
        return x


def stack_blocks(net):
    return [(f"blocks.{i}", block) for i, block in enumerate(net.blocks)]


@pytest.mark.parametrize("shortcut_scale, branch_scale", [(0.0, 1.0), (0.5, 1.0), (1.0, 0.1),
                                                          (0.5, 0.1), (0.0, 0.1)])
def test_an_in_place_add_stays_in_place_and_scales_as_written_out(shortcut_scale,
                                                                  branch_scale):
    x = torch.randn(2, 4)
    torch.manual_seed(0)
    net = Stack(InPlaceBlock)
    blocks = stack_blocks(net)
    plan = find_residual_adds(net, blocks, lambda: net(x).sum())
    assert plan.adds == ((ResidualAdd(line_of(inspect.getmodule(InPlaceBlock), "out += x"),
                                      skip=1),),) * 3
    with rewritten(net, blocks, plan, shortcut_scale, branch_scale):
        net(x).square().mean().backward()
    assert all(block.same_tensor for block in net.blocks)

    torch.manual_seed(0)
    reference = Stack(InPlaceBlock)

    def written_out(x):
        x = reference.stem(x)
        for block in reference.blocks:
            branch = block.fc(torch.tanh(x))
            x = model.add_shortcut(x, branch, shortcut_scale, branch_scale) \
                if shortcut_scale else (branch * branch_scale if branch_scale != 1 else branch)
        return x

    written_out(x).square().mean().backward()
    assert_same_grads(grads(net), grads(reference))


# ---------------------------------------------------------------- refusals

class Block(nn.Module):
    def __init__(self, width, extra=False, other_line=False):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.extra, self.other_line = extra, other_line

    def forward(self, x):
        if not self.other_line:
            x = x + self.fc(x)  # the line
        if self.other_line:
            x = self.fc(x) + x  # the other line
        if self.extra:
            x = x + self.fc2(x)  # the extra line
        return x


class NoAdd(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return torch.lerp(x, torch.tanh(self.fc(x)), 0.5)  # a residual the switch cannot see


class AddFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b  # inside the Function

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class FunctionBlock(Block):
    def forward(self, x):
        return AddFunction.apply(x, self.fc(x))


HERE = os.path.basename(__file__)


def here(text):
    return line_of(inspect.getmodule(Block), text).replace(".", r"\.")


def find(net, residual_adds=None):
    x = torch.randn(2, 4)
    return find_residual_adds(net, stack_blocks(net), lambda: net(x).sum(),
                              residual_adds=residual_adds, family="families.mine")


def test_a_block_without_a_residual_add_is_refused():
    with pytest.raises(SwitchError, match=r"families\.mine: no residual add found in block\(s\) "
                                          r"'blocks\.0', 'blocks\.1', 'blocks\.2' \(NoAdd, "
                                          rf"forward at {HERE}:\d+\).*lerp"):
        find(Stack(NoAdd))


def test_blocks_of_one_class_with_different_counts_or_lines_are_refused():
    net = Stack(Block)
    net.blocks[1].extra = True
    with pytest.raises(SwitchError, match=rf"families\.mine: blocks of one class \(Block\).*"
                                          rf"'blocks\.0' at \['{here('# the line')}'\], "
                                          rf"'blocks\.1' at \['{here('# the line')}', "
                                          rf"'{here('# the extra line')}'\]"):
        find(net)
    net = Stack(Block)
    net.blocks[2].other_line = True
    with pytest.raises(SwitchError, match=rf"'blocks\.2' at \['{here('# the other line')}'\]"):
        find(net)


def test_more_adds_than_residual_adds_are_refused():
    net = Stack(lambda width: Block(width, extra=True))
    assert len(find(net, residual_adds=2).adds[0]) == 2
    with pytest.raises(SwitchError, match=rf"families\.mine: block\(s\) 'blocks\.0', 'blocks\.1', "
                                          rf"'blocks\.2' have 2 residual adds \('blocks\.0' at "
                                          rf"\['{here('# the line')}', "
                                          rf"'{here('# the extra line')}'\]\), more than "
                                          rf"residual_adds = 1"):
        find(net, residual_adds=1)


@pytest.mark.parametrize("reentrant, why", [(True, "grad mode off"),
                                            (False, "saved-tensor hooks")])
def test_an_add_under_activation_checkpointing_is_refused(reentrant, why):
    net = Stack(Block, wrap=lambda block, x: checkpoint(block, x, use_reentrant=reentrant))
    with pytest.raises(SwitchError, match=rf"families\.mine: the residual add at "
                                          rf"{here('# the line')} of block\(s\) 'blocks\.0', "
                                          rf"'blocks\.1', 'blocks\.2' .*{why}.*checkpointing"):
        find(net)


def test_saved_tensor_hooks_of_the_callers_own_are_no_checkpoint():
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        assert len(find(Stack(Block)).adds) == 3


def test_an_add_inside_a_custom_autograd_function_is_refused():
    with pytest.raises(SwitchError, match=rf"the residual add at "
                                          rf"{here('# inside the Function')} of block\(s\) "
                                          rf"'blocks\.0', .*grad mode off"
                                          rf".*torch\.autograd\.Function"):
        find(Stack(FunctionBlock))


def test_a_compiled_block_or_model_is_refused():
    net = Stack(Block)
    net.blocks[1].compile()
    forward = f"{HERE}:{inspect.getsourcelines(Block.forward)[1]}".replace(".", r"\.")
    with pytest.raises(SwitchError, match=rf"families\.mine: compiled module\(s\) 'blocks\.1' "
                                          rf"\(Block, forward at {forward}\).*torch\.compile"):
        find(net)
    net = Stack(Block)
    compiled = torch.compile(net)
    with pytest.raises(SwitchError, match=r"compiled module\(s\) '<model>' \(OptimizedModule"):
        find_residual_adds(compiled, stack_blocks(net), lambda: None, family="families.mine")
