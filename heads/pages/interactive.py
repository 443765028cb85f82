"""The reports' one script: sortable and filterable tables, the button that saves decisions.csv, the dataset map.

The page's Content-Security-Policy allows this script alone, by its sha256 (`script-src 'sha256-...'`), so nothing
else can run, not even a script planted in a file name; it makes no request: decisions.csv is built in the page and
saved through a Blob download, offline. Its rows follow features/decisions/formats.py (format 1) and the one CSV
writer's rule (a path starting with = + - @ gets ./, any other such cell a leading apostrophe).
"""

from __future__ import annotations

import base64
import hashlib

from headstart.heads.pages.map_script import MAP_SCRIPT

SOURCE = "headstart report.html"

SCRIPT = """
(function () {
  "use strict";
  var FORMULA = /^[=+\\-@\\t\\r]/;
  function sortKey(row, column) {
    var cell = row.cells[column];
    return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  }
  function compare(x, y) {
    var nx = Number(x), ny = Number(y);
    if (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) { return nx - ny; }
    return x.localeCompare(y);
  }
  document.querySelectorAll("table.hs").forEach(function (table) {
    var body = table.tBodies[0];
    var filter = document.createElement("input");
    filter.type = "search";
    filter.className = "hs-filter";
    filter.placeholder = "filter these rows";
    table.parentNode.insertBefore(filter, table);
    filter.addEventListener("input", function () {
      var needle = filter.value.toLowerCase();
      Array.prototype.forEach.call(body.rows, function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.title = "sort by " + th.textContent;
      th.addEventListener("click", function () {
        var ascending = th.dataset.order !== "asc";
        th.dataset.order = ascending ? "asc" : "desc";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var order = compare(sortKey(a, column), sortKey(b, column));
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  function cell(value, isPath) {
    var text = String(value);
    if (FORMULA.test(text)) {
      if (isPath) { text = "./" + text; } else if (isNaN(Number(text))) { text = "'" + text; }
    }
    return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  var save = document.getElementById("hs-save");
  if (!save) { return; }
  save.addEventListener("click", function () {
    var lines = ["path,action,argument,sha256,source"];
    document.querySelectorAll("select.hs-choice").forEach(function (select) {
      var option = select.options[select.selectedIndex];
      if (!option || option.value === "") { return; }
      var action = option.dataset.action;
      lines.push([cell(select.dataset.path, true), cell(action, false),
        cell(option.dataset.argument, action === "duplicate-of"), cell(select.dataset.sha256, false),
        cell(save.dataset.source, false)].join(","));
    });
    var blob = new Blob([lines.join("\\r\\n") + "\\r\\n"], {type: "text/csv"});
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "decisions.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    document.getElementById("hs-saved").textContent = (lines.length - 1) + " decisions saved as decisions.csv";
  });
})();
"""
SCRIPT += MAP_SCRIPT  # the dataset map's drawing (heads/pages/map_script.py): still one script, allowed by one hash


def script_hash(script: str = SCRIPT) -> str:
    """The CSP source that allows exactly this script: 'sha256-<base64 of its digest>'."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
