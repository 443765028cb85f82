"""features.engines: the engine is chosen once from the options; the local engine keeps input order, turns bad
files into errors, reports progress and stops its workers when closed; load_image is the one decode path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_image
from features.backbone import load_backbone
from features.config import EngineConfig, ExtractConfig
from features.engines import ENGINES, build_engine
from features.engines.batches import load_image
from features.engines.local import LocalEngine
from features.folder import find_images
from features.images import build_transform
from features.provenance import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

SMALL = Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD)  # cheap forward passes, same code path


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("none", torch.device("cpu"))


@pytest.fixture
def folder(tmp_path):
    for index in range(5):
        make_image(tmp_path / "imgs" / f"{index}.jpg", seed=index)
    (tmp_path / "imgs" / "2b_broken.jpg").write_bytes(b"not a jpeg")
    return tmp_path / "imgs"


def test_build_engine_reads_the_options_once():
    engine = build_engine(ExtractConfig(device="cpu", batch_size=3, workers=0))
    assert engine == LocalEngine(device="cpu", batch_size=3, workers=0)
    assert engine.driver_device == torch.device("cpu")
    assert engine.describe() == "cpu"
    assert ENGINES == ("local", "ray")


def test_an_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown engine 'spark' \\(use one of local, ray\\)"):
        build_engine(EngineConfig(engine="spark"))


def test_the_ray_engine_builds_on_the_driver_cpu():
    pytest.importorskip("ray")
    engine = build_engine(EngineConfig(engine="ray", device="cuda", batch_size=8, address="auto"))
    assert (engine.device, engine.batch_size, engine.address) == ("cuda", 8, "auto")
    assert engine.driver_device == torch.device("cpu")  # the actors pick their own devices
    assert engine.describe() == "ray, device cuda"


def test_local_embed_keeps_order_and_reports_bad_files(folder, backbone):
    entries = find_images([folder])
    progress = []
    batches = list(LocalEngine(device="cpu", batch_size=2, workers=0).embed(
        entries, backbone, SMALL, lambda done, total: progress.append((done, total))))
    assert [entry for batch in batches for entry in batch.entries] == entries
    errors = [error for batch in batches for error in batch.errors]
    assert [entry.path.name for entry, error in zip(entries, errors) if error] == ["2b_broken.jpg"]
    assert all(len(batch.features) == sum(error is None for error in batch.errors) for batch in batches)
    assert progress == [(2, 6), (4, 6), (6, 6)]
    first = load_image(entries[0].path, build_transform(SMALL), SMALL.draft_size)[0]
    np.testing.assert_allclose(batches[0].features[0], backbone.features(first[None])[0].numpy(), atol=1e-5)


def test_local_embed_of_nothing_yields_nothing(backbone):
    assert list(LocalEngine(device="cpu").embed([], backbone, SMALL)) == []


def test_closing_the_iterator_stops_the_workers(folder, backbone):
    batches = LocalEngine(device="cpu", batch_size=1, workers=2).embed(find_images([folder]), backbone, SMALL)
    next(batches)
    batches.close()  # the DataLoader's worker processes end with the generator
    with pytest.raises(StopIteration):
        next(batches)


def test_load_image_returns_a_tensor_and_stamp_or_a_reason(folder):
    transform = build_transform(SMALL)
    tensor, stamp, error = load_image(folder / "0.jpg", transform, SMALL.draft_size)
    assert tensor.shape == (3, 32, 32) and error is None
    assert stamp.size == (folder / "0.jpg").stat().st_size
    assert load_image(folder / "2b_broken.jpg", transform, SMALL.draft_size) == (
        None, None, "not an image file (unrecognised format)")
