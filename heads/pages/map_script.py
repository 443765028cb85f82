"""The dataset map's share of the reports' one script: draw the points on the <canvas>, colour them, show one.

It is appended to heads/pages/interactive.py's SCRIPT, so the page still carries one script allowed by one hash.
It reads the points from the canvas's data-points attribute (heads/pages/map_view.py), makes no request (a
thumbnail is a data: URI already in the page), and does nothing on a page without a map. After each drawing the
canvas's data-drawn says how many points were drawn and data-colouring by what (what the browser test reads).
"""

from __future__ import annotations

MAP_SCRIPT = """
(function () {
  "use strict";
  var canvas = document.getElementById("hs-map");
  if (!canvas) { return; }
  var data = JSON.parse(canvas.dataset.points);
  var menu = document.getElementById("hs-map-colour");
  var legend = document.getElementById("hs-map-legend");
  var pathText = document.getElementById("hs-map-path");
  var whatText = document.getElementById("hs-map-what");
  var PAD = 12, RADIUS = 3, REACH = 8;
  var count = data.x.length;
  var picture = null;
  function px(i) { return PAD + data.x[i] * (canvas.width - 2 * PAD); }
  function py(i) { return PAD + (1 - data.y[i]) * (canvas.height - 2 * PAD); }
  function draw() {
    var by = menu.value, codes = data.codes[by], colours = data.colours[by], names = data.names[by];
    var context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    var order = [], tally = names.map(function () { return 0; });
    for (var i = 0; i < count; i++) { order.push(i); tally[codes[i]] += 1; }
    order.sort(function (a, b) { return codes[a] - codes[b] || a - b; });
    order.forEach(function (i) {
      context.fillStyle = colours[codes[i]];
      context.beginPath();
      context.arc(px(i), py(i), RADIUS, 0, 2 * Math.PI);
      context.fill();
    });
    canvas.dataset.drawn = String(order.length);
    canvas.dataset.colouring = by;
    legend.textContent = "";
    names.forEach(function (name, k) {
      var item = document.createElement("li"), swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colours[k];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name + " (" + tally[k] + ")"));
      legend.appendChild(item);
    });
  }
  function nearest(event) {
    var box = canvas.getBoundingClientRect();
    var x = (event.clientX - box.left) * canvas.width / box.width;
    var y = (event.clientY - box.top) * canvas.height / box.height;
    var best = -1, bestDistance = REACH * REACH;
    for (var i = 0; i < count; i++) {
      var distance = (px(i) - x) * (px(i) - x) + (py(i) - y) * (py(i) - y);
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    }
    return best;
  }
  function describe(i) {
    return ["split", "label", "issue", "unknown"].map(function (key) {
      return data.names[key][data.codes[key][i]];
    }).join(", ");
  }
  function show(event) {
    var i = nearest(event);
    if (i < 0) { return; }
    var number = data.thumb[i];
    if (number >= 0) {
      if (!picture) {
        picture = document.createElement("img");
        picture.id = "hs-map-thumb";
        pathText.parentNode.insertBefore(picture, pathText);
      }
      picture.src = "data:image/jpeg;base64," + data.thumbs[number];
      picture.alt = data.path[i];
    }
    if (picture) { picture.hidden = number < 0; }
    pathText.textContent = data.path[i];
    pathText.className = "";
    whatText.textContent = describe(i) + (number < 0 ? " (no thumbnail in this page)" : "");
    canvas.dataset.shown = String(i);
  }
  menu.addEventListener("change", draw);
  canvas.addEventListener("mousemove", show);
  canvas.addEventListener("click", show);
  draw();
})();
"""
