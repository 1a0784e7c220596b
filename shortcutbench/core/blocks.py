"""Which block a parameter belongs to, read from its name with a family's
`blocks` pattern (a regular expression, re.search).

One group is the block's number: 'blocks\\.(\\d+)\\.' gives blocks.3.w block
3.  Several groups are numbered together, as numbers, in order: timm names
its blocks layer{stage}.{i}, and 'layer(\\d+)\\.(\\d+)\\.' gives layer1.0,
layer1.1, layer2.0, ... the blocks 0, 1, 2, ...  A name the pattern does not
match is outside every block: -1.

Torch-free: the config's check and the measuring side share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OUTSIDE = -1


class BlocksError(ValueError):
    """A pattern that cannot number the blocks; the message says why and the fix."""


def shown(pattern: str) -> str:
    """A pattern as the user wrote it (repr() would double its backslashes)."""
    return f"'{pattern}'"


def numbers(pattern: str, names: Iterable[str]) -> dict[str, int]:
    """{parameter name: its block}, -1 for names outside every block."""
    compiled = re.compile(pattern)
    keys = {}
    for name in names:
        match = compiled.search(name)
        if not match:
            keys[name] = None
            continue
        try:
            keys[name] = tuple(int(group) for group in match.groups())
        except (TypeError, ValueError):
            raise BlocksError(
                f"the groups of {shown(pattern)} are {match.groups()} in the parameter "
                f"{name!r}, not a block's number; capture the digits, e.g. "
                f"'blocks\\.(\\d+)\\.'") from None
    if compiled.groups == 1:  # the number as it is
        return {name: OUTSIDE if key is None else key[0] for name, key in keys.items()}
    order = {key: n for n, key in enumerate(sorted({k for k in keys.values() if k is not None}))}
    return {name: OUTSIDE if key is None else order[key] for name, key in keys.items()}


def module_of(pattern: str, name: str) -> str | None:
    """The name of the module holding a parameter's block: its name up to
    the end of the pattern's match ('transformer.h.3' of
    'transformer.h.3.attn.c_attn.weight'), or None outside every block."""
    match = re.search(pattern, name)
    return name[:match.end()].rstrip(".") if match else None


def _numbered_runs(names: Iterable[str]) -> dict[str, set[tuple[int, ...]]]:
    """{a module path with its numbers as '#': the numbers of its modules}."""
    runs: dict[str, set[tuple[int, ...]]] = {}
    for name in names:
        parts = name.split(".")
        for i, part in enumerate(parts[:-1]):
            if part.isdigit() and i > 0:
                path = ".".join(parts[:i])
                numbered = (*map(int, re.findall(r"\d+", path)), int(part))
                runs.setdefault(re.sub(r"\d+", "#", path), set()).add(numbered)
    return runs


def suggest(names: Iterable[str], deeper: Iterable[str] | None = None) -> str | None:
    """A pattern that numbers the blocks of a model with these parameter
    names: the longest run of modules numbered 0, 1, 2, ... (a ModuleList or
    Sequential of blocks), the digits of its own path as groups too (timm's
    layer1..layer4 stages); of those that have more modules in `deeper`
    (the names of the same model one block deeper) where it is given: a
    block's own numbered parts (a downsample's conv and norm) do not grow.
    None where no name has a number."""
    runs = _numbered_runs(names)
    if deeper is not None:
        more = _numbered_runs(deeper)
        runs = {p: run for p, run in runs.items() if len(more.get(p, ())) > len(run)} or runs
    if not runs:
        return None
    # the most blocks; of equals, the outermost
    prefix = max(runs, key=lambda p: (len(runs[p]), -p.count(".")))
    return re.escape(prefix).replace("\\#", "#").replace("#", r"(\d+)") + r"\.(\d+)\."
