"""matplotlib's SVG figures made small and self-contained for the report:
compacted, inlined as data: URIs, with the size they were drawn at."""

import base64
import re

SVG_SIZE = re.compile(rb'<svg[^>]*?\swidth="([0-9.]+)pt"[^>]*?\sheight="([0-9.]+)pt"')


def svg_size(svg):
    """The CSS pixel size matplotlib wrote into an SVG (in pt), or None."""
    match = SVG_SIZE.search(svg[:4000] if isinstance(svg, bytes) else svg[:4000].encode())
    if not match:
        return None
    return tuple(round(float(v) * 4 / 3) for v in match.groups())


PATH_DATA = re.compile(rb'\sd="([^"]*)"')
DECIMALS = re.compile(rb"(-?\d+\.\d)\d+")
BETWEEN_TAGS = re.compile(rb">\s+<")
COMMENT = re.compile(rb"<!--.*?-->", re.S)
SPACES = re.compile(rb"\s+")
COMMAND = re.compile(rb" ?([A-Za-z]) ?")


def _compact_path(data):
    data = DECIMALS.sub(rb"\1", data)
    return COMMAND.sub(rb"\1", SPACES.sub(b" ", data).strip())


FONT_FAMILY = re.compile(rb"font-family: ?([^;\"]+);? ?")
STYLE = re.compile(rb'style="([^"]*)"')
GROUP_ID = re.compile(rb'<g id="[^"]*"')
NO_ROTATION = re.compile(rb' transform="rotate\(-?0 [^"]*\)"')
METADATA = re.compile(rb"<metadata>.*?</metadata>", re.S)
POSITION = re.compile(rb' ([xy])="(-?\d+\.\d)\d*"')


def _compact_style(match):
    return b'style="' + re.sub(rb"([:;]) ", rb"\1", match.group(1)).rstrip(b"; ") + b'"'


def compact_svg(svg):
    """matplotlib's SVG, smaller for the page: path coordinates rounded to
    0.1 pt (a seventh of a pixel) and written without spaces around the
    commands; the font list, repeated on every text, said once in the
    style sheet; text positions to 0.1 pt and no rotation by 0; no ids on
    groups (nothing refers to them), no metadata, no comments, no
    indentation between tags.  Transforms keep every digit."""
    svg = METADATA.sub(b"", COMMENT.sub(b"", svg))
    svg = POSITION.sub(rb' \1="\2"', NO_ROTATION.sub(b"", svg))
    svg = PATH_DATA.sub(lambda m: b' d="' + _compact_path(m.group(1)) + b'"', svg)
    fonts = {m.group(1) for m in FONT_FAMILY.finditer(svg)}
    if len(fonts) == 1 and b'<style type="text/css">' in svg:
        svg = FONT_FAMILY.sub(b"", svg)
        svg = svg.replace(b'<style type="text/css">',
                          b'<style type="text/css">text{font-family:' + fonts.pop() + b"}", 1)
    svg = STYLE.sub(_compact_style, svg)
    svg = GROUP_ID.sub(b"<g", svg)
    return BETWEEN_TAGS.sub(b"><", svg)


def svg_data_uri(svg):
    """An SVG file's bytes as a data: URI for <img src>: self-contained,
    and its ids cannot clash with another figure's."""
    if isinstance(svg, str):
        svg = svg.encode()
    return "data:image/svg+xml;base64," + base64.b64encode(compact_svg(svg)).decode("ascii")


def figure(svg, path=None, **extra):
    """A figure for the page: its data: URI, its size, its file's path."""
    path = path and str(path)
    if not svg:
        return {"uri": None, "size": None, "path": path, **extra}
    return {"uri": svg_data_uri(svg), "size": svg_size(svg), "path": path, **extra}
