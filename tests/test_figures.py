"""The report's figures: drawn for awkward sweeps from the merged results
alone (summary.csv, lines.csv, tables.json: tests/report_inputs.py builds
them by hand), saved as SVG and PNG with the same bytes every time."""

import json
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from report_inputs import contract_lines, contract_summary, write_inputs
from test_report import make_gradients

from shortcutbench.analysis import style
from shortcutbench.analysis.mlp import merged_tables, overview_figures
from shortcutbench.analysis.mlp import profile_figure as profile_module
from shortcutbench.analysis.svg import svg_size
from shortcutbench.analysis.variants import headline_variant
from shortcutbench.core import arms as arm_forms

VARIANT = {"width": 3, "activation": "gelu_tanh", "init": "pytorch", "norm": "none",
           "dtype": "float32", "device": "cpu"}

SWEEPS = {
    "plain": dict(depths=(1, 2, 5, 12), seeds=(122, 123, 124)),
    "non-finite": dict(depths=(2, 5, 12), seeds=(1, 2, 3),
                       nonfinite={(12, f, s) for f in (False, True) for s in (1, 2, 3)},
                       zero={(5, True, 2)}),
    "one seed": dict(depths=(5,), seeds=(123,)),
    "one depth": dict(depths=(8,), seeds=(1, 2)),
    "one flag": dict(depths=(2, 6), shortcuts=(True,)),
    "scales": dict(depths=(2, 6), scales=(0.5, 1.0, 1.5)),
    "variants": dict(depths=(3, 9), widths=(3, 32), devices=("cpu", "cuda")),
}
AXES = {"variants": ["width", "device"], "scales": ["shortcut_scale"]}


def png_text_chunks(data):
    """The keys of a PNG's tEXt/iTXt/zTXt chunks."""
    keys, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(data[pos + 8:pos + 8 + length].split(b"\0")[0])
        pos += 12 + length
    return keys


