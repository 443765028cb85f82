"""suggest: the pool (or folders given) ranked by the trained head; the CSV, the page, the skips and the errors."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from test_similar import smooth_image

from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.heads.checkpoint import load_head
from headstart.heads.suggest.strategies import margin_uncertainty

FAST = ("--device", "cpu", "--workers", "0", "--batch-size", "8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two classes of smooth images in train/val, an unlabeled pool of 8, extracted (random-init, 32-pixel inputs)
    and a head trained on them."""
    root = tmp_path_factory.mktemp("suggest")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
        seed = 0
        for split, count in (("train", 6), ("val", 3)):
            for name in ("ants", "bees"):
                for index in range(count):
                    seed += 1
                    path = root / "data" / split / name / f"{name}_{index}.jpg"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    smooth_image(seed).save(path, quality=95)
        (root / "data" / "pool").mkdir()
        for index in range(8):
            smooth_image(500 + index).save(root / "data" / "pool" / f"u{index}.jpg", quality=95)
        cache = root / "cache"
        data = root / "data"
        assert_ok(run("extract", "--data", data, "--pool", data / "pool", "--cache", cache, "--weights", "none", *FAST))
        assert_ok(run("train-head", "--cache", cache, "--epochs", "3", "-q"))
        yield root


def _probabilities(cache, features):
    import torch

    head = load_head(cache / "head.pt")
    with torch.inference_mode():
        return torch.softmax(head.head(torch.from_numpy(features)), dim=1).numpy(), head.classes


def test_the_pool_is_ranked_by_margin_and_written_as_csv_and_page(trained, tmp_path):
    out, page = tmp_path / "s.csv", tmp_path / "s.html"
    result = run("suggest", "-n", 3, "--cache", trained / "cache", "--out", out, "--html", page)
    assert_ok(result)
    rows = read_csv(out)
    assert list(rows[0]) == ["rank", "path", "sha256", "score", "suggested", "confidence", "why"]
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    assert all(row["path"].startswith("pool/u") for row in rows)
    for row in rows:
        data = (trained / "data" / row["path"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["suggested"] in ("ants", "bees") and row["why"].startswith("the head is torn between")
    # the three highest margin scores of the eight pool rows, recomputed from the head and the cached features
    from headstart.features.store import FeatureStore

    with FeatureStore(trained / "cache" / "features.h5") as store:
        pool = store.pool()
    probabilities, classes = _probabilities(trained / "cache", pool.features)
    expected = np.sort(margin_uncertainty(probabilities))[::-1][:3]
    assert np.allclose([float(row["score"]) for row in rows], expected, atol=1e-5)
    first = pool.paths.index(rows[0]["path"])
    assert rows[0]["suggested"] == classes[int(np.argmax(probabilities[first]))]
    assert "8 images of the pool ranked by margin: 3 suggested" in result.output
    text = page.read_text()
    assert text.count('<img src="data:image/jpeg;base64,') == 3
    assert "without pretrained weights" in text and "1 minus the gap" in text
    seen = _in_chromium(page)
    assert seen["errors"] == [] and "without pretrained weights" in seen["warning"]  # where it applies, in view
    assert seen["links"] == [(trained / "data" / row["path"]).absolute().as_uri() for row in rows]  # full size
    assert "1 minus the gap" in seen["note"] and seen["used"] > 0.9  # the score explained above it; the full width


def _in_chromium(page) -> dict:
    """The suggest page in Chromium: its errors, warning, thumbnails' links, table note and width used."""
    from playwright.sync_api import sync_playwright
    from test_audit import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the pages are tested in a real browser)")
    seen: dict = {"errors": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1600, "height": 900})
            tab.on("pageerror", lambda error: seen["errors"].append(str(error)))
            tab.goto(page.resolve().as_uri(), wait_until="load")
            seen["warning"] = tab.inner_text("p.warn")
            seen["links"] = tab.evaluate("Array.from(document.querySelectorAll('figure a'), a => a.href)")
            seen["note"] = tab.inner_text("h2 + p")
            seen["used"] = tab.evaluate("document.querySelector('table.hs').getBoundingClientRect().width / innerWidth")
        finally:
            browser.close()
    return seen


def test_diversity_never_suggests_the_same_image_twice_and_random_follows_its_seed(trained, tmp_path):
    out = tmp_path / "d.csv"
    assert_ok(run("suggest", "-n", 8, "--strategy", "diversity", "--cache", trained / "cache", "--out", out))
    assert len({row["path"] for row in read_csv(out)}) == 8
    orders = []
    for seed in (1, 1, 2):
        assert_ok(
            run("suggest", "-n", 8, "--strategy", "random", "--seed", seed, "--cache", trained / "cache", "--out", out)
        )
        orders.append([row["path"] for row in read_csv(out)])
    assert orders[0] == orders[1] != orders[2] and sorted(orders[0]) == sorted(orders[2])


def test_folders_are_run_through_the_backbone_and_labelled_copies_skipped(trained, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for index in range(3):
        smooth_image(900 + index).save(folder / f"n{index}.jpg", quality=90)
    shutil.copy(trained / "data" / "train" / "ants" / "ants_0.jpg", folder / "copy.jpg")
    out = tmp_path / "f.csv"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
        result = run("suggest", folder, "-n", 10, "--cache", trained / "cache", "--out", out, *FAST)
    assert_ok(result)
    rows = read_csv(out)
    assert sorted(row["path"] for row in rows) == sorted(str(folder / f"n{index}.jpg") for index in range(3))
    assert "skipped" in result.output and "already labelled (train: train/ants/ants_0.jpg)" in result.output


def test_no_pool_no_head_and_an_output_in_the_cache_are_one_line_errors(trained, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(run("suggest", "--cache", empty, "--out", tmp_path / "x.csv"), "head.pt")
    cache = trained / "cache"
    assert_error(run("suggest", "--cache", cache, "--out", cache / "head.pt"), "--out", "head.pt")
    assert (cache / "head.pt").is_file()
