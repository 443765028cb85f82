"""features/backbones/: every registry entry matches torchvision's weights, computes its own pre-logit features, and
a cache keeps several backbones' features side by side; bad names and foreign weights files are one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_error, assert_ok, run
from conftest import make_dataset

from headstart.features import ExtractConfig, FeatureStore, extract_features
from headstart.features.backbone import WeightsError, load_backbone
from headstart.features.backbones.registry import DEFAULT_BACKBONE, ENTRIES, UnknownBackboneError, backbone_entry
from headstart.features.files.cachedir import FEATURES_FILE, features_file
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing

CPU = torch.device("cpu")
# Slow on a small CPU even at batch 2 (tens of GFLOPs each, or a long random init): run with -m long.
BIG = {"vit_b_16", "swin_t", "convnext_small", "resnet101", "wide_resnet50_2"}
SMALL_ENTRY = "mobilenet_v3_large"


def _entries():
    return [pytest.param(name, marks=pytest.mark.long) if name in BIG else name for name in ENTRIES]


@pytest.mark.parametrize("name", list(ENTRIES))
def test_entry_matches_its_torchvision_weights(name):
    """Preprocessing and GFLOPs as the weights declare them (no download: transforms() and meta are plain data)."""
    from torchvision.models import get_weight

    entry = ENTRIES[name]
    weights = get_weight(entry.weights)
    transforms = weights.transforms()
    assert (entry.resize, entry.crop) == (transforms.resize_size[0], transforms.crop_size[0])
    assert entry.interpolation.split(",")[0] == transforms.interpolation.value
    assert (list(entry.preprocessing.mean), list(entry.preprocessing.std)) == (transforms.mean, transforms.std)
    assert entry.gflops == weights.meta["_ops"]
    assert weights.meta["num_params"] > 0 and weights.url.endswith(".pth")


@pytest.mark.parametrize("name", _entries())
def test_width_and_fidelity_to_the_builders_own_forward(name):
    """fp32 features (folded where the entry folds) equal the input of the builder's final Linear in eval mode."""
    from torchvision.models import get_model

    entry = ENTRIES[name]
    side = 224 if name == "vit_b_16" else 32  # ViT takes its own image size only
    batch = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(5))
    ours = load_backbone("none", CPU, backbone=name).features(batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # what --weights none builds
        model = get_model(name, weights=None).eval()
    captured = []
    model.get_submodule(entry.head).register_forward_hook(lambda _, inputs, __: captured.append(inputs[0]))
    with torch.inference_mode():
        model(batch)
    assert ours.shape == (2, entry.width) == captured[0].shape
    scale = max(1.0, float(captured[0].abs().max()))  # random-init ResNets grow their activations to 1e4
    assert float((ours - captured[0]).abs().max()) <= 1e-4 * scale


def test_the_default_is_resnet18_with_its_recorded_preprocessing():
    entry = backbone_entry(DEFAULT_BACKBONE)
    assert (entry.name, entry.width, entry.weights) == ("resnet18", 512, "ResNet18_Weights.IMAGENET1K_V1")
    assert entry.preprocessing == PREPROCESSINGS["imagenet"]
    assert features_file(DEFAULT_BACKBONE) == FEATURES_FILE and features_file("resnet50") == "features-resnet50.h5"


def test_an_unknown_name_lists_the_choices_with_a_did_you_mean():
    with pytest.raises(UnknownBackboneError) as raised:
        backbone_entry("resnet05")
    message = str(raised.value)
    assert "did you mean resnet50?" in message and "vit_b_16" in message and "\n" not in message
    result = run("extract", "--backbone", "convnxt_tiny", "--weights", "none", "--data", "nowhere")
    assert_error(result, "did you mean convnext_tiny?")


@pytest.fixture
def mobilenet_file(tmp_path) -> Path:
    from torchvision.models import mobilenet_v3_large

    path = tmp_path / "mobilenet.pth"
    torch.save(mobilenet_v3_large(weights=None).state_dict(), path)
    return path


def test_a_weights_file_of_another_backbone_names_it_and_its_width(mobilenet_file):
    with pytest.raises(WeightsError) as raised:
        load_backbone(str(mobilenet_file), CPU, backbone="resnet18")
    message = str(raised.value)
    assert "is a mobilenet_v3_large state_dict (1280-d features), not a resnet18 one (512-d)" in message
    assert "--backbone mobilenet_v3_large" in message
    assert load_backbone(str(mobilenet_file), CPU, backbone=SMALL_ENTRY).features(torch.rand(1, 3, 32, 32)).shape == (
        1,
        1280,
    )


def test_extract_refuses_a_foreign_weights_file_before_reading_any_image(mobilenet_file, tmp_path, monkeypatch):
    import headstart.features.engines.batches as batches

    def no_reading(*_):
        raise AssertionError("an image was read")

    monkeypatch.setattr(batches, "read_file", no_reading)
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    result = run("extract", "--data", data, "--cache", cache, "--weights", mobilenet_file, "--workers", 0)
    assert_error(result, "is a mobilenet_v3_large state_dict (1280-d features), not a resnet18 one")
    assert not (cache / FEATURES_FILE).exists()


@pytest.fixture
def small_inputs(monkeypatch):
    """32-pixel inputs for resnet18 and the small entry: the same code paths at a fraction of the forward's cost."""
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
    monkeypatch.setitem(ENTRIES, SMALL_ENTRY, dataclasses.replace(ENTRIES[SMALL_ENTRY], resize=36, crop=32))


def _extract(data: Path, cache: Path, backbone: str):
    config = ExtractConfig(data=data, cache=cache, backbone=backbone, weights="none", device="cpu", workers=0)
    return extract_features(config)


def test_two_backbones_share_a_cache_and_switching_back_computes_nothing(small_inputs, tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    first = _extract(data, cache, DEFAULT_BACKBONE)
    second = _extract(data, cache, SMALL_ENTRY)
    assert [s.extracted for s in first.splits] == [s.extracted for s in second.splits] == [8, 4]
    for backbone in (DEFAULT_BACKBONE, SMALL_ENTRY):
        again = _extract(data, cache, backbone)
        assert [(s.extracted, s.reused) for s in again.splits] == [(0, 8), (0, 4)]
    with FeatureStore(cache / features_file(SMALL_ENTRY)) as store:
        assert store.header.backbone == SMALL_ENTRY and store.header.preprocessing.name == SMALL_ENTRY
        assert store.read("train").features.shape == (8, 1280)
    with FeatureStore(cache / FEATURES_FILE) as store:
        assert store.header.backbone == "resnet18" and store.read("train").features.shape == (8, 512)
    result = run("info", "--cache", cache, "--json")
    assert_ok(result)
    described = json.loads(result.stdout)
    assert sorted(described["backbones"]) == sorted([DEFAULT_BACKBONE, SMALL_ENTRY])
    assert described["backbones"][SMALL_ENTRY]["file"] == "features-mobilenet_v3_large.h5"


def test_train_predict_export_on_another_backbone(small_inputs, tmp_path):
    """train-head picks a backbone's features; predict and export rebuild that backbone from the head."""
    from headstart.heads.checkpoint import load_head
    from headstart.heads.export import ExportConfig, export_head

    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    _extract(data, cache, DEFAULT_BACKBONE)
    _extract(data, cache, SMALL_ENTRY)
    assert_error(run("train-head", "--cache", cache, "--epochs", 1), "holds the features of several backbones")
    assert not (cache / "head.pt").exists()
    assert_error(run("train-head", "--cache", cache, "--backbone", "mobilenet"), "did you mean mobilenet_v3_large?")
    assert_ok(run("train-head", "--cache", cache, "--epochs", 2, "--backbone", SMALL_ENTRY))
    head = load_head(cache / "head.pt")
    assert head.backbone == SMALL_ENTRY and head.head.in_features == 1280
    out = tmp_path / "predictions.csv"
    assert_ok(run("predict", data / "val", "--cache", cache, "--out", out, "--workers", 0))
    assert len(out.read_text().splitlines()) == 1 + 4
    for export_format in ("torchscript", "torchvision"):
        target = tmp_path / f"model.{export_format}"
        summary = export_head(ExportConfig(out=target, format=export_format, cache=cache))
        assert summary.difference < 1e-4 and target.is_file()
    assert json.loads((tmp_path / "model.torchvision.json").read_text())["backbone"] == SMALL_ENTRY


def test_the_backbones_command_lists_every_entry():
    result = run("backbones", "--json")
    assert_ok(result)
    listed = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(listed) == [*ENTRIES, "timm:MODEL"]
    assert listed["resnet50"]["width"] == 2048 and listed["resnet50"]["weights"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert listed["efficientnet_v2_s"]["input_size"] == 384 and listed["vit_b_16"]["gflops"] == 17.564
    assert all(isinstance(listed[name]["weights_cached"], bool) for name in ENTRIES)
    table = run("backbones")
    assert_ok(table)
    assert "swin_t" in table.output and "888" in table.output


def test_the_backbones_command_shows_preprocessing_and_the_timm_form_installed_or_not(monkeypatch):
    import headstart.features.backbones.listing as listing

    listed = {row["name"]: row for row in json.loads(run("backbones", "--json").stdout)}
    assert listed["efficientnet_b0"]["preprocessing"] == {
        "resize": 256,
        "crop": 224,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "interpolation": "bicubic, antialias",
    }
    assert listed["resnet50"]["preprocessing"]["resize"] == 232 and listed["resnet50"]["source"] == "torchvision"
    timm_row = listed["timm:MODEL"]
    assert timm_row["source"] == "timm" and timm_row["installed"] is True and timm_row["install"] is None
    assert "256->224 bicubic" in run("backbones", env={"COLUMNS": "200"}).output
    monkeypatch.setattr(listing, "find_spec", lambda name: None)
    missing = {row["name"]: row for row in json.loads(run("backbones", "--json").stdout)}["timm:MODEL"]
    assert missing["installed"] is False and missing["install"] == "pip install 'headstart[timm]'"
    table = run("backbones", env={"COLUMNS": "200"})
    assert_ok(table)
    assert "timm:MODEL" in table.output and "no timm: pip install 'headstart[timm]'" in table.output
