"""Numbers as the report writes them (Jinja2 filters of analysis/render.py):
significant digits, e-notation far from 1, '–' for missing and '∞' for
overflow, ratios as powers of ten."""

import math


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_num(x, digits=3):
    """A number for a table cell or a sentence: 3 (digits) significant
    digits, plain from 1e-3 while they fit before the point ('999'), else
    e-notation ('1.00e3', '1.46e7', '1.23e-4'); '–' for missing, '∞' for
    overflow."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "\u2013"
    if isinstance(x, float) and math.isinf(x):
        return "\u221e" if x > 0 else "\u2212\u221e"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    # decided after rounding: from 10**digits on, plain would need zeros that
    # are not significant digits ('g' writes 3296.59 as '3.3e+03')
    if abs(x) >= 1e-3 and int(exponent) < digits:
        return f"{x:.{digits}g}"
    return f"{mantissa}e{int(exponent)}"


def fmt_full(x):
    """The full value (Python's shortest round-tripping repr), for titles."""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def fmt_key(x):
    """A table cell's value to six significant digits: what the page sorts
    by and shows on hover (the exact values are in results/)."""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def fmt_times(x, digits=2):
    """A ratio as 'a × 10ⁿ' (HTML with <sup>), or plain when near 1."""
    from markupsafe import Markup

    if not finite(x) or x <= 0:
        return Markup(fmt_num(x))
    # plain below 1e3 after rounding (999.7 is '1.0 x 10^3', not '1e+03')
    if x >= 1e-2 and int(f"{x:.{digits}e}".split("e")[1]) < 3:
        return Markup(f"{x:.{digits + 1}g}")
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    exp = int(exponent)
    sign = "\u2212" if exp < 0 else ""
    return Markup(f"{mantissa}&thinsp;&times;&thinsp;10<sup>{sign}{abs(exp)}</sup>")


def fmt_decades(x):
    """log10 of a ratio, e.g. '47.3'."""
    if not finite(x) or x <= 0:
        return "\u2013"
    return f"{math.log10(x):.1f}"
