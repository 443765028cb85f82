"""extract --runtime onnxruntime (features/runtime.py): the same features as torch's within 1e-4 on real images,
recorded in the features file, interchangeable with torch's rows in the cache; a session whose first batch disagrees
with torch is refused; the missing extra and the options it cannot run with are one line each, before any image."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_error, assert_ok, run
from torch import nn

from headstart.features import runtime
from headstart.features.files.cachedir import features_file
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.features.runtime import TOLERANCE, OnnxForward, distance
from headstart.features.store import FeatureStore


@pytest.fixture
def table(real_data, tmp_path) -> Path:
    """A label table naming two images of each class in train and one in val, relative to the real dataset."""
    path = tmp_path / "labels.csv"
    rows = [
        (f"{split}/{label}/{name}", label, split)
        for split, count in (("train", 2), ("val", 1))
        for label in ("ants", "bees")
        for name in sorted(p.name for p in (real_data / split / label).iterdir())[:count]
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *rows])
    return path


def _extract(real_data: Path, table: Path, cache: Path, *options) -> list:
    return [
        "extract", "--data", real_data, "--labels", table, "--cache", cache, "--backbone", "resnet18",
        "--weights", "none", "--workers", 0, *options,
    ]  # fmt: skip


def _features(cache: Path) -> tuple[str, dict[str, np.ndarray]]:
    with FeatureStore(cache / features_file("resnet18")) as store:
        return store.header.forward, {split: store.read(split).features for split in store.labelled_splits}


def _torchscript_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """torch's older TorchScript-based exporter: the same ONNX graph in a few seconds, where torch.export's takes
    tens on a loaded machine (its fixed cost, whatever the network)."""
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, input_names=["images"], dynamic_axes={"images": {0: "batch"}},
            opset_version=runtime.OPSET, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


@pytest.mark.parametrize(
    "exporter",
    [
        pytest.param("torch.export", marks=pytest.mark.long),  # extract's own exporter: about 30 s on 2 loaded cores
        "torchscript",  # the fast variant: all of it but the exporter
    ],
)
def test_onnxruntime_extract_matches_torch_and_shares_its_cache(real_data, table, tmp_path, monkeypatch, exporter):
    if exporter == "torchscript":
        monkeypatch.setattr(runtime, "onnx_bytes", _torchscript_onnx)
    # 32-pixel inputs: the same export and session at a fraction of the forward's cost (resnet18: its random-init
    # features are of order 1, where mobilenet_v3_large's vanish and would compare as equal whatever they were).
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
    assert_ok(run(*_extract(real_data, table, tmp_path / "ort", "--runtime", "onnxruntime")))
    assert_ok(run(*_extract(real_data, table, tmp_path / "torch")))
    (ort_forward, ort), (torch_forward, reference) = _features(tmp_path / "ort"), _features(tmp_path / "torch")
    assert ort_forward.startswith("batchnorm folded, onnxruntime ") and ort_forward.endswith(" CPU")
    assert torch_forward == "batchnorm folded"
    for split, features in reference.items():
        assert ort[split].shape == features.shape == ({"train": 4, "val": 2}[split], 512)
        assert np.abs(features).max() > 0.1  # features worth comparing
        assert distance(torch.from_numpy(ort[split]), torch.from_numpy(features)) <= TOLERANCE

    # Rows of either runtime are the same features within 1e-4: switching runtime recomputes nothing.
    result = run(*_extract(real_data, table, tmp_path / "ort"))
    assert_ok(result)
    forward, again = _features(tmp_path / "ort")
    assert forward == "batchnorm folded"  # the run that wrote the file last
    assert all((again[split] == ort[split]).all() for split in ort)


def _graph(reduce: str) -> bytes:
    """A hand-made ONNX model: images (N, 3, H, W) -> reduce over H and W -> (N, 3); no exporter, so it is instant."""
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    node = helper.make_node(reduce, ["images", "axes"], ["features"], keepdims=0)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
        initializer=[axes],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", runtime.OPSET)]).SerializeToString()


class _Mean(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


@pytest.mark.parametrize("reduce, agrees", [("ReduceMean", True), ("ReduceMax", False)])
def test_the_first_batch_is_checked_against_torch(monkeypatch, reduce, agrees):
    monkeypatch.setattr(runtime, "onnx_bytes", lambda model, example: _graph(reduce))
    forward = OnnxForward(_Mean().eval(), threads=1)
    batch = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    if agrees:
        assert distance(forward(batch), batch.mean(dim=(2, 3))) <= TOLERANCE
        assert distance(forward(batch * 2), batch.mean(dim=(2, 3)) * 2) <= TOLERANCE  # later batches: no check
    else:
        with pytest.raises(ValueError, match=r"^onnxruntime's features of the first batch are .* extract with --runt"):
            forward(batch)


def test_a_network_onnxruntime_cannot_run_is_one_line(monkeypatch):
    monkeypatch.setattr(runtime, "onnx_bytes", lambda model, example: b"not an onnx model")
    with pytest.raises(ValueError, match=r"^cannot run this network in onnxruntime \(.+\): extract with --runtime t"):
        OnnxForward(_Mean().eval())(torch.rand(2, 3, 4, 4))


@pytest.mark.parametrize(
    "options, fragment",
    [
        (("--precision", "bf16"), "cannot run with --precision bf16: onnxruntime has no bf16 CPU convolution"),
        (("--compile",), "cannot run with --compile"),
        (("--engine", "ray"), "cannot run with --engine ray: its actors run torch: use --engine local"),
    ],
)
def test_options_it_cannot_run_with_are_refused_before_any_image(tiny_dataset, tmp_path, options, fragment):
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "c", "--runtime", "onnxruntime", *options)
    assert_error(result, fragment)
    assert not (tmp_path / "c").exists()


def test_missing_extra_is_one_line_naming_it(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails as if not installed
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "c", "--runtime", "onnxruntime")
    assert_error(result, "--runtime onnxruntime needs onnx, onnxscript and onnxruntime", "pip install -e '.[export]'")
    assert not (tmp_path / "c").exists()


def test_a_gpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"runs on the CPU, not cuda: add --device cpu"):
        runtime.check_device(runtime.ONNXRUNTIME, torch.device("cuda"))
    runtime.check_device(runtime.TORCH, torch.device("cuda"))  # torch's runtime goes anywhere
