"""The book's MLP (chapter 4.4) as a family: its spec.

Its section is the config's top level: depths, widths, seeds, shortcut,
activations, inits, norms, shortcut_scales, branch_scales, dtypes and
devices are the main sweep's axes, and `studies` and `training` are its
further sweeps (core/sweep.py).  Its measuring code is measuring/model.py.
"""

from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.families import FamilySpec, Layout, register_family

NAME = "mlp"

SPEC = register_family(FamilySpec(
    NAME, "The book\u2019s MLP (chapter 4.4)", "layers", "",
    Layout(profile=r"layers\.\d+\.0\.weight", stream=True),
    "shortcutbench.measuring.mlp:MLPFamily", generic_figures=(),
    main_variant={axis: BOOK_CASE[axis] for axis in ("width", "activation", "init", "norm",
                                                      "dtype", "device")},
    switch="one residual add per layer where the shapes match, x = x + layer(x) "
           "(ExampleDeepNeuralNetwork.forward and the fast path's forward, "
           "shortcutbench/measuring/model.py); without shortcut x = layer(x), and with "
           "shortcut_scale \u03bb and branch_scale \u03b1, x = \u03bb\u00b7x + "
           "\u03b1\u00b7layer(x)",
    order=0))
