/* shortcutbench report: the variant picker and sortable tables.  Inline,
   loads nothing; without it the page shows the headline's variant. */
(function () {
  "use strict";
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };

  var picker = document.getElementById("picker");
  if (picker) {
    var selects = picker.querySelectorAll("select");
    var panels = document.querySelectorAll("[data-variant]");
    var missing = document.getElementById("variant-missing");
    var show = function () {
      var key = Array.prototype.map.call(selects, function (s) { return s.value; }).join("|");
      var found = false;
      each(panels, function (panel) {
        var on = panel.getAttribute("data-variant") === key;
        panel.hidden = !on;
        found = found || on;
      });
      missing.hidden = found;
    };
    each(selects, function (s) { s.addEventListener("change", show); });
    picker.hidden = false;
    show();
  }

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
