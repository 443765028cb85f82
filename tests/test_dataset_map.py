"""The dataset map: the stratified sample, the coordinates (deterministic, known clusters kept apart), and the map in
Chromium: the points drawn, the colouring switched, a clicked point's thumbnail and path, no request made."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from test_audit import CHROMIUM, CHROMIUM_ARGS

from headstart.heads.audit.rows import CachedRows
from headstart.heads.pages.html_report import render_page
from headstart.heads.pages.map import dataset_map, map_coordinates, stratified_sample
from headstart.heads.pages.map_view import NOT_FLAGGED, TAB10, map_block, map_points
from headstart.heads.pages.page import Thumbnails


def _clusters(rows: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated clusters in 64 dimensions, and their classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % classes
    centres = rng.normal(0, 1, (classes, 64)) * 8
    return (centres[labels] + rng.normal(0, 1, (rows, 64))).astype(np.float32), labels


def test_the_sample_keeps_each_stratum_in_proportion_and_every_small_one():
    strata = np.array(["train/0"] * 700 + ["train/1"] * 280 + ["val/0"] * 18 + ["val/1"] * 2)
    chosen = stratified_sample(strata, 100, seed=3)
    assert len(chosen) == 100 and len(set(chosen)) == 100 and list(chosen) == sorted(chosen)
    kept = {key: int((strata[chosen] == key).sum()) for key in np.unique(strata)}
    assert kept == {"train/0": 70, "train/1": 28, "val/0": 1, "val/1": 1}  # 0.2 -> one row; 1.8 -> floor 1
    assert np.array_equal(chosen, stratified_sample(strata, 100, seed=3))
    assert not np.array_equal(chosen, stratified_sample(strata, 100, seed=4))
    assert np.array_equal(stratified_sample(strata, 5000, seed=3), np.arange(1000))  # under the limit: every row


def test_coordinates_are_deterministic_and_keep_known_clusters_apart():
    features, labels = _clusters(60)
    xy, method = map_coordinates(features, seed=1)
    assert "t-SNE" in method and xy.shape == (60, 2) and xy.min() >= 0 and xy.max() <= 1
    assert np.array_equal(xy, map_coordinates(features, seed=1)[0])
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    nearest = distance.argsort(axis=1)[:, :5]
    assert (labels[nearest] == labels[:, None]).mean() == 1.0  # every point's 5 nearest on the map share its class
    few, how = map_coordinates(features[:5], seed=1)
    assert "principal components" in how and few.shape == (5, 2)


def _rows(tmp_path: Path, count: int) -> CachedRows:
    features, labels = _clusters(count, classes=2, seed=2)
    data = tmp_path / "data"
    split = np.array(["train"] * (count - 6) + ["val"] * 6)
    paths = [f"{s}/{'ab'[k]}/img_{i}.png" for i, (s, k) in enumerate(zip(split, labels))]
    paths[0] = "train/a/<b>x</b>.png"  # shown as text
    for i, path in enumerate(paths):
        make_image(data / path, seed=i)
    return CachedRows(features, labels, split, paths, ["0" * 64] * count, ["ants", "bees"], data, None)  # type: ignore[arg-type]


def _map_page(tmp_path: Path) -> tuple[Path, dict, str, int]:
    """A report with the map alone: 24 of 30 rows, the most isolated point a label issue."""
    rows = _rows(tmp_path, 30)
    strata = np.char.add(rows.split, rows.labels.astype(str))
    placed = dataset_map(rows.features, strata, limit=24, seed=0)
    distance = np.linalg.norm(placed.xy[:, None] - placed.xy[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    chosen = int(distance.min(axis=1).argmax())
    thumbs = Thumbnails(rows.data_root, tmp_path / "cache", 48)
    points = map_points(placed, rows, issues={int(placed.rows[chosen])}, unknown=set(), thumb=thumbs, limit=10)
    page = tmp_path / "report.html"
    page.write_text(render_page("t", [], [], [map_block(placed, points)], interactive=True), encoding="utf-8")
    return page, points, placed.rule, chosen


def _pixel(page, x: float, y: float) -> str:
    rgba = page.evaluate(
        f"Array.from(document.getElementById('hs-map').getContext('2d').getImageData({int(x)}, {int(y)}, 1, 1).data)"
    )
    return "#" + "".join(f"{value:02x}" for value in rgba[:3])


def test_the_map_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the report is tested in a real browser)")
    from playwright.sync_api import sync_playwright

    page_path, points, rule, chosen = _map_page(tmp_path)
    assert len(points["x"]) == 24 and sum(n >= 0 for n in points["thumb"]) == 10
    assert points["thumb"][chosen] == 0 and points["codes"]["issue"][chosen] == 1
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            canvas = page.locator("#hs-map")
            assert canvas.get_attribute("data-drawn") == "24"
            width, height = (int(canvas.get_attribute(name)) for name in ("width", "height"))
            x = 12 + points["x"][chosen] * (width - 24)
            y = 12 + (1 - points["y"][chosen]) * (height - 24)
            label_colour = TAB10[points["codes"]["label"][chosen]]
            assert _pixel(page, x, y) == label_colour
            assert "ants (" in page.inner_text("#hs-map-legend") and rule in page.inner_text("#hs-map-rule")
            page.select_option("#hs-map-colour", "issue")
            assert canvas.get_attribute("data-colouring") == "issue"
            assert _pixel(page, x, y) == "#d62728"  # the label issue, red; the rest grey
            legend = "Array.from(document.querySelectorAll('#hs-map-legend li'), item => item.textContent)"
            assert page.evaluate(legend) == ["no label issue (23)", "label issue (1)"]
            page.select_option("#hs-map-colour", "unknown")
            assert _pixel(page, x, y) == NOT_FLAGGED
            canvas.click(position={"x": x, "y": y})
            shown = page.evaluate(
                "['hs-map-thumb', 'hs-map-path', 'hs-map-what'].map(id => document.getElementById(id))"
                ".map(e => e.src || e.textContent)"
            )
            assert canvas.get_attribute("data-shown") == str(chosen)
        finally:
            browser.close()
    assert errors == [] and requests == [page_path.resolve().as_uri()]  # offline: the page itself, nothing else
    assert shown[0] == "data:image/jpeg;base64," + points["thumbs"][0]
    assert shown[1] == points["path"][chosen] and "label issue" in shown[2]
    jpeg = base64.b64decode(points["thumbs"][0])
    assert jpeg[:2] == b"\xff\xd8"
    assert "<b>x</b>" not in page_path.read_text(encoding="utf-8")  # a path is data, never markup