def gradients_of(branches=None, **kwargs):
    """make_gradients, with the shortcut arms copied per branch scale alpha."""
    g = make_gradients(**kwargs)
    if not branches:
        return g
    with_ = g[g["shortcut"].astype(bool)]
    copies = [g[~g["shortcut"].astype(bool)]]
    for i, alpha in enumerate(branches):
        copy = with_.assign(branch_scale=alpha)
        copies.append(copy.assign(grad_abs_mean=copy["grad_abs_mean"] * 10.0 ** -i))
    return pd.concat(copies, ignore_index=True)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure of every sweep above, drawn once."""
    out = {}
    for name, kwargs in SWEEPS.items():
        root = tmp_path_factory.mktemp(name.replace(" ", "_"))
        data = write_inputs(gradients_of(**kwargs), root)
        stems = {k: root / k for k in ("headline", "attenuation", "heatmap")}
        axis_stems = {axis: root / f"axis-{axis}" for axis in AXES.get(name, [])}
        overview_figures.make_overview(root / "summary.csv", root / "tables.json", stems,
                                       axis_stems)
        profile_module.make_profiles(root / "summary.csv", root / "lines.csv",
                                     root / "tables.json", root / "profile",
                                     root / "profiles.json")
        out[name] = root, data
    return out


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_every_figure_is_drawn_as_svg_and_png(drawn, sweep):
    root, data = drawn[sweep]
    stems = ["headline", "attenuation", "heatmap", "profile"] + [
        f"axis-{axis}" for axis in AXES.get(sweep, [])]
    for stem in stems:
        svg = (root / f"{stem}.svg").read_bytes()
        png = (root / f"{stem}.png").read_bytes()
        assert svg.startswith(b"<?xml") and b"</svg>" in svg[-100:]
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
        assert b"<dc:date>" not in svg  # no timestamp
        assert b"Software" not in png_text_chunks(png)
        assert svg_size(svg)[0] > 100


def test_the_same_data_give_the_same_bytes(drawn, tmp_path):
    root, data = drawn["non-finite"]
    summary = merged_tables.read_table(root / "summary.csv")
    lines = merged_tables.read_table(root / "lines.csv")
    for i in range(2):
        style.save(overview_figures.heatmap_figure(summary, [VARIANT]), tmp_path / f"heat{i}")
        style.save(profile_module.profile_figure(summary, lines, VARIANT), tmp_path / f"prof{i}")
    for stem in ("heat", "prof"):
        for ext in ("svg", "png"):
            assert (tmp_path / f"{stem}0.{ext}").read_bytes() == \
                (tmp_path / f"{stem}1.{ext}").read_bytes(), f"{stem}.{ext}"
    # and the same as the module-scoped run drew from the same files
    assert (tmp_path / "heat0.svg").read_bytes() == (root / "heatmap.svg").read_bytes()


def test_profile_panels_follow_the_depths(drawn):
    root, _ = drawn["plain"]
    summary = merged_tables.read_table(root / "summary.csv")
    lines = merged_tables.read_table(root / "lines.csv")
    fig = profile_module.profile_figure(summary, lines, VARIANT)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["depth 1", "depth 2", "depth 5", "depth 12"]
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["without shortcut", "with shortcut"]


def test_scales_get_their_own_colours(drawn):
    root, data = drawn["scales"]
    fig = overview_figures.attenuation_figure(data["attenuation"], data["sweep"]["variants"])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["without shortcut", "with shortcut, λ=1", "with shortcut, λ=0.5",
                      "with shortcut, λ=1.5"]
    arms = merged_tables.arms_of(merged_tables.read_table(root / "summary.csv"))
    colours = {arms.color((True, s, "1")) for s in (0.5, 1.0, 1.5)}
    assert len(colours) == 3 and style.WITHOUT_COLOR not in colours
    assert arms.color((True, 1.0, "1")) == style.WITH_COLOR


def test_branch_scales_are_labelled_alpha(tmp_path):
    g = gradients_of(depths=(2, 6), branches=("1", "0.1", "1/sqrt(depth)"))
    contract_summary(g).to_csv(tmp_path / "summary.csv", index=False)
    contract_lines(g).to_csv(tmp_path / "lines.csv", index=False)
    summary = merged_tables.read_table(tmp_path / "summary.csv")
    arms = merged_tables.arms_of(summary)
    assert [arms.label(a) for a in arms] == [
        "without shortcut", "with shortcut, α=1", "with shortcut, α=0.1",
        "with shortcut, α=1/\u221adepth"]
    assert len({arms.color(a) for a in arms}) == 4
    lines = merged_tables.read_table(tmp_path / "lines.csv")
    fig = profile_module.profile_figure(summary, lines, VARIANT)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [arms.label(a) for a in arms]
    # alpha's axis effect: one series with lambda 1, the sweep without shortcut as reference
    _, xs, series, reference = overview_figures.axis_effect(summary, None, "branch_scale", VARIANT)
    assert xs == ["1", "0.1", "1/sqrt(depth)"] and list(series) == [arm_forms.BOOK]
    assert reference is not None
    style.save(overview_figures.axis_figure(summary, None, "branch_scale", VARIANT), tmp_path / "a")
    assert (tmp_path / "a.svg").stat().st_size > 1000


def test_axis_effect_holds_the_other_axes_at_the_headline_variant(drawn):
    root, data = drawn["variants"]
    summary = merged_tables.read_table(root / "summary.csv")
    base = headline_variant(data)
    assert base["width"] == 3 and base["device"] == "cpu"
    deepest, xs, series, reference = overview_figures.axis_effect(summary, data["states"],
                                                                  "width", base)
    assert deepest == 9 and xs == [3, 32] and reference is None
    assert set(series) == {arm_forms.WITHOUT, arm_forms.BOOK}
    point = series[arm_forms.BOOK][32]
    row = summary[(summary["depth"] == 9) & (summary["layer"] == 0) & (summary["width"] == 32)
                  & (summary["device"] == "cpu") & summary["shortcut"]]
    assert point["gmean"] == pytest.approx(10 ** row["log10_mean"].item())
    assert point["healthy"] == (2, 2)  # two seeds, both healthy
    # lambda: one series with alpha 1, the sweep without shortcut as a reference
    root, data = drawn["scales"]
    summary = merged_tables.read_table(root / "summary.csv")
    _, xs, series, reference = overview_figures.axis_effect(
        summary, data["states"], "shortcut_scale", headline_variant(data))
    assert xs == [0.5, 1.0, 1.5] and list(series) == [arm_forms.BOOK]
    assert reference is not None


def test_profiles_draw_bands_and_at_most_50_seeds(tmp_path):
    g = make_gradients(depths=(3,), seeds=tuple(range(60)), book=False)
    summary = contract_summary(g)
    lines = contract_lines(g)
    assert lines.groupby(["shortcut"])["seed"].nunique().tolist() == [50, 50]
    fig = profile_module.profile_figure(summary, lines, VARIANT)
    ax = fig.axes[0]
    from matplotlib.collections import LineCollection, PolyCollection

    seeds = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [len(c.get_segments()) for c in seeds] == [50, 50]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # q05-q95 and q25-q75, per arm
    # the light band spans the seeds' 5% and 95% quantiles of the first layer
    first = summary[(summary["layer"] == 0) & ~summary["shortcut"]]
    low, high = 10 ** first["q05"].item(), 10 ** first["q95"].item()
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(low, rel=1e-9) or np.isclose(ys, low).any()
    assert np.isclose(ys, high).any()


def test_heatmap_marks_subnormal_means(tmp_path):
    def value(cell, layer):
        return 1e-40 if layer == 0 and not cell["shortcut"] else 0.1
    g = make_gradients(depths=(2, 4), seeds=(1, 2), value=value, book=False)
    summary = contract_summary(g)
    fig = overview_figures.heatmap_figure(summary, [VARIANT])
    dots = [c for ax in fig.axes for c in ax.collections
            if type(c).__name__ == "PathCollection"]
    assert len(dots) == 1 and len(dots[0].get_offsets()) == 2  # layer 0 at depths 2 and 4
    assert "subnormal" in fig._suptitle.get_text()


def test_power_of_ten_labels_are_plain_text():
    assert style.power_of_ten(1e-40) == "10\u207b\u2074\u2070"
    assert style.power_of_ten(1.0) == "10\u2070"
    assert style.power_of_ten(3e5) == ""


def test_png_text_chunks_reader():
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"tEXt", b"Software\0x") + chunk(b"IEND", b"")
    assert png_text_chunks(png) == [b"Software"]


def test_the_pages_numbers_are_the_figures(tmp_path):
    # what the page's script draws for a picked variant: the same centre line,
    # bands and at most 50 seeds as profile_figure, in log10 to 3 decimals
    g = make_gradients(depths=(1, 3), seeds=tuple(range(60)), book=False)
    summary = contract_summary(g)
    lines = contract_lines(g)
    arms = merged_tables.arms_of(summary)
    profiles = profile_module.profile_data(summary, lines)
    numbers = profile_module.profile_numbers(profiles, VARIANT, arms)
    assert [p["depth"] for p in numbers["panels"]] == [1, 3]
    panel = numbers["panels"][1]
    assert [s["arm"] for s in panel["series"]] == [0, 1]  # without, then with shortcut
    without = panel["series"][0]
    rows = summary[(summary["depth"] == 3) & ~summary["shortcut"]].sort_values("layer")
    assert without["centre"] == pytest.approx(rows["log10_mean"].tolist(), abs=5e-4)
    assert [b[2] for b in without["bands"]] == [0.16, 0.32]  # 60 seeds: quantile bands
    assert without["bands"][0][0] == pytest.approx(rows["q05"].tolist(), abs=5e-4)
    assert len(without["lines"]) == 50 and all(len(line) == 3 for line in without["lines"])
    # a dead seed (gradient 0) has no log10: None, which JSON writes as null
    g.loc[(g["seed"] == 0) & (g["depth"] == 3), "grad_abs_mean"] = 0.0
    profiles = profile_module.profile_data(contract_summary(g), contract_lines(g))
    numbers = profile_module.profile_numbers(profiles, VARIANT, arms)
    assert numbers["panels"][1]["series"][0]["lines"][0] == [None, None, None]
    json.dumps(numbers, allow_nan=False)


def test_many_variants_get_fewer_lines_on_the_page(monkeypatch):
    g = make_gradients(depths=(4,), seeds=tuple(range(30)), book=False)
    profiles = profile_module.profile_data(contract_summary(g), contract_lines(g))
    # 2 arms x 30 seeds x 4 layers = 240 values: all of them fit
    assert profile_module.page_lines(profiles) == profile_module.MAX_LINES
    monkeypatch.setattr(profile_module, "PAGE_LINE_VALUES", 100)
    assert profile_module.page_lines(profiles) == 12  # 2 x 12 x 4 = 96 <= 100
    arms = merged_tables.arms_of(contract_summary(g))
    numbers = profile_module.profile_numbers(profiles, VARIANT, arms, lines=12)
    assert [len(s["lines"]) for s in numbers["panels"][0]["series"]] == [12, 12]
    monkeypatch.setattr(profile_module, "PAGE_LINE_VALUES", 3)
    assert profile_module.page_lines(profiles) == 0
