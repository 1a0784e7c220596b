"""A family of the user's own, given by config alone:

    models: [mine]
    families:
      mine:
        factory: my_models:build        # module:function
        depths: [2, 4, 8]
        seeds: [0, 1, 2]
        options: {width: 16}            # keyword arguments of the factory
        blocks: 'blocks\\.(\\d+)\\.'       # a parameter's name -> its block (its groups)
        mode: eval                      # or train (BatchNorm on batch statistics)

`build(depth=depth, shortcut=shortcut, **options)` returns (model, inputs[,
loss_fn]); the measurement contract (measuring/family.py) does the rest.  The
module is imported from the run's working directory (snakemake -d) first,
then from PYTHONPATH.  Instead of a factory, a section may name a
transformers model class or a timm model (measuring/zoo.py).  A factory
without a `shortcut` argument, and every library model, builds its model
with the shortcuts: the generic switch (measuring/shortcut_switch.py)
removes them.  Inputs may be a dict (model(**inputs)); without a loss_fn,
losses.default_loss reads the output.  Without `blocks`, the pattern is read
from the parameter names (core/blocks.py's suggest).

`check(name, section, workdir)` is what the workflow runs before any job
(in a process of its own: the workflow's process never imports torch or the
user's code): the factory imports and builds at the smallest depth with the
options, the result has the contract's shape, a forward and backward pass
run, two builds from the same seed are the same, `blocks` matches a
parameter and numbers more blocks at the largest depth than at the smallest,
and the generic switch finds each block's residual adds where it is
needed.  Each failure is a FamilyError whose message names the config key
and the fix.  It also counts the parameters and what autograd keeps for
backward at the largest depth (on torch's meta device: no memory, no time),
for the chunks' memory estimate.

    python -m shortcutbench.measuring.user_family < request.json

reads {"name", "section", "workdir"} and prints {"ok": true, ...facts} or
{"ok": false, "error": message}.

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from shortcutbench.core import blocks
from shortcutbench.measuring import zoo
from shortcutbench.measuring.family import Family, call_model, configure_torch, modules_of, to_cell
from shortcutbench.measuring.libraries import import_library
from shortcutbench.measuring.losses import default_loss


class FamilyError(ValueError):
    """A user family that cannot be measured; the message names the key and the fix."""


def load_factory(spec: str, workdir: str, key: str = "factory") -> Callable:
    """'module:function' -> the function, the module imported from
    `workdir` first, then from PYTHONPATH.  `key` names the config key in errors."""
    module_name, _, function = spec.partition(":")
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    try:
        module = import_library(module_name)  # a module that imports timm works too
    except ModuleNotFoundError as error:
        if error.name and module_name.split(".")[0] == error.name.split(".")[0]:
            raise FamilyError(
                f"{key}: no module {module_name!r} in the run's working directory ({workdir}) "
                f"or on PYTHONPATH; put {module_name.replace('.', '/')}.py there, or fix the "
                f"name") from None
        raise FamilyError(f"{key}: importing {module_name!r} failed: {_said(error)}; install "
                          f"what it needs, or fix the module") from None
    except Exception as error:  # the user's module may raise anything
        raise FamilyError(f"{key}: importing {module_name!r} raised {_said(error)}; fix the "
                          f"module") from None
    build = getattr(module, function, None)
    if not callable(build):
        where = getattr(module, "__file__", module_name)
        raise FamilyError(f"{key}: module {module_name!r} ({where}) has no function "
                          f"{function!r}; name the function that builds the model")
    return build


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class UserFamily(Family):
    """A user family through the measurement contract: a factory of the
    user's own, or a transformers or timm model (measuring/zoo.py).  A
    factory without a `shortcut` argument builds its model with the
    shortcuts, and the generic switch removes them (forward_context)."""

    def __init__(self, name: str, options: dict[str, Any], workdir: str | None = None):
        self.name = name
        self.key = f"families.{name}"
        self.mode = options.get("mode", "eval")
        self.pattern = options.get("blocks")
        self.blocks = self.pattern  # the pattern in use: read from the names where none is given
        self.residual_adds = options.get("residual_adds")
        if zoo.library_of(options):
            self.factory = zoo.factory(options, self.key)
            self.label = zoo.label(options)
        else:
            self.factory = load_factory(options["factory"], workdir or os.getcwd(),
                                        key=f"{self.key}.factory")
            self.label = options["factory"]
        self.own_switch = _takes(self.factory, "shortcut")
        self._layers: dict[str, int] = {}
        self._suggested: dict[int, str] = {}  # the default pattern, by depth

    def call(self, depth: int, shortcut: bool, options: dict[str, Any]) -> str:
        """The factory's call for a cell, as messages show it."""
        args = [f"depth={depth}", *([f"shortcut={shortcut}"] if self.own_switch else []),
                *(f"{k}={v!r}" for k, v in options.items())]
        return f"{self.label}({', '.join(args)})"

    def _call(self, depth, shortcut, kwargs):
        """The factory's result for a cell: given the shortcut where it takes one."""
        if self.own_switch:
            return self.factory(depth=depth, shortcut=shortcut, **kwargs)
        return self.factory(depth=depth, **kwargs)

    def build(self, depth, shortcut, norm, options):
        kwargs = options["options"]
        call = self.call(depth, shortcut, kwargs)
        try:
            result = self._call(depth, shortcut, kwargs)
        except zoo.LibraryError as error:  # it names its key and the fix
            raise FamilyError(str(error)) from None
        except Exception as error:
            # in a measuring job too, where a factory that built the checked
            # cells may still fail at another depth: say which family and cell
            # chained: a job's log keeps the line of the factory that raised
            raise FamilyError(f"{self.key}.factory: {call} raised {_said(error)}; fix the "
                              f"factory or {self.key}.options") from error
        model, inputs, loss_fn = _built(self.key, call, result)
        self._number_blocks(model, depth, shortcut, kwargs)
        return model, inputs, loss_fn

    def _deeper_names(self, depth, shortcut, kwargs):
        """The parameter names of the model one block deeper, built on the
        meta device (no memory, no time) with torch's generator left as it was."""
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                model = self._call(depth + 1, shortcut, kwargs)[0]
        except Exception as error:  # the factory cannot build on the meta device
            raise FamilyError(f"{self.key}.blocks: no pattern is given, and reading one from "
                              f"the parameter names needs the model one block deeper, built on "
                              f"torch's meta device, where {self.label} raised "
                              f"{_said(error)}; give blocks, e.g. 'blocks\\.(\\d+)\\.'") from None
        return [name for name, _ in model.named_parameters()]

    def _number_blocks(self, model, depth, shortcut, kwargs):
        names = [name for name, _ in model.named_parameters()]
        pattern = self.pattern
        if not pattern:  # read from the names: what grows with depth
            if self._suggested.get(depth) is None:
                deeper = self._deeper_names(depth, shortcut, kwargs)
                # none found: a pattern that matches nothing, which the
                # check then refuses, saying that none could be read
                self._suggested[depth] = blocks.suggest(names, deeper) or "(?!)"
            pattern = self._suggested[depth]
        try:
            self._layers = blocks.numbers(pattern, names)
        except blocks.BlocksError as error:
            raise FamilyError(f"{self.key}.blocks: {error}") from None
        self.blocks = pattern

    def layer_of(self, name, depth):
        return self._layers.get(name, blocks.OUTSIDE)

    def block_modules(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return modules_of(model, self.blocks)


def _takes(function: Callable, argument: str) -> bool:
    try:
        return argument in inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to read: the user's own says so
        return True


# ---------------------------------------------------------------- the check

def _built(key: str, call: str, result: Any) -> tuple[torch.nn.Module, tuple | dict, Callable]:
    """The factory's result, checked against the contract's shape: (model,
    inputs) or (model, inputs, loss_fn), inputs a tensor, a tuple of them
    (the model's arguments) or a dict (its keyword arguments); without a
    loss_fn, losses.default_loss."""
    if not (isinstance(result, tuple | list) and len(result) in (2, 3)):
        raise FamilyError(f"{key}.factory: {call} must return (model, inputs, loss_fn); it "
                          f"returned {type(result).__name__}")
    model, inputs, loss_fn = (*result, None) if len(result) == 2 else result
    if not isinstance(model, torch.nn.Module):
        raise FamilyError(f"{key}.factory: {call} returned a {type(model).__name__} as the "
                          f"model; return a torch.nn.Module")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    values = inputs.values() if isinstance(inputs, dict) else inputs
    if not (isinstance(inputs, tuple | list | dict)
            and all(isinstance(x, torch.Tensor) for x in values)):
        raise FamilyError(f"{key}.factory: {call} returned inputs that are neither a tuple of "
                          f"tensors nor a dict of them; return (x,) or (x, y, ...), the model's "
                          f"arguments, or {{'input_ids': ids, ...}}, its keyword arguments")
    inputs = dict(inputs) if isinstance(inputs, dict) else tuple(inputs)
    if loss_fn is None:
        def loss_fn(output, inputs=inputs):
            return default_loss(output, inputs)
    elif not callable(loss_fn):
        raise FamilyError(f"{key}.factory: {call} returned a loss_fn that is not callable; "
                          f"return a function of the model's output")
    return model, inputs, loss_fn


def _output_text(output: Any) -> str:
    """What a model returned, for a message: its type, and a ModelOutput's fields."""
    fields = list(output.keys()) if hasattr(output, "keys") else []
    return type(output).__name__ + (f" (fields {', '.join(fields)})" if fields else "")


def _build(family, depth, shortcut, options, seed):
    """One cell as a measuring job builds it, the factory called after
    torch.manual_seed(seed): (its call as text, model, inputs, loss_fn)."""
    call = family.call(depth, shortcut, options)
    torch.manual_seed(seed)
    return (call, *family.build(depth, shortcut, None, {"options": options}))


def _run(key, family, depth, shortcut, options, seed, count_saved=False):
    """Build and run one cell as the measurement does; returns the model
    and the bytes autograd kept for backward."""
    call, model, inputs, loss_fn = _build(family, depth, shortcut, options, seed)
    if not any(True for _ in model.parameters()):
        raise FamilyError(f"{key}.factory: the model of {call} has no parameters; there is no "
                          f"gradient to measure")
    model.train(family.mode == "train")
    saved = [0]

    def pack(tensor):
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    hooks = (torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if count_saved
             else contextlib.nullcontext())
    try:
        with hooks:
            output = call_model(model, inputs)
            try:
                loss = loss_fn(output)
            except Exception as error:
                raise FamilyError(f"{key}: the loss_fn of {call} raised {_said(error)} when "
                                  f"given the model's output, a {_output_text(output)}; make "
                                  f"it take that (a ModelOutput's .logits, say), or return no "
                                  f"loss_fn for the default loss") from None
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1
                and loss.is_floating_point()):
            raise FamilyError(f"{key}.factory: the loss_fn of {call} returned "
                              f"{type(loss).__name__} {getattr(loss, 'shape', '')}; return one "
                              f"floating-point number as a tensor (e.g. a mean)")
        if loss.device.type != "meta":
            loss.backward()
    except FamilyError:
        raise
    except Exception as error:
        raise FamilyError(f"{key}: running the model of {call} (forward, loss, backward) "
                          f"raised {_said(error)}; fix the factory") from None
    return model, saved[0]


