"""--backbone on every command that reads a cache's features (audit, sweep, evaluate, info, export): on a cache
holding two backbones' features, each refuses to guess, reads the backbone named, and refuses a head of another."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_dataset

from headstart.features.backbones.registry import DEFAULT_BACKBONE, ENTRIES
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.heads.checkpoint import load_head

SMALL = "mobilenet_v3_large"  # 1280-d features, beside resnet18's 512
SEVERAL = "holds the features of several backbones"
GRID = "[sgd]\nlr = [0.001, 0.01]\nepochs = 2\nbatch_size = 4\n"


def _small_inputs(patch: pytest.MonkeyPatch) -> None:
    """32-pixel inputs for both backbones: the same code paths at a fraction of the forward's cost."""
    patch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
    patch.setitem(ENTRIES, SMALL, dataclasses.replace(ENTRIES[SMALL], resize=36, crop=32))


@pytest.fixture
def small_inputs(monkeypatch):
    _small_inputs(monkeypatch)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """data/, and cache/ holding resnet18's and mobilenet_v3_large's features and a head on mobilenet_v3_large's."""
    work = tmp_path_factory.mktemp("two-backbones")
    data, cache = make_dataset(work / "data"), work / "cache"
    with pytest.MonkeyPatch.context() as patch:
        _small_inputs(patch)
        for backbone in (DEFAULT_BACKBONE, SMALL):
            extract = ("extract", "--data", data, "--cache", cache, "--backbone", backbone, "--weights", "none")
            assert_ok(run(*extract, "--workers", 0, "--quiet"))
        assert_ok(run("train-head", "--cache", cache, "--epochs", 2, "--backbone", SMALL, "--quiet"))
    (work / "grid.toml").write_text(GRID)
    return work


@pytest.fixture
def work(built, tmp_path, small_inputs) -> Path:
    """A copy of the built folder each test may change."""
    shutil.copytree(built, tmp_path / "work")
    return tmp_path / "work"


def test_info_describes_the_backbone_named_or_refuses_one_it_lacks(work):
    cache = work / "cache"
    every = json.loads(run("info", "--cache", cache, "--json").stdout)
    assert sorted(every["backbones"]) == sorted([DEFAULT_BACKBONE, SMALL])
    result = run("info", "--cache", cache, "--json", "--backbone", SMALL)
    assert_ok(result)
    one = json.loads(result.stdout)
    assert list(one["backbones"]) == [SMALL] and one["features"]["file"] == f"features-{SMALL}.h5"
    assert one["features"]["splits"]["train"]["rows"] == 8
    assert_error(
        run("info", "--cache", cache, "--backbone", "resnet34"),
        "holds no features of resnet34",
        "extract --backbone resnet34",
    )


def test_audit_reads_the_backbone_named(work):
    cache = work / "cache"
    assert_error(run("audit", "--cache", cache), SEVERAL, "--backbone")
    assert not (cache / "audit").exists()
    audit = ("audit", "--cache", cache, "--backbone", DEFAULT_BACKBONE, "--head", "sgd", "--folds", 2)
    assert_ok(run(*audit, "--curve-seeds", 1, "--quiet"))
    record = json.loads((cache / "audit" / "audit.json").read_text())
    assert Path(record["features"]).name == "features.h5"


def test_sweep_trains_on_the_backbone_named(work):
    cache, grid = work / "cache", work / "grid.toml"
    before = (cache / "head.pt").read_bytes()
    assert_error(run("sweep", "--cache", cache, "--grid", grid, "--folds", 2), SEVERAL)
    assert (cache / "head.pt").read_bytes() == before
    assert_ok(run("sweep", "--cache", cache, "--grid", grid, "--folds", 2, "--backbone", DEFAULT_BACKBONE, "-q"))
    head = load_head(cache / "head.pt")
    assert head.backbone == DEFAULT_BACKBONE and head.head.in_features == 512
    assert len((cache / "sweep.csv").read_text().splitlines()) == 1 + 2


def test_evaluate_refuses_a_head_of_another_backbone(work):
    cache, val = work / "cache", work / "data" / "val"
    out = work / "wrong.csv"
    assert_error(
        run("evaluate", val, "--cache", cache, "--out", out, "--backbone", DEFAULT_BACKBONE, "--workers", 0),
        f"was trained on {SMALL}'s features, not {DEFAULT_BACKBONE}'s",
        f"train-head --backbone {DEFAULT_BACKBONE}",
    )
    assert not out.exists()
    result = run("evaluate", val, "--cache", cache, "--out", out, "--backbone", SMALL, "--workers", 0)
    assert_ok(result)
    assert "4 images, accuracy" in result.output and out.is_file()


def test_evaluate_page_takes_class_examples_from_the_heads_backbone(work):
    """A cache holding only mobilenet_v3_large's features: the page's class examples come from them."""
    cache, val = work / "cache", work / "data" / "val"
    (cache / "features.h5").unlink()
    page = work / "page.html"
    from headstart.heads.pages import page as pages

    seen = []
    real = pages.class_exemplars

    def spy(rows, *args):
        seen.append(rows.features.shape[1])
        return real(rows, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pages, "class_exemplars", spy)
        assert_ok(run("evaluate", val, "--cache", cache, "--out", work / "w.csv", "--html", page, "--workers", 0))
    assert seen == [1280] and page.is_file()


def test_export_refuses_a_head_of_another_backbone(work):
    cache, target = work / "cache", work / "model.pth"
    assert_error(
        run("export", "--cache", cache, "--out", target, "--backbone", DEFAULT_BACKBONE),
        f"was trained on {SMALL}'s features",
    )
    assert not target.exists()
    export = ("export", "--cache", cache, "--out", target, "--format", "torchvision", "--backbone", SMALL)
    assert_ok(run(*export, "--sample", 2, "-q"))
    assert json.loads(target.with_name("model.pth.json").read_text())["backbone"] == SMALL


def test_predict_refuses_a_head_of_another_backbone(work):
    import headstart
    from headstart.features.files.cachedir import BackboneChoiceError

    cache, val = work / "cache", work / "data" / "val"
    out = work / "predictions.csv"
    assert_error(
        run("predict", val, "--cache", cache, "--out", out, "--backbone", DEFAULT_BACKBONE, "--workers", 0),
        f"was trained on {SMALL}'s features, not {DEFAULT_BACKBONE}'s",
        f"train-head --backbone {DEFAULT_BACKBONE}",
    )
    assert not out.exists()
    assert_error(run("predict", val, "--cache", cache, "--out", out, "--backbone", "mobilenet"), "did you mean")
    assert_ok(run("predict", val, "--cache", cache, "--out", out, "--backbone", SMALL, "--workers", 0, "-q"))
    assert len(out.read_text().splitlines()) == 1 + 4
    with pytest.raises(BackboneChoiceError, match=f"not {DEFAULT_BACKBONE}'s"):
        headstart.Classifier.load(cache, backbone=DEFAULT_BACKBONE, device="cpu")
    classifier = headstart.Classifier.load(cache, backbone=SMALL, device="cpu")
    assert len(classifier.predict(val)) == 4
