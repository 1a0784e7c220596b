"""The shortcut arm of a cell, in one place: its forms, order and label.

An arm is the shortcut choice: without, or with a shortcut x = lambda * x +
alpha * layer(x).  The book's is lambda = 1, alpha = 1; alpha is kept as its
label ("1", "0.1", "1/sqrt(depth)": records.branch_label).  In the records an
arm is three columns (ARM_COLUMNS); in results/tables.json and the page a
dict {"shortcut", "scale", "branch"}; in code an Arm.  Without a shortcut
lambda and alpha mean nothing: that arm is always (False, 0.0, "1").
Plain Python: no numpy, no pandas, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

ARM_COLUMNS = ("shortcut", "shortcut_scale", "branch_scale")
BOOK_SCALE = 1.0
BOOK_BRANCH = "1"


class Arm(NamedTuple):
    shortcut: bool
    scale: float  # lambda; 0.0 without shortcut
    branch: str  # alpha's label; "1" without shortcut

    def as_dict(self) -> dict[str, Any]:
        """The form results/tables.json and the page use."""
        return {"shortcut": self.shortcut, "scale": self.scale, "branch": self.branch}

    def sort_key(self) -> tuple:
        """Without first, then the book's lambda = 1 and alpha = 1, then the
        other scales by lambda, then alpha from large to small, then the rule."""
        return (self.shortcut, self.scale != BOOK_SCALE, self.scale,
                self.branch != BOOK_BRANCH, -_branch_number(self.branch), self.branch)


def arm(shortcut: Any, scale: Any = BOOK_SCALE, branch: Any = BOOK_BRANCH) -> Arm:
    """An Arm from any of its forms' values (numpy scalars included)."""
    if not bool(shortcut):
        return WITHOUT
    return Arm(True, float(scale), str(branch))


def of(value: Mapping[str, Any] | Iterable) -> Arm:
    """An Arm from a record or a frame's row (ARM_COLUMNS), a tables.json
    dict (shortcut, scale[, branch]) or a tuple (shortcut, scale[, branch])."""
    if isinstance(value, Arm):
        return value
    if isinstance(value, Mapping) or hasattr(value, "keys"):  # a dict, a pandas row
        if "shortcut_scale" in value:
            return arm(value["shortcut"], value["shortcut_scale"],
                       value.get("branch_scale", BOOK_BRANCH))
        return arm(value["shortcut"], value.get("scale", BOOK_SCALE),
                   value.get("branch", BOOK_BRANCH))
    return arm(*value)


WITHOUT = Arm(False, 0.0, BOOK_BRANCH)
BOOK = Arm(True, BOOK_SCALE, BOOK_BRANCH)


def _branch_number(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return 0.0


def branch_text(label: Any) -> str:
    """A branch scale's label for people: '1/sqrt(depth)' -> '1/√depth',
    '0.7071067811865476' -> '0.707'."""
    label = str(label)
    if label == "1/sqrt(depth)":
        return "1/\u221adepth"
    try:
        return f"{float(label):.3g}"
    except ValueError:
        return label


def label(value: Arm, scales: Iterable[float] = (BOOK_SCALE,),
          branches: Iterable[str] = (BOOK_BRANCH,), short: bool = False) -> str:
    """'without shortcut', 'with shortcut', or 'with shortcut, λ=0.5' when
    the sweep has other scales than the book's 1 (`scales`), and ', α=0.1'
    when it has other branch scales than the book's 1 (`branches`)."""
    value = of(value)
    word = "" if short else " shortcut"
    if not value.shortcut:
        return f"without{word}"
    parts = []
    if list(scales) != [BOOK_SCALE] or value.scale != BOOK_SCALE:
        parts.append(f"\u03bb={value.scale:g}")
    if [str(b) for b in branches] != [BOOK_BRANCH] or value.branch != BOOK_BRANCH:
        parts.append(f"\u03b1={branch_text(value.branch)}")
    return ", ".join([f"with{word}", *parts])


def ordered(values: Iterable) -> list[Arm]:
    """Distinct arms of any form, in sort_key order."""
    return sorted({of(v) for v in values}, key=Arm.sort_key)


def knobs(values: Iterable) -> tuple[list[float], list[str]]:
    """The lambdas and alphas a set of arms holds with a shortcut (the
    book's 1 and "1" where none has one): what their labels must name."""
    found = [of(v) for v in values]
    scales = sorted({a.scale for a in found if a.shortcut}) or [BOOK_SCALE]
    branches = sorted({a.branch for a in found if a.shortcut}) or [BOOK_BRANCH]
    return scales, branches