def _check_options(key, family, depth, options):
    factory = family.factory
    switch = {"shortcut": True} if family.own_switch else {}
    try:
        inspect.signature(factory).bind(depth=depth, **switch, **options)
    except TypeError as error:
        raise FamilyError(f"{key}.options: the factory does not take these keyword "
                          f"arguments ({error}); it is {factory.__name__}"
                          f"{inspect.signature(factory)}: change {key}.options or the "
                          f"factory") from None
    except ValueError:  # no signature to read (a builtin): the call will tell
        pass


def check(name: str, section: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Check a user family before any job runs (see the module's doc);
    returns what it measured: {"parameters", "parameter_bytes",
    "saved_bytes"} at the largest depth, "blocks", the block indices found
    at the smallest, "pattern", the blocks pattern used, and "switch", how
    its shortcuts are removed.  Raises FamilyError."""
    from shortcutbench.core.families import spec

    key = f"families.{name}"
    options = dict(section.get("options") or {})
    chunk_options = {**spec(name).options(section), "options": options}
    try:
        family = UserFamily(name, chunk_options, workdir)
    except zoo.LibraryError as error:
        raise FamilyError(str(error)) from None
    seed, smallest, largest = min(section["seeds"]), min(section["depths"]), max(section["depths"])
    if not zoo.library_of(section):
        _check_options(key, family, smallest, options)
    shortcuts = sorted(section.get("shortcut", [False, True]))
    for shortcut in shortcuts:  # the contract's shape, with the plainest messages
        _, saved_small = _run(key, family, smallest, shortcut, options, seed, True)
    switch = _switch(key, family, section, options, seed)
    # Then every arm in every dtype at the smallest depth, as a measuring job
    # measures it (on the CPU: a GPU may be on other machines), the first twice.
    dtypes = section.get("dtypes") or ["float32"]
    found = set()
    for shortcut in shortcuts:
        for dtype in dtypes:
            records = _measured(key, family, smallest, shortcut, dtype, seed, chunk_options)
            if dtype == dtypes[0]:
                found |= _blocks_of(key, family, records, smallest, shortcut, options)
            if (shortcut, dtype) == (shortcuts[0], dtypes[0]):
                first = records
    again = _measured(key, family, smallest, shortcuts[0], dtypes[0], seed, chunk_options)
    if not _same(first, again):
        raise FamilyError(f"{key}.factory: two cells from the same torch.manual_seed gave "
                          f"different numbers, so no result could be reproduced; draw every "
                          f"random number (weights and inputs) from torch's global generator, "
                          f"not numpy's, Python's or the clock")
    _law_parameter(key, section, first, family.call(smallest, shortcuts[0], options))
    if any(device != "cpu" for device in section.get("devices", ["cpu"])):
        _follows_the_device(key, family, smallest, shortcuts[-1], options, seed)
    facts = {"blocks": sorted(found), "pattern": family.blocks, "switch": switch}
    parameters, parameter_bytes, saved, names = _largest(key, family, largest, shortcuts[-1],
                                                         options, seed)
    if names is not None and largest > smallest:
        _grows(key, family, names, found, smallest, largest)
    if section.get("mem_mb"):  # its own estimate: nothing to count
        return facts
    scale = largest / smallest  # where the meta device cannot: the smallest cell, scaled
    if parameters is None:
        small = sum(r["numel"] for r in first)
        parameters, parameter_bytes = int(small * scale), int(4 * small * scale)
    if saved is None:
        saved = saved_small * scale
    return {"parameters": parameters, "parameter_bytes": parameter_bytes,
            "saved_bytes": int(saved), **facts}


def _switch(key, family, section, options, seed):
    """How the family's shortcuts are removed and scaled: its own `shortcut`
    argument, and the generic switch where a cell needs it (no shortcut
    argument, or shortcut_scales and branch_scales), whose residual adds are
    found here (at the smallest depth of at least two blocks, so that blocks
    can be compared) and refused where they cannot be rewritten safely;
    "none" where every cell keeps the shortcuts as built."""
    scaled = (any(float(v) != 1 for v in section.get("shortcut_scales", [1]))
              or any(v != 1 for v in section.get("branch_scales", [1])))
    removed = not family.own_switch and False in section.get("shortcut", [False, True])
    means = "own" if family.own_switch else "generic"
    if not (scaled or removed):  # every cell as built: nothing to find
        return {"means": means if family.own_switch else "none"}
    from shortcutbench.measuring import shortcut_switch

    depths = sorted(section["depths"])
    depth = next((d for d in depths if d >= 2), depths[0])
    call, model, inputs, loss_fn = _build(family, depth, True, options, seed)
    model.train(family.mode == "train")
    try:
        modules = family.block_modules(model)
    except ValueError as error:  # blocks that are not modules
        raise FamilyError(f"{key}.blocks: {error}") from None
    try:
        plan = family.residual_plan(model, modules, inputs, loss_fn, (depth, "check"))
    except shortcut_switch.SwitchError as error:  # it names the family
        raise FamilyError(str(error)) from None
    return {"means": means, **plan.summary()}


def _law_parameter(key, section, records, call):
    """The parameter a law of the section names (laws.xiong.param, each
    block's W2, matched whole) is among the model's: else its finding would
    silently leave the family out."""
    pattern = section.get("laws", {}).get("xiong", {}).get("param")
    names = [r["param"] for r in records]
    if pattern and not any(re.fullmatch(pattern, name) for name in names):
        near = [n for n in names if n.endswith(".weight") and ".0." in n][:6]
        raise FamilyError(f"{key}.laws.xiong.param: {blocks.shown(pattern)} matches no parameter "
                          f"name of {call} whole; name each block's W2, e.g. one of "
                          f"{', '.join(near) or ', '.join(names[:6])} with the block's number "
                          f"as \\d+")


def _grows(key, family, names, found, smallest, largest):
    """The pattern numbers more blocks at the largest depth than at the
    smallest: one that does not (timm's layer{stage}.{i} read by its stage
    alone) would give every depth the same few "blocks"."""
    at_largest = set(blocks.numbers(family.blocks, names).values()) - {blocks.OUTSIDE}
    if len(at_largest) <= len(found):
        better = blocks.suggest(names)
        hint = (f"; {blocks.shown(better)} numbers them" if better and better != family.blocks
                else "")
        raise FamilyError(f"{key}.blocks: {blocks.shown(family.blocks)} finds {len(found)} "
                          f"blocks at depth {smallest} and {len(at_largest)} at depth "
                          f"{largest}: the number of blocks does not grow with depth; write a "
                          f"pattern that numbers every block (several groups are numbered "
                          f"together, e.g. 'layer(\\d+)\\.(\\d+)\\.'){hint}")


class _OnTheCPU(Exception):
    """An op given a tensor on the meta device and one with dimensions on the
    CPU: on a GPU it would raise (a 0-dim CPU tensor is a scalar there)."""


class _CPUTensorFinder(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if (any(t.device.type == "meta" for t in tensors)
                and any(t.device.type == "cpu" and t.dim() > 0 for t in tensors)):
            raise _OnTheCPU(func)
        return func(*args, **kwargs)


def _follows_the_device(key, family, depth, shortcut, options, seed):
    """A cell built on the CPU, then moved as a job moves it to a GPU, but to
    torch's meta device (there may be no GPU here), and run with every op
    watched: one that is given a CPU tensor beside the moved ones would
    raise on a GPU.  Other failures on the meta device (a data-dependent
    op) say nothing of devices and pass."""
    steps = [("the forward pass", "make the tensors it creates follow its input's device, "
              "e.g. torch.arange(n, device=x.device), and register a tensor it keeps as a "
              "buffer (self.register_buffer)"),
             ("the loss_fn", "make it follow the output's device, e.g. labels.to(out.device)")]
    step = -1
    try:
        call, model, inputs, loss_fn = _build(family, depth, shortcut, options, seed)
        model = model.to("meta").train(family.mode == "train")
        inputs = to_cell(inputs, torch.device("meta"), torch.float32)
        with _CPUTensorFinder():
            step = 0
            output = call_model(model, inputs)
            step = 1
            loss_fn(output)
    except _OnTheCPU as op:
        what, fix = steps[step]
        raise FamilyError(f"{key}.factory: {what} of {call}, on another device than the CPU, "
                          f"gives {op} a tensor that stayed on the CPU; {fix}") from None
    except Exception:  # what fails on the meta device alone passes
        return


def _measured(key, family, depth, shortcut, dtype, seed, chunk_options):
    """One cell through the measurement's runner, as a job measures it."""
    from shortcutbench.core.families import spec
    from shortcutbench.measuring.family import measure_cell

    fields = {"model": family.name, "depth": depth, "seed": seed, "shortcut": shortcut,
              "shortcut_scale": 1.0 if shortcut else 0.0, "branch_scale": "1",
              "device": "cpu", "dtype": dtype, **spec(family.name).cell_fields({})}
    try:
        return measure_cell(family, fields, chunk_options)
    except FamilyError:
        raise
    except ValueError as error:  # the shortcut switch's (SwitchError) and the blocks'
        raise FamilyError(f"{key}: measuring the cell {family.call(depth, shortcut, {})}: "
                          f"{error}") from None
    except Exception as error:
        raise FamilyError(f"{key}: measuring the cell {family.call(depth, shortcut, {})} in "
                          f"{dtype} raised {_said(error)}; a model, its inputs and its loss "
                          f"must run in every dtype of {key}.dtypes (make loss_fn follow the "
                          f"output's device and dtype, e.g. labels.to(out.device))") from None


def _blocks_of(key, family, records, depth, shortcut, options):
    """The blocks a cell's records found; a FamilyError if none, with a
    pattern that would find them, read from the model's own names."""
    found = {r["layer"] for r in records} - {blocks.OUTSIDE}
    if not found:
        names = [r["param"] for r in records]
        listed = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        better = blocks.suggest(names)
        fix = (f"e.g. {blocks.shown(better)}, read from these names" if better else
               "e.g. 'blocks\\.(\\d+)\\.', naming the blocks' parameters")
        what = (f"{blocks.shown(family.blocks)} matches none of the parameter names"
                if family.pattern else
                "no pattern is given, and none could be read from the parameter names")
        raise FamilyError(f"{key}.blocks: {what} of {family.call(depth, shortcut, options)} "
                          f"({listed}); write a pattern whose groups number the blocks, {fix}")
    return found


def _same(a, b):
    """Two cells' records equal, NaN equal to NaN."""
    def plain(value):
        return "nan" if isinstance(value, float) and math.isnan(value) else value
    return len(a) == len(b) and all(
        {k: plain(v) for k, v in x.items()} == {k: plain(v) for k, v in y.items()}
        for x, y in zip(a, b))


def _largest(key, family, depth, shortcut, options, seed):
    """Parameters, their bytes, the bytes autograd keeps and the parameter
    names at the largest depth, on the meta device (shapes only, no memory,
    no time); saved is None where the model cannot run there (a
    data-dependent op), and all four are None where it cannot even be built
    there."""
    try:
        with torch.device("meta"):
            model, saved = _run(key, family, depth, shortcut, options, seed, True)
    except FamilyError:
        try:
            with torch.device("meta"):
                model = _build(family, depth, shortcut, options, seed)[1]
        except Exception:
            return None, None, None, None
        saved = None
    parameters = sum(p.numel() for p in model.parameters())
    return (parameters, sum(p.numel() * p.element_size() for p in model.parameters()), saved,
            [name for name, _ in model.named_parameters()])


def main() -> None:
    request = json.load(sys.stdin)
    configure_torch()  # as a measuring job runs: one thread
    # What the user's module prints goes to stderr: stdout carries the answer.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            answer = {"ok": True, **check(request["name"], request["section"],
                                          request["workdir"])}
        except FamilyError as error:
            answer = {"ok": False, "error": str(error)}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
