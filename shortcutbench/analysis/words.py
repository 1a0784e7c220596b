"""A group of cells in words: which state describes it, and how its seeds
split ("19 of 30 seeds exploded, 11 dead").  Shared by the top-level
family's own headline and every family's (families.py).  Plain Python.
"""

from shortcutbench.core.states import STATES

# What a state does to the network, as a verb phrase.
STATE_VERBS = {"healthy": "stays healthy", "vanished": "loses its gradient (vanished)",
               "exploded": "explodes", "dead": "dies (its output is exactly 0)",
               "non-finite": "overflows (non-finite)",
               "zero-branch": "passes its blocks' weights no gradient (zero-branch)"}
# The state read from the profile's gradients alone, as what it does to the
# gradient of the one parameter a layout reads each layer by (its `point`);
# the other states also weigh the stream, the output or finiteness, and stay
# the network's.
POINT_VERBS = {"vanished": "vanishes (vanished)"}
# Which unhealthy state names a mixed arm, on equal counts.
UNHEALTHY_ORDER = ("exploded", "non-finite", "vanished", "dead", "zero-branch")


def dominant_state(counts):
    """The state that describes an arm: healthy only when most of its seeds
    are (more than half); otherwise the most common unhealthy state (ties:
    exploded, non-finite, vanished, dead, zero-branch)."""
    n = sum(counts.values())
    if n and counts.get("healthy", 0) * 2 > n:
        return "healthy"
    return max(UNHEALTHY_ORDER, key=lambda s: (counts.get(s, 0), -UNHEALTHY_ORDER.index(s)))


def breakdown(counts, n, first=None):
    """'19 of 30 seeds exploded, 11 dead': the states by count, `first`
    (the state the sentence names) leading."""
    parts = [(counts.get(s, 0), s) for s in STATES if counts.get(s, 0)]
    parts.sort(key=lambda p: (p[1] != first, -p[0], STATES.index(p[1])))
    if not parts:
        return f"{n} seeds"
    if len(parts) == 1:
        if n == 1:
            return f"its one seed {parts[0][1]}"
        return f"{'both' if n == 2 else f'all {n}'} seeds {parts[0][1]}"
    words = [f"{k} of {n} seeds {s}" if i == 0 else f"{k} {s}"
             for i, (k, s) in enumerate(parts)]
    return ", ".join(words)
