"""The interactive report in Chromium: its tables sort and filter, and its button saves the expected decisions.csv,
offline, under the page's own hash-based CSP."""

from __future__ import annotations

import csv
import io

import pytest
from conftest import make_image
from test_audit import CHROMIUM, CHROMIUM_ARGS

from headstart.features.decisions.formats import read_decisions
from headstart.heads.pages.html_report import Choice, Figure, Section, render_page
from headstart.heads.pages.page import Thumbnails

SHA = {"a.png": "a" * 64, "=b.png": "b" * 64, "c,d.png": "c" * 64}


def _png(tmp_path) -> bytes:
    from PIL import Image

    Image.new("RGB", (40, 30), (0, 90, 200)).save(tmp_path / "figure.png")
    return (tmp_path / "figure.png").read_bytes()


def _page(tmp_path):
    data = tmp_path / "data"
    for seed, name in enumerate(SHA):
        make_image(data / name, seed=seed)
    thumbs = Thumbnails(data, tmp_path / "cache", 64)
    rows = [
        [
            thumbs(name),
            score,
            Choice(name, SHA[name], [("relabel to bees", "relabel", "bees"), ("ignore", "ignore", "")]),
        ]
        for name, score in (("a.png", "0.500"), ("=b.png", "0.900"), ("c,d.png", "10.000"))
    ]
    section = Section("Label issues", ["image", "score", "decision"], rows, note="Score: how doubtful.")
    figure = Figure("Learning curve", _png(tmp_path))
    page = tmp_path / "report.html"
    page.write_text(render_page("t", [], [], [section, figure], interactive=True), encoding="utf-8")
    return page, data


def test_sorting_filtering_and_the_decisions_button_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the report is tested in a real browser)")
    from playwright.sync_api import sync_playwright

    page_path, data = _page(tmp_path)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            scores = "Array.from(document.querySelectorAll('tbody tr'), r => r.cells[1].textContent)"
            assert page.evaluate(scores) == ["0.500", "0.900", "10.000"]
            page.click("th:nth-child(2)")
            assert page.evaluate(scores) == ["0.500", "0.900", "10.000"]  # ascending, as numbers: 10 after 0.9
            page.click("th:nth-child(2)")
            assert page.evaluate(scores) == ["10.000", "0.900", "0.500"]
            page.fill("input.hs-filter", "c,d")
            shown = "Array.from(document.querySelectorAll('tbody tr'), r => r.hidden ? '' : r.cells[1].textContent)"
            assert page.evaluate(shown) == ["10.000", "", ""]
            page.fill("input.hs-filter", "")
            selects = page.query_selector_all("select.hs-choice")  # rows now 10.000 (c,d), 0.900 (=b), 0.500 (a)
            selects[0].select_option(label="relabel to bees")
            selects[1].select_option(label="ignore")  # =b.png; a.png keeps "no decision": no row
            with page.expect_download() as waiting:
                page.click("#hs-save")
            download = waiting.value
            assert download.suggested_filename == "decisions.csv"
            saved = tmp_path / "decisions.csv"
            download.save_as(saved)
            assert "2 decisions saved" in page.inner_text("#hs-saved")
            href = page.get_attribute("figure a", "href")
            contents = page.evaluate("Array.from(document.querySelectorAll('nav.toc a'), a => a.textContent)")
            page.click("nav.toc a >> text=Learning curve")
            target = page.evaluate("location.hash + ' ' + document.querySelector(location.hash).textContent")
            page.set_viewport_size({"width": 1600, "height": 900})
            used = page.evaluate("document.querySelector('table.hs').getBoundingClientRect().width / innerWidth")
        finally:
            browser.close()
    assert errors == []
    assert contents == ["Label issues", "Learning curve"] and target == "#hs-part-2 Learning curve"  # the contents
    assert used > 0.9  # the table takes the window's width, however wide the window
    assert href == (data / "c,d.png").absolute().as_uri()  # the full-size image, one click away
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert rows == [
        ["path", "action", "argument", "sha256", "source"],
        ["c,d.png", "relabel", "bees", "c" * 64, "headstart report.html"],
        ["./=b.png", "ignore", "", "b" * 64, "headstart report.html"],
    ]
    decisions, invalid = read_decisions(saved)  # what apply reads
    assert invalid == [] and [(d.path, d.action) for d in decisions] == [("c,d.png", "relabel"), ("=b.png", "ignore")]
