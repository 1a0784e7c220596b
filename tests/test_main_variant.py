"""One rule for the variant a family's report leads with: the headline
(analysis/mlp/tables.py's main_choice) and the family's own section
(analysis/families.py's main_variant) choose the same one, also where the
sweep lacks the book's whole variant."""

import itertools

from shortcutbench.analysis.families import main_variant
from shortcutbench.analysis.mlp.tables import main_choice
from shortcutbench.analysis.variants import VARIANT_AXES, variant_sort_key

AXES = {"width": [4, 8, 16, 32], "activation": ["gelu", "gelu_tanh", "relu"],
        "init": ["kaiming_normal", "pytorch", "xavier_uniform"], "norm": ["none", "pre_layernorm"],
        "dtype": ["float32", "float64"], "device": ["cpu"]}
ARMS = [{"shortcut": False, "scale": None, "branch": None},
        {"shortcut": True, "scale": 1.0, "branch": "1"}]


def grid(axes):
    variants = [dict(zip(VARIANT_AXES, values))
                for values in itertools.product(*(axes[a] for a in VARIANT_AXES))]
    return sorted(variants, key=variant_sort_key)


def test_without_the_book_s_width_both_lead_with_the_closest_variant():
    variants = grid(AXES)
    # the first in sort order is not the book's on activation and init
    assert variants[0]["activation"] == "gelu" and variants[0]["init"] == "kaiming_normal"
    chosen = main_variant("mlp", variants)
    assert chosen == {"width": 4, "activation": "gelu_tanh", "init": "pytorch", "norm": "none",
                      "dtype": "float32", "device": "cpu"}
    variant, scale, branch, book_axes = main_choice(AXES, ARMS, variants)
    assert variant == chosen
    assert (scale, branch) == (1.0, "1")
    assert book_axes == ["activation", "init", "norm", "dtype"]


def test_with_the_book_s_variant_both_lead_with_it():
    axes = {**AXES, "width": [3, 32]}
    variants = grid(axes)
    chosen = main_variant("mlp", variants)
    assert chosen["width"] == 3 and chosen["activation"] == "gelu_tanh"
    assert main_choice(axes, ARMS, variants)[0] == chosen


def test_a_sweep_that_is_not_a_grid_leads_with_a_variant_it_has():
    variants = grid(AXES)
    variants = [v for v in variants if not (v["activation"] == "gelu_tanh"
                                            and v["init"] == "pytorch")]
    chosen = main_variant("mlp", variants)
    assert chosen in variants
    assert chosen["activation"] == "gelu_tanh" and chosen["init"] == "kaiming_normal"
