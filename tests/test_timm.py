"""features/backbones/timm_models.py: `--backbone timm:MODEL` extracts, trains, predicts and exports (torchscript,
onnx) end to end with a timm model at random init; missing weights and unknown names are one-line errors."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_dataset

pytest.importorskip("timm")

MODEL = "timm:resnet18"


def test_the_entry_comes_from_timm():
    from headstart.features.backbones.registry import backbone_entry

    entry = backbone_entry(MODEL)
    assert (entry.width, entry.crop, entry.resize) == (512, 224, 235)  # crop_pct 0.95: floor(224 / 0.95)
    assert entry.preprocessing.interpolation.startswith("bicubic") and entry.gflops == pytest.approx(1.814, abs=0.01)


def test_unknown_model_and_uncached_weights_are_one_line_errors(tmp_path):
    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    assert_error(run("extract", "--data", data, "--cache", cache, "--backbone", "timm:resnet1"), "did you mean")
    result = run("extract", "--data", data, "--cache", cache, "--backbone", "timm:resnet18.fb_ssl_yfcc100m_ft_in1k")
    assert_error(result, "are not in its cache")
    assert not any(cache.glob("features*")) if cache.exists() else True


@pytest.mark.long  # two exports of a timm network: minutes on two shared cores
def test_extract_train_predict_export_on_a_timm_backbone(tmp_path):
    from headstart.heads.export import ExportConfig, export_head

    data, cache = make_dataset(tmp_path / "data"), tmp_path / "cache"
    extract = ("extract", "--data", data, "--cache", cache, "--backbone", MODEL, "--weights", "none", "--workers", 0)
    assert_ok(run(*extract))
    assert (cache / "features-timm-resnet18.h5").is_file()
    assert_ok(run("train-head", "--cache", cache, "--epochs", 2))
    out = tmp_path / "predictions.csv"
    assert_ok(run("predict", data / "val", "--cache", cache, "--out", out, "--workers", 0))
    assert len(out.read_text().splitlines()) == 1 + 4
    info = json.loads(run("info", "--cache", cache, "--json").stdout)
    assert list(info["backbones"]) == [MODEL]
    for export_format in ("torchscript", "onnx"):
        target = tmp_path / f"model.{export_format}"
        summary = export_head(ExportConfig(out=target, format=export_format, cache=cache, sample=2))
        assert summary.difference < 1e-4 and target.is_file()
    refused = run("export", "--cache", cache, "--format", "torchvision", "--out", tmp_path / "tv.pt")
    assert_error(refused, "is a timm model")
    assert not (tmp_path / "tv.pt").exists()
