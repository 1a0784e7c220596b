/* shortcutbench report: the variant picker, which draws the picked
   variant's profile, and sortable tables.  Inline, loads nothing; without it
   the page shows the headline's variant's figure. */
(function () {
  "use strict";
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };

  /* The picked variant's gradient profile, drawn as SVG from its numbers
     (#profile-data: results/figures/profiles.json, log10 values) in the
     layout of the static figure: one panel per depth, thick line = the
     geometric mean over seeds, shaded = its bands, faint = single seeds. */
  var SVG_NS = "http://www.w3.org/2000/svg";  /* a name, never fetched */
  var node = function (name, attrs, parent, text) {
    var e = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  };
  var SUPERSCRIPT = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079";
  var decade = function (e) {   /* 10 with its exponent as superscript: 10⁻³ */
    return "10" + String(e).split("").map(function (c) {
      return c === "-" ? "\u207b" : SUPERSCRIPT[+c];
    }).join("");
  };
  var finite = function (v) { return v !== null && isFinite(v); };
  var range = function (series) {  /* the finite log10 values' [min, max], or null */
    var lo = Infinity, hi = -Infinity;
    var take = function (list) {
      list.forEach(function (v) { if (finite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    };
    series.forEach(function (s) {
      take(s.centre);
      s.bands.forEach(function (b) { take(b[0]); take(b[1]); });
      s.lines.forEach(take);
    });
    return lo <= hi ? [lo, hi] : null;
  };
  var runs = function (n, ok) {  /* the runs of consecutive indices where ok(i) */
    var out = [], run = [];
    for (var i = 0; i < n; i++) {
      if (ok(i)) { run.push(i); } else if (run.length) { out.push(run); run = []; }
    }
    if (run.length) { out.push(run); }
    return out;
  };
  var path = function (xs, ys, idx) {
    return idx.map(function (i, k) {
      return (k ? "L" : "M") + xs(i).toFixed(1) + " " + ys(i).toFixed(1);
    }).join("");
  };
  var xStep = function (depth) {  /* at most 5 integer ticks: 1, 2, 5, 10, 20, ... */
    var steps = [1, 2, 5];
    for (var scale = 1; ; scale *= 10) {
      for (var k = 0; k < 3; k++) {
        if ((depth - 1) / (steps[k] * scale) <= 4) { return steps[k] * scale; }
      }
    }
  };
  var COLUMNS = 4, CELL_W = 250, CELL_H = 186, TOP = 64;
  var PLOT = {left: 62, right: 14, top: 24, height: 120};

  var panel = function (svg, p, arms, x0, y0, first, bottom) {
    var g = node("g", {"class": "panel"}, svg);
    var w = CELL_W - PLOT.left - PLOT.right, h = PLOT.height;
    var left = x0 + PLOT.left, top = y0 + PLOT.top;
    node("text", {x: left + w / 2, y: y0 + 14, "text-anchor": "middle", "font-weight": "bold"},
         g, "depth " + p.depth);
    node("rect", {x: left, y: top, width: w, height: h, fill: "none", stroke: "#bbb"}, g);
    var yr = range(p.series);
    if (!yr) {
      node("text", {x: left + w / 2, y: top + h / 2, "text-anchor": "middle", fill: "#555"},
           g, "no finite, non-zero gradient");
      return;
    }
    var lo = yr[0], hi = yr[1];
    if (hi - lo < 1) { lo -= (1 - (hi - lo)) / 2; hi = lo + 1; }
    var margin = (hi - lo) * 0.06;
    lo -= margin; hi += margin;
    var pad = p.depth <= 2 ? 0.5 : 0.03 * p.depth;
    var xs = function (i) { return left + (i + pad) / (p.depth - 1 + 2 * pad) * w; };
    var ys = function (v) { return top + (hi - v) / (hi - lo) * h; };
    var first_e = Math.ceil(lo), last_e = Math.floor(hi);
    var every = Math.max(1, Math.ceil((last_e - first_e + 1) / 4));
    for (var e = first_e; e <= last_e; e++) {
      if ((e - first_e) % every) { continue; }
      node("line", {x1: left, x2: left + w, y1: ys(e), y2: ys(e), stroke: "#e4e4e4"}, g);
      node("text", {x: left - 5, y: ys(e) + 4, "text-anchor": "end"}, g, decade(e));
    }
    var step = xStep(p.depth);
    for (var t = 0; t < p.depth; t += step) {
      node("text", {x: xs(t), y: top + h + 15, "text-anchor": "middle"}, g, String(t));
    }
    if (first) {
      node("text", {x: x0 + 12, y: top + h / 2, "text-anchor": "middle",
                    transform: "rotate(-90 " + (x0 + 12) + " " + (top + h / 2) + ")"}, g, "mean |grad|");
    }
    if (bottom) {
      node("text", {x: left + w / 2, y: top + h + 33, "text-anchor": "middle"}, g, "layer");
    }
    /* as the static figure stacks them: every arm's single seeds, then
       every arm's bands, then every arm's centre line on top */
    p.series.forEach(function (s) {
      var color = arms[s.arm].color;
      var faint = s.lines.length <= 12 ? 0.16 : 0.09;
      s.lines.forEach(function (line) {
        if (p.depth === 1) {
          if (finite(line[0])) {
            node("circle", {cx: xs(0), cy: ys(line[0]), r: 2, fill: color, "fill-opacity": 0.25}, g);
          }
          return;
        }
        runs(line.length, function (i) { return finite(line[i]); }).forEach(function (idx) {
          node("path", {d: path(xs, function (i) { return ys(line[i]); }, idx), fill: "none",
                        stroke: color, "stroke-opacity": faint, "stroke-width": 0.8}, g);
        });
      });
    });
    p.series.forEach(function (s) {
      var color = arms[s.arm].color;
      s.bands.forEach(function (b) {
        var low = b[0], high = b[1];
        var ok = function (i) { return finite(low[i]) && finite(high[i]); };
        if (p.depth === 1) {
          if (ok(0)) {
            node("line", {x1: xs(0), x2: xs(0), y1: ys(low[0]), y2: ys(high[0]), stroke: color,
                          "stroke-width": 1.5}, g);
          }
          return;
        }
        runs(low.length, ok).forEach(function (idx) {
          var back = idx.slice().reverse();
          var d = path(xs, function (i) { return ys(high[i]); }, idx) +
                  path(xs, function (i) { return ys(low[i]); }, back).replace(/^M/, "L") + "Z";
          node("path", {d: d, fill: color, "fill-opacity": b[2], stroke: "none"}, g);
        });
      });
    });
    p.series.forEach(function (s) {
      var color = arms[s.arm].color, c = s.centre;
      runs(c.length, function (i) { return finite(c[i]); }).forEach(function (idx) {
        node("path", {d: path(xs, function (i) { return ys(c[i]); }, idx), fill: "none",
                      stroke: color, "stroke-width": 2}, g);
        if (p.depth <= 8) {
          idx.forEach(function (i) {
            node("circle", {cx: xs(i), cy: ys(c[i]), r: 3, fill: color}, g);
          });
        }
      });
    });
  };

  /* about how wide a text is drawn at the figure's 12 px (generous: wide glyphs) */
  var textWidth = function (text, size) { return text.length * (size || 12) * 0.62; };
  var LEGEND_COLUMNS = 3, LEGEND_ROW = 20, MIN_WIDTH = 720;

  var drawProfile = function (variant, arms) {
    var n = variant.panels.length, cols = Math.max(1, Math.min(COLUMNS, n));
    var rows = Math.max(1, Math.ceil(n / cols));
    var title = "Gradient per layer \u2014 " + variant.label;
    /* the legend: a swatch and a label per arm, LEGEND_COLUMNS to a row, centred */
    var entry = function (arm) { return 28 + textWidth(arm.label) + 24; };
    var legendRows = [];
    for (var a = 0; a < arms.length; a += LEGEND_COLUMNS) {
      legendRows.push(arms.slice(a, a + LEGEND_COLUMNS));
    }
    var widest = Math.max.apply(null, legendRows.map(function (row) {
      return row.reduce(function (sum, arm) { return sum + entry(arm); }, 0);
    }).concat([textWidth(title, 13) + 20, MIN_WIDTH, cols * CELL_W + 8]));
    var width = Math.ceil(widest), left = (width - (cols * CELL_W + 8)) / 2;
    var top = TOP + (legendRows.length - 1) * LEGEND_ROW;
    var height = top + rows * CELL_H;
    var svg = node("svg", {viewBox: "0 0 " + width + " " + height, width: width, height: height,
                           role: "img", "aria-label": title, "font-size": 12,
                           "font-family": "inherit", fill: "#222"});
    node("text", {x: width / 2, y: 18, "text-anchor": "middle", "font-weight": "bold",
                  "font-size": 13}, svg, title);
    legendRows.forEach(function (row, r) {
      var y = 38 + r * LEGEND_ROW;
      var x = (width - row.reduce(function (sum, arm) { return sum + entry(arm); }, 0)) / 2;
      row.forEach(function (arm) {
        node("line", {x1: x, x2: x + 22, y1: y, y2: y, stroke: arm.color, "stroke-width": 2.5}, svg);
        node("text", {x: x + 28, y: y + 4}, svg, arm.label);
        x += entry(arm);
      });
    });
    if (!n) {
      node("text", {x: width / 2, y: top + CELL_H / 2, "text-anchor": "middle", fill: "#555"},
           svg, "No finite, non-zero gradient in this variant");
    }
    variant.panels.forEach(function (p, i) {
      var col = i % cols, row = Math.floor(i / cols);
      panel(svg, p, arms, left + col * CELL_W, top + row * CELL_H, col === 0, i + cols >= n);
    });
    return svg;
  };

  var picker = document.getElementById("picker");
  var dataNode = document.getElementById("profile-data");
  if (picker && dataNode) {
    var data = JSON.parse(dataNode.textContent);
    var selects = picker.querySelectorAll("select");
    var still = document.getElementById("profile-static");
    var drawn = document.getElementById("profile-drawn");
    var missing = document.getElementById("variant-missing");
    var show = function () {
      var key = Array.prototype.map.call(selects, function (s) { return s.value; }).join("|");
      var variant = Object.prototype.hasOwnProperty.call(data.variants, key) ?
        data.variants[key] : null;
      var base = key === still.getAttribute("data-variant");
      still.hidden = !base;
      drawn.hidden = base || !variant;
      missing.hidden = Boolean(variant);
      if (variant && !base) {
        var box = drawn.querySelector(".drawn");
        while (box.firstChild) { box.removeChild(box.firstChild); }
        box.appendChild(drawProfile(variant, data.arms));
        drawn.setAttribute("data-variant", key);
        drawn.querySelector(".variant-label").textContent = variant.label;
      }
    };
    each(selects, function (s) { s.addEventListener("change", show); });
    picker.hidden = false;
    show();
  }

  // A number's six digits on hover: from its sort key, so that the page
  // carries them once.
  document.addEventListener("mouseover", function (event) {
    var cell = event.target.closest ? event.target.closest("td.num[data-v]") : null;
    if (cell && !cell.title) { cell.title = cell.getAttribute("data-v"); }
  });

  var value = function (cell) {
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent.trim(); }
    var x = parseFloat(v);
    return isNaN(x) ? v.toLowerCase() : x;
  };
  var compare = function (x, y) {
    if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
    return x < y ? -1 : (x > y ? 1 : 0);
  };
  each(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, column) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        each(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var c = compare(value(a.cells[column]), value(b.cells[column]));
          return up ? c : -c;
        });
        each(rows, function (row) { body.appendChild(row); });
      });
    });
  });
}());
