"""The report's figures: drawn for awkward sweeps, saved as SVG and PNG with
the same bytes every time."""

import json
import struct
import zlib

import pytest
from test_report import make_gradients

from shortcutbench.analysis import figures, render
from shortcutbench.analysis.aggregate import summary_table
from shortcutbench.analysis.partials_frame import partials_of_records
from shortcutbench.analysis.tables import make_tables
from shortcutbench.core.files import write_json

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


def png_text_chunks(data):
    """The keys of a PNG's tEXt/iTXt/zTXt chunks."""
    keys, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(data[pos + 8:pos + 8 + length].split(b"\0")[0])
        pos += 12 + length
    return keys


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure of every sweep above, drawn once."""
    out = {}
    for name, kwargs in SWEEPS.items():
        root = tmp_path_factory.mktemp(name.replace(" ", "_"))
        g = make_gradients(**kwargs)
        g.to_csv(root / "gradients.csv", index=False)
        summary_table(g).to_csv(root / "summary.csv", index=False)
        write_json(partials_of_records(g), root / "partials.json")
        make_tables(root / "partials.json", root / "tables.json")
        data = figures.make_overview(root / "gradients.csv", root / "summary.csv",
                                     root / "tables.json",
                                     {k: root / k for k in ("headline", "attenuation", "heatmap")})
        variants = data["sweep"]["variants"]
        figures.make_profiles(root / "gradients.csv", root / "summary.csv", variants,
                              [root / f"profile{i}" for i in range(len(variants))])
        out[name] = root, data
    return out


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_every_figure_is_drawn_as_svg_and_png(drawn, sweep):
    root, data = drawn[sweep]
    stems = ["headline", "attenuation", "heatmap"] + [
        f"profile{i}" for i in range(len(data["sweep"]["variants"]))]
    for stem in stems:
        svg = (root / f"{stem}.svg").read_bytes()
        png = (root / f"{stem}.png").read_bytes()
        assert svg.startswith(b"<?xml") and b"</svg>" in svg[-100:]
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
        assert b"<dc:date>" not in svg  # no timestamp
        assert b"Software" not in png_text_chunks(png)
        assert render.svg_size(svg)[0] > 100
    assert json.loads((root / "tables.json").read_text()) == json.loads(
        json.dumps(data, allow_nan=True))


def test_the_same_data_give_the_same_bytes(drawn, tmp_path):
    root, _ = drawn["non-finite"]
    gradients = figures.read_table(root / "gradients.csv")
    summary = figures.read_table(root / "summary.csv")
    for i in range(2):
        figures.save(figures.heatmap_figure(summary), tmp_path / f"heat{i}")
        figures.save(figures.profile_figure(gradients, summary, VARIANT), tmp_path / f"prof{i}")
    for stem in ("heat", "prof"):
        for ext in ("svg", "png"):
            assert (tmp_path / f"{stem}0.{ext}").read_bytes() == \
                (tmp_path / f"{stem}1.{ext}").read_bytes(), f"{stem}.{ext}"
    # and the same as the module-scoped run drew from the same files
    assert (tmp_path / "heat0.svg").read_bytes() == (root / "heatmap.svg").read_bytes()


def test_profile_panels_follow_the_depths(drawn):
    root, _ = drawn["plain"]
    gradients = figures.read_table(root / "gradients.csv")
    summary = figures.read_table(root / "summary.csv")
    fig = figures.profile_figure(gradients, summary, VARIANT)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["depth 1", "depth 2", "depth 5", "depth 12"]
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["without shortcut", "with shortcut"]


def test_scales_get_their_own_colours(drawn):
    root, data = drawn["scales"]
    fig = figures.attenuation_figure(data["attenuation"], scales=data["sweep"]["scales"])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["without shortcut", "with shortcut, λ=1", "with shortcut, λ=0.5",
                      "with shortcut, λ=1.5"]
    colours = {figures.arm_color(True, s, data["sweep"]["scales"]) for s in (0.5, 1.0, 1.5)}
    assert len(colours) == 3 and figures.WITHOUT_COLOR not in colours


def test_power_of_ten_labels_are_plain_text():
    assert figures.power_of_ten(1e-40) == "10\u207b\u2074\u2070"
    assert figures.power_of_ten(1.0) == "10\u2070"
    assert figures.power_of_ten(3e5) == ""


def test_png_text_chunks_reader():
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"tEXt", b"Software\0x") + chunk(b"IEND", b"")
    assert png_text_chunks(png) == [b"Software"]
