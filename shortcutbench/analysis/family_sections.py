"""Every family's section of the report, and the headline's row of it: its
entry of results/families.json made ready for templates/family.html.j2, and
the words for how its shortcut was removed and which flags it swept.  A
family's title, config key and switch come from its spec."""

from shortcutbench.analysis.svg import figure
from shortcutbench.core import arms
from shortcutbench.core.families import config_key, spec

GENERIC_SWITCH = ("The generic switch finds each block\u2019s residual adds by tracing which "
                  "operands of an add share the block\u2019s input and its parameters; without "
                  "shortcut the add keeps the branch alone, and with shortcut_scale \u03bb and "
                  "branch_scale \u03b1 it becomes \u03bb\u00b7skip + \u03b1\u00b7branch.")


def _count(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def switch_words(name, switch=None):
    """How a family's shortcut was removed, for its section: the means, the
    residual adds per block and where they are, and for the generic switch
    what it does.  A shipped family's from its spec; a user family's from
    its check's `switch` ({"means": "generic"|"own", "blocks": n,
    "adds_per_block": k, "where": ["file.py:L", ...]}), None where its
    check did not say."""
    own = spec(name).switch
    if own:
        return {"generic": False, "means": "its own shortcut argument", "adds": own,
                "where": [], "explain": ""}
    if not switch:
        return None
    if switch.get("means") == "none":
        return {"generic": False, "adds": "", "where": [], "explain": "",
                "means": "nothing: every cell keeps its shortcuts as built (it has no shortcut "
                         "argument, and no cell is without them or scaled)"}
    generic = switch.get("means") == "generic"
    adds = switch.get("adds_per_block")
    adds = "" if adds is None else _count(adds, "residual add") + " per block"
    if adds and switch.get("blocks"):
        adds += f" (in each of the {_count(switch['blocks'], 'block')} its check traced)"
    means = ("the generic switch" if generic else "its factory\u2019s own shortcut argument"
             + ("; its shortcut_scales and branch_scales by the generic switch" if adds else ""))
    return {"generic": generic, "means": means, "adds": adds,
            "where": list(switch.get("where") or []),
            "explain": GENERIC_SWITCH if adds else ""}


def one_flag_words(name, flags):
    """Why a family that swept one shortcut flag has no with/without
    ratio, naming the config key; '' where it swept both."""
    if len(flags) != 1:
        return ""
    which = "with" if flags[0] else "without"
    return (f"only {which} its shortcut was measured ({config_key(name, 'shortcut')}: "
            f"[{str(flags[0]).lower()}])")


def shortcut_words(fams):
    """The introduction's 'with and without the shortcut', as swept: each
    family's flags; those that swept one named."""
    alone = {True: [], False: []}
    for f in fams:
        if len(f["flags"]) == 1:
            alone[f["flags"][0]].append(f["title"])
    if not alone[True] and not alone[False]:
        return "with and without the shortcut"
    if len(alone[True]) == len(fams):
        return "with the shortcut only"
    if len(alone[False]) == len(fams):
        return "without the shortcut only"
    notes = [f"{which} it only: {', '.join(titles)}"
             for which, titles in (("with", alone[True]), ("without", alone[False])) if titles]
    return f"with and without the shortcut ({'; '.join(notes)})"


def family_context(family, figures, switch=None):
    """A family's entry of results/families.json, ready for
    templates/family.html.j2: its figures ({name: (svg bytes, path)}), its
    template in families/ (a shipped family's introduction and hook), the
    rows at its deepest depth with their labels and ratios, how its
    shortcut was removed (`switch`: its check's, for a user family) and,
    where it swept one shortcut flag, why it has no ratio."""
    from shortcutbench.analysis.families import at_depth

    f = dict(family)
    flags = sorted({bool(arm["shortcut"]) for arm in f["arms"]})
    f.update(flags=flags, no_ratio=one_flag_words(f["name"], flags),
             switch=switch_words(f["name"], switch))
    scales, branches = arms.knobs(f["arms"])

    def arm_text(arm):
        return arms.label(arms.of(arm), scales, branches, short=True)

    def label(variant):
        return f["labels"][f["variants"].index(variant)]

    ratios = {(tuple(sorted(r["variant"].items())), arms.of(r["arm"]), r["depth"]): r
              for r in f["ratios"]}
    deepest = [{**r, "label": label(r["variant"]), "arm_label": arm_text(r["arm"]),
                "ratio": ratios.get((tuple(sorted(r["variant"].items())), arms.of(r["arm"]),
                                     r["depth"]))}
               for r in f["states"] if r["depth"] == f["deepest"]]
    deepest.sort(key=lambda r: (r["variant"] != f["main"], f["variants"].index(r["variant"]),
                                arms.of(r["arm"]).sort_key()))
    f.update(fig={name: figure(svg, path) for name, (svg, path) in figures.items()},
             template=spec(f["name"]).template,
             at_deepest=at_depth(f["name"], f["deepest"]),
             main_label=label(f["main"]) if f["main"] else "", deepest_rows=deepest)
    return f


def overview_rows(families):
    """The headline table: every family's main variant at its deepest
    depth, one row per arm."""
    rows = []
    for f in families:
        for r in f["deepest_rows"]:
            if r["variant"] != f["main"]:
                continue
            ratio = r["ratio"] or {}
            rows.append({"title": f["title"], "depth": f["deepest"], "arm": r["arm"],
                         "arm_label": r["arm_label"], "n": r["n"],
                         "healthy": r["counts"]["healthy"], "share": r["healthy"] or 0.0,
                         "dominant": r["dominant"], "first": r["first"]["gmean"],
                         "ratio": ratio.get("ratio"), "low": ratio.get("low"),
                         "high": ratio.get("high"),
                         # 'with shortcut only' where it swept one flag: no ratio
                         "no_ratio": f["no_ratio"] and
                         f"{'with' if f['flags'][0] else 'without'} shortcut only"})
    return rows
