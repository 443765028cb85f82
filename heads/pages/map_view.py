"""The dataset map's part of report.html: a <canvas>, the colouring menu, the legend, and the points as data.

The points travel in the canvas's `data-points` attribute as JSON (escaped like every other attribute): x, y in
[0, 1], path, and per colouring (label, split, label issue, unknown) each point's category, the categories' names
and colours. The report's one script (heads/pages/map_script.py, part of heads/pages/interactive.py's SCRIPT)
draws them; hovering or clicking a point shows its thumbnail and path. Thumbnails: at most MAP_THUMBNAILS, the
label issues and outliers first, then the sample's seeded order; a point without one shows its path alone.
"""

from __future__ import annotations

import base64
import colorsys
import html
import json
from collections.abc import Callable

import numpy as np

from headstart.heads.pages.html_report import Block, Thumb
from headstart.heads.pages.map import DatasetMap

MAP_THUMBNAILS = 300
MAP_THUMB_SIZE = 64
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
NOT_FLAGGED = "#c7c7c7"
COLOURINGS = {"label": "label", "split": "split", "issue": "label issue", "unknown": "unknown"}


def palette(count: int) -> list[str]:
    """`count` distinct colours: matplotlib's tab10, then hues around the circle."""
    if count <= len(TAB10):
        return TAB10[:count]
    hues = [colorsys.hls_to_rgb((k * 0.618034) % 1, 0.5, 0.65) for k in range(count)]
    return ["#" + "".join(f"{round(c * 255):02x}" for c in rgb) for rgb in hues]


def _colourings(rows, placed: np.ndarray, issues: set[int], unknown: set[int]) -> dict:
    splits = [s for s in ("train", "val", "test") if s in set(rows.split)] + sorted(
        set(rows.split) - {"train", "val", "test"}
    )
    split_code = {name: k for k, name in enumerate(splits)}
    return {
        "label": (list(rows.classes), palette(len(rows.classes)), [int(rows.labels[r]) for r in placed]),
        "split": (splits, palette(len(splits)), [split_code[rows.split[r]] for r in placed]),
        "issue": (["no label issue", "label issue"], [NOT_FLAGGED, "#d62728"], [int(r in issues) for r in placed]),
        "unknown": (
            ["like the train classes", "unknown (outlier)"],
            [NOT_FLAGGED, "#9467bd"],
            [int(r in unknown) for r in placed],
        ),
    }


def _thumbnails(
    rows, placed: np.ndarray, flagged: set[int], thumb: Callable[[str, str], Thumb], limit: int
) -> tuple[list[int], list[str]]:
    """Each point's thumbnail number (-1: none) and the thumbnails, base64 JPEG: flagged rows first."""
    order = sorted(range(len(placed)), key=lambda i: (int(placed[i]) not in flagged, i))[:limit]
    numbers: list[int] = [-1] * len(placed)
    images: list[str] = []
    for i in order:
        row = int(placed[i])
        made = thumb(rows.paths[row], rows.sha256[row])
        if made.jpeg is not None:
            numbers[i] = len(images)
            images.append(base64.b64encode(made.jpeg).decode("ascii"))
    return numbers, images


def map_points(
    dataset_map: DatasetMap,
    rows,
    issues: set[int],
    unknown: set[int],
    thumb: Callable[[str, str], Thumb],
    limit: int = MAP_THUMBNAILS,
) -> dict:
    """The points as the script reads them (plain lists): positions, paths, colourings and thumbnails."""
    placed = dataset_map.rows
    colourings = _colourings(rows, placed, issues, unknown)
    numbers, images = _thumbnails(rows, placed, issues | unknown, thumb, limit)
    return {
        "x": [float(v) for v in dataset_map.xy[:, 0]],
        "y": [float(v) for v in dataset_map.xy[:, 1]],
        "path": [rows.paths[int(r)] for r in placed],
        "names": {key: names for key, (names, _, _) in colourings.items()},
        "colours": {key: colours for key, (_, colours, _) in colourings.items()},
        "codes": {key: codes for key, (_, _, codes) in colourings.items()},
        "thumb": numbers,
        "thumbs": images,
    }


def map_block(dataset_map: DatasetMap, points: dict) -> Block:
    """The map's section of the page: the rule, the menu, the canvas with its points, the legend, the chosen point."""
    text = html.escape
    options = "".join(f'<option value="{key}">{text(shown)}</option>' for key, shown in COLOURINGS.items())
    data = text(json.dumps(points, separators=(",", ":")), quote=True)
    with_thumbs = sum(number >= 0 for number in points["thumb"])
    body = (
        f'<p id="hs-map-rule">{text(dataset_map.rule)} Placed by {text(dataset_map.method)}: nearby points have '
        "similar features; the distances between far-apart groups mean little. "
        f"{with_thumbs:,} points carry a thumbnail (label issues and outliers first); hover or click a point.</p>"
        '<p><label>Colour by <select id="hs-map-colour">' + options + "</select></label></p>"
        '<div class="hs-map"><canvas id="hs-map" width="720" height="480" data-points="' + data + '"></canvas>'
        '<div id="hs-map-pick"><p id="hs-map-path" class="more">hover or click a point</p>'
        '<p id="hs-map-what"></p></div></div><ul id="hs-map-legend"></ul>'
    )
    return Block("Map of the dataset", body)
