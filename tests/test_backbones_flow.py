"""Issue 22's done-when, through the CLI on a few hymenoptera images read in place (named by a label table, never
copied): extract with a local weights file, train-head, predict, export --format onnx; then switching to resnet18
and back computes nothing. And every registry entry's own flow at random init: width, fidelity to its builder's eager
forward on real images, train-head, predict, export round trip."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_ok, read_csv, run

from headstart.features.backbones.registry import DEFAULT_BACKBONE, ENTRIES
from headstart.features.engines.batches import load_image
from headstart.features.files.cachedir import features_file
from headstart.features.images import build_transform
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.features.store import FeatureStore

COUNTS = re.compile(r"^\W*(train|val)\W+(\d+)\W+(\d+)\W+(\d+)\W", re.MULTILINE)
PER_CLASS = {"train": 2, "val": 1}  # 4 train and 2 val images: a head to train, a val split to export-check on
# The default suite's entry; every other (tens of GFLOPs an image, a long random init) and every ONNX export (tens of
# seconds each on two shared cores) run with -m long.
CHEAP = ["mobilenet_v3_large"]


@pytest.fixture(scope="module")
def table(real_data, tmp_path_factory) -> Path:
    """A label table naming the first images of each class in train and val, relative to the real dataset."""
    path = tmp_path_factory.mktemp("table") / "labels.csv"
    rows = [
        (f"{split}/{label}/{name}", label, split)
        for split, count in PER_CLASS.items()
        for label in ("ants", "bees")
        for name in sorted(p.name for p in (real_data / split / label).iterdir())[:count]
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *rows])
    return path


def _val_paths(real_data: Path, table: Path) -> list[Path]:
    return [real_data / row["path"] for row in read_csv(table) if row["split"] == "val"]


def _extract(real_data: Path, table: Path, cache: Path, backbone: str, weights: str | Path) -> dict:
    """Run extract; split -> (images, extracted, reused) as its summary table prints them."""
    result = run(
        "extract", "--data", real_data, "--labels", table, "--cache", cache, "--backbone", backbone,
        "--weights", weights, "--workers", 0, env={"COLUMNS": "200"},
    )  # fmt: skip
    assert_ok(result)
    return {split: tuple(int(n) for n in numbers) for split, *numbers in COUNTS.findall(result.stdout)}


def _train_predict_export(real_data: Path, table: Path, cache: Path, backbone: str, out: Path, fmt: str | None) -> None:
    """train-head on backbone's features, predict the val images with it, export it (fmt; None: not) and run what
    was written."""
    assert_ok(run("train-head", "--cache", cache, "--epochs", 2, "--backbone", backbone, "-q"))
    predictions = out / "predictions.csv"
    val = _val_paths(real_data, table)
    assert_ok(run("predict", *val, "--cache", cache, "--out", predictions, "--backbone", backbone, "--workers", 0))
    rows = read_csv(predictions)
    assert [Path(row["path"]).name for row in rows] == sorted(path.name for path in val)
    assert all(row["label"] in ("ants", "bees") and not row["error"] for row in rows)
    if fmt is None:
        return
    model = out / f"model.{fmt}"
    assert_ok(run("export", "--cache", cache, "--format", fmt, "--out", model, "--sample", 2, "-q"))
    crop = ENTRIES[backbone].crop
    images = np.zeros((1, 3, crop, crop), np.float32)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        (probabilities,) = session.run(None, {session.get_inputs()[0].name: images})
    else:
        probabilities = torch.jit.load(str(model))(torch.from_numpy(images)).numpy()
    assert probabilities.shape == (1, 2) and abs(float(probabilities.sum()) - 1) < 1e-5


@pytest.fixture
def small_inputs(monkeypatch):
    """32-pixel inputs for resnet18 and mobilenet_v3_large: the same steps at a fraction of the forward's cost."""
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
    small = dataclasses.replace(ENTRIES["mobilenet_v3_large"], resize=36, crop=32)
    monkeypatch.setitem(ENTRIES, "mobilenet_v3_large", small)


