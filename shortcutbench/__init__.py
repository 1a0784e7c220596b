"""shortcutbench: how shortcut (residual) connections keep gradients alive.

The measuring side (model, measure, devices' torch part) imports torch; the
analysis side (aggregate, figures, report) never does.
"""

__version__ = "0.1.0"
