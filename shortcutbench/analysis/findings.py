"""A finding of "What the sweep shows", typed.

A finding is a claim from the literature with its sources (claims.yaml:
data, not code), what this run measured, and a verdict: a Verdict value
(agrees, close, differs for a predicted number; confirmed, partly, not
confirmed for a qualitative claim; not measured where the sweep lacks what
it needs) and its detail in words.  The page shows a verdict's outcome
(pass, neutral, fail) from the value, never from how a sentence starts.

`compare(predicted, low, high, measured)` is the one rule every numeric
verdict follows: "agrees" only where the prediction lies inside the
measurement's 95% CI (bounds included); outside it "close" within CLOSE of
the prediction and "differs" beyond.  A missing CI (one seed) never agrees.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

CLAIMS = Path(__file__).with_name("claims.yaml")
CLOSE = 0.10  # relative: outside the CI but within 10% of the prediction


class Verdict(StrEnum):
    AGREES = "agrees"
    CLOSE = "close"
    DIFFERS = "differs"
    CONFIRMED = "confirmed"
    PARTLY = "partly"
    NOT_CONFIRMED = "not confirmed"
    NOT_MEASURED = "not measured"
    NO_PREDICTION = "no prediction"
    NO_DATA = "no data"

    @property
    def outcome(self) -> str:
        """pass, neutral or fail: how the page marks it."""
        if self in (Verdict.AGREES, Verdict.CONFIRMED):
            return "pass"
        if self in (Verdict.DIFFERS, Verdict.NOT_CONFIRMED):
            return "fail"
        return "neutral"


@functools.cache
def claims() -> dict[str, dict[str, Any]]:
    """claims.yaml: {key: {family, title, claim, sources}}."""
    import yaml

    with open(CLAIMS) as f:
        return yaml.safe_load(f)


@dataclass
class Finding:
    """One finding: `key` names its claim in claims.yaml."""
    key: str
    verdict: Verdict
    detail: str = ""
    measured: str = ""
    sweep: str | None = None
    table: dict[str, Any] | None = None
    tables: dict[str, Any] = field(default_factory=dict)  # further tables, by name
    missing: str | None = None  # what to add to the config to measure it
    families: tuple[str, ...] = ()  # the families it judges (else its claim's `family`)

    def to_json(self) -> dict[str, Any]:
        claim = claims()[self.key]
        family = ", ".join(self.families) if self.families else claim.get("family", "")
        return {"key": self.key, "family": family, "title": claim["title"],
                "claim": claim["claim"], "sources": claim["sources"], "sweep": self.sweep,
                "measured": self.measured, "verdict": str(self.verdict),
                "outcome": self.verdict.outcome, "detail": self.detail, "table": self.table,
                "missing": self.missing, **self.tables}


def not_measured(key: str, what: str) -> Finding:
    """A finding whose sweep is missing: what to add to the config."""
    return Finding(key, Verdict.NOT_MEASURED, measured="not swept",
                   missing=f"add {what} to the config")


def gap(measured: float, predicted: float) -> float:
    """The signed relative gap of the measured value from the prediction:
    measured / predicted - 1 (-0.022 is 2.2% below it)."""
    return measured / predicted - 1


def format_gap(value: float) -> str:
    """-0.0217 -> '\u22122.2%', 0.14 -> '+14%': two significant digits, a true minus."""
    percent = 100 * value
    text = f"{percent:+.0f}%" if abs(percent) >= 9.95 else f"{percent:+.1f}%"
    return text.replace("-", "\u2212")


def compare(predicted: float, low: float, high: float, measured: float) -> Verdict:
    """The verdict of a measured value with its 95% CI [low, high] against a
    prediction (see the module's doc)."""
    if not math.isfinite(predicted):
        return Verdict.NO_PREDICTION
    if not math.isfinite(measured):
        return Verdict.NO_DATA
    if math.isfinite(low) and math.isfinite(high) and low <= predicted <= high:
        return Verdict.AGREES
    lower, upper = sorted((predicted * (1 - CLOSE), predicted * (1 + CLOSE)))
    return Verdict.CLOSE if lower <= measured <= upper else Verdict.DIFFERS


def verdict_text(verdict: Verdict, predicted: float, measured: float,
                 reason: str | None = None) -> str:
    """A row's verdict for a table: 'agrees', 'close (\u22122.2%)', 'differs
    (+14%; reason)'."""
    if verdict not in (Verdict.CLOSE, Verdict.DIFFERS):
        return str(verdict)
    why = f"; {reason}" if reason else ""
    return f"{verdict} ({format_gap(gap(measured, predicted))}{why})"


def summarise(verdicts: list[Verdict]) -> Verdict:
    """One verdict for many rows': agrees only if every prediction lies
    inside its CI; close if every row agrees or is close; differs if every
    row differs; partly otherwise.  Rows without a prediction or data are
    left out."""
    judged = [v for v in verdicts if v not in (Verdict.NO_PREDICTION, Verdict.NO_DATA)]
    if not judged:
        return Verdict.NO_PREDICTION
    if all(v == Verdict.AGREES for v in judged):
        return Verdict.AGREES
    if all(v in (Verdict.AGREES, Verdict.CLOSE) for v in judged):
        return Verdict.CLOSE
    if all(v == Verdict.DIFFERS for v in judged):
        return Verdict.DIFFERS
    return Verdict.PARTLY