def _flow(real_data: Path, table: Path, tmp_path: Path, backbone: str, fmt: str | None) -> None:
    from torchvision.models import get_model

    weights = tmp_path / f"{backbone}.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        torch.save(get_model(backbone, weights=None).state_dict(), weights)  # as a user saves one, final Linear too
    cache = tmp_path / "cache"
    every, none = {"train": (4, 4, 0), "val": (2, 2, 0)}, {"train": (4, 0, 4), "val": (2, 0, 2)}
    assert _extract(real_data, table, cache, backbone, weights) == every
    with FeatureStore(cache / features_file(backbone)) as store:
        assert store.header.backbone == backbone and store.header.weights.kind == "file"
        assert store.read("train").features.shape == (4, ENTRIES[backbone].width)
    _train_predict_export(real_data, table, cache, backbone, tmp_path, fmt)
    assert _extract(real_data, table, cache, DEFAULT_BACKBONE, "none") == every
    for name, given in ((backbone, weights), (DEFAULT_BACKBONE, "none"), (backbone, weights)):
        assert _extract(real_data, table, cache, name, given) == none
    assert sorted(path.name for path in cache.glob("features*.h5")) == sorted(
        {features_file(backbone), features_file(DEFAULT_BACKBONE)}
    )


@pytest.mark.long  # a 100 MB weights file, 4-GFLOP images and an ONNX export of ResNet50: a minute or more here
def test_resnet50_from_a_local_weights_file_to_onnx_then_switching_to_resnet18_and_back_computes_nothing(
    real_data, table, tmp_path
):
    _flow(real_data, table, tmp_path, "resnet50", "onnx")


def test_the_same_flow_on_small_inputs_with_mobilenet_v3_large(real_data, table, tmp_path, small_inputs):
    """Without the export: tests/test_backbones.py exports a mobilenet_v3_large head as TorchScript and torchvision."""
    _flow(real_data, table, tmp_path, "mobilenet_v3_large", None)


def _builders_features(name: str, paths: list[Path]) -> torch.Tensor:
    """The input of the builder's own final Linear, eval mode, unfolded, for paths decoded as extract decodes them."""
    from torchvision.models import get_model

    entry = ENTRIES[name]
    transform = build_transform(entry.preprocessing)
    batch = torch.stack([load_image(path, transform, entry.preprocessing.draft_size)[0] for path in paths])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # what --weights none builds
        model = get_model(name, weights=None).eval()
    captured: list[torch.Tensor] = []
    model.get_submodule(entry.head).register_forward_hook(lambda _, inputs, __: captured.append(inputs[0]))
    with torch.inference_mode():
        model(batch)
    return captured[0]


def _entry_params():
    """Every entry exported as ONNX with -m long; the cheapest also in the default suite, without the export
    (tests/test_backbones.py exports its head as TorchScript and torchvision)."""
    cheap = [pytest.param(name, None, id=f"{name}-no-export") for name in CHEAP]
    every = [pytest.param(name, "onnx", id=f"{name}-onnx", marks=pytest.mark.long) for name in ENTRIES]
    return cheap + every


@pytest.mark.parametrize("name, fmt", _entry_params())
def test_every_entry_extracts_real_images_as_its_builder_does_and_trains_predicts_exports(
    name, fmt, real_data, table, tmp_path
):
    cache = tmp_path / "cache"
    assert _extract(real_data, table, cache, name, "none") == {"train": (4, 4, 0), "val": (2, 2, 0)}
    with FeatureStore(cache / features_file(name)) as store:
        rows = [store.read(split) for split in ("train", "val")]
    features = torch.from_numpy(np.concatenate([split.features for split in rows]))
    assert features.shape == (6, ENTRIES[name].width)
    expected = _builders_features(name, [real_data / path for split in rows for path in split.paths])
    scale = max(1.0, float(expected.abs().max()))  # random-init ResNets grow their activations to 1e4
    assert float((features - expected).abs().max()) <= 1e-4 * scale
    _train_predict_export(real_data, table, cache, name, tmp_path, fmt)
