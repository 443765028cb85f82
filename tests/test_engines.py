"""features.engines: the engine is chosen once from the options; the local engine keeps input order, turns bad
files into errors, reports progress and stops its workers when closed; load_image is the one decode path."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image

from headstart.features.backbone import load_backbone
from headstart.features.config import EngineConfig, ExtractConfig
from headstart.features.engines import ENGINES, build_engine, local
from headstart.features.engines.batches import load_image
from headstart.features.engines.local import LocalEngine
from headstart.features.folder import find_images
from headstart.features.images import build_transform
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

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
    batches = list(
        LocalEngine(device="cpu", batch_size=2, workers=0).embed(
            entries, backbone, SMALL, lambda done, total: progress.append((done, total))
        )
    )
    assert [entry for batch in batches for entry in batch.entries] == entries
    errors = [error for batch in batches for error in batch.errors]
    assert [entry.path.name for entry, error in zip(entries, errors) if error] == ["2b_broken.jpg"]
    assert all(len(batch.features) == sum(error is None for error in batch.errors) for batch in batches)
    assert progress == [(6, 6)] and len(batches) == 1  # one batch and report per decoding group of 32 images
    first = load_image(entries[0].path, build_transform(SMALL), SMALL.draft_size)[0]
    np.testing.assert_allclose(batches[0].features[0], backbone.features(first[None])[0].numpy(), atol=1e-5)


class _Recording:
    """A backbone stand-in that records the batch sizes it sees and, per call, how many files were decoded (lines in
    a log the decoding threads or processes append to); its first pass waits (up to wait_s) for 64 decoded files,
    so decoding ahead is seen, not raced."""

    def __init__(self, device: str, log: Path, wait_s: float, precision: str = "fp32"):
        self.device, self.log, self.calls, self.wait_s = torch.device(device), log, [], wait_s
        self.precision = precision

    def build(self) -> None:
        """Nothing to build."""

    def decoded(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        deadline = time.monotonic() + self.wait_s
        while not self.calls and len(self.decoded()) < 64 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.calls.append((len(batch), len(self.decoded())))
        return torch.zeros(len(batch), 512)


def _logged_load(log: Path, path, **_):
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    return load_image(path, build_transform(SMALL), None)


# A CPU runs a group's forward passes before the next group is decoded, on threads of this process; a GPU gets
# worker processes decoding ahead of it.
@pytest.mark.parametrize(
    "device, decoded_at_first_pass, wait_s, in_this_process",
    [("cpu", (32, 32), 0.5, True), ("meta", (64, 70), 20, False)],
)
def test_forward_passes_take_batch_size_images_and_decoding_takes_turns_on_a_cpu(
    tmp_path, monkeypatch, device, decoded_at_first_pass, wait_s, in_this_process
):
    for index in range(70):
        make_image(tmp_path / "imgs" / f"{index:02d}.jpg", size=(20, 20), seed=index)
    log = tmp_path / "decoded.log"
    monkeypatch.setattr(local, "load_image", functools.partial(_logged_load, log))
    recording = _Recording(device, log, wait_s)
    batches = list(LocalEngine(batch_size=5, workers=2).embed(find_images([tmp_path / "imgs"]), recording, SMALL))
    assert [len(batch.entries) for batch in batches] == [32, 32, 6]  # yielded per decoding group
    assert [size for size, _ in recording.calls] == [5] * 6 + [2] + [5] * 6 + [2] + [5, 1]
    assert decoded_at_first_pass[0] <= recording.calls[0][1] <= decoded_at_first_pass[1]
    pids = set(recording.decoded())
    assert len(recording.decoded()) == 70 and (pids == {str(os.getpid())}) == in_this_process


# Four forward passes per decoding turn, at least 32 images: a turn of fp32 is 32 images, of bf16 64.
@pytest.mark.parametrize(
    "precision, passes, yielded", [("fp32", [8] * 8 + [6], [32, 32, 6]), ("bf16", [16] * 4 + [6], [64, 6])]
)
def test_a_cpus_default_batch_is_8_in_fp32_and_16_in_bf16(tmp_path, monkeypatch, precision, passes, yielded):
    for index in range(70):
        make_image(tmp_path / "imgs" / f"{index:02d}.jpg", size=(20, 20), seed=index)
    log = tmp_path / "decoded.log"
    monkeypatch.setattr(local, "load_image", functools.partial(_logged_load, log))
    recording = _Recording("cpu", log, 0, precision)
    batches = list(LocalEngine(workers=0).embed(find_images([tmp_path / "imgs"]), recording, SMALL))
    assert [size for size, _ in recording.calls] == passes
    assert [len(batch.entries) for batch in batches] == yielded


@pytest.mark.parametrize("workers", [0, 2])  # built in this thread, or on the pool beside the first group's decoding
def test_a_network_that_fails_to_build_stops_the_run_with_its_error(tmp_path, monkeypatch, workers):
    for index in range(3):
        make_image(tmp_path / "imgs" / f"{index}.jpg", size=(20, 20), seed=index)
    log = tmp_path / "decoded.log"
    monkeypatch.setattr(local, "load_image", functools.partial(_logged_load, log))
    recording = _Recording("cpu", log, 0)

    def fail() -> None:
        raise RuntimeError("no oneDNN here")

    recording.build = fail
    with pytest.raises(RuntimeError, match="no oneDNN here"):
        list(LocalEngine(workers=workers).embed(find_images([tmp_path / "imgs"]), recording, SMALL))
    assert recording.calls == []  # no forward pass ran


def test_local_embed_of_nothing_yields_nothing(backbone):
    assert list(LocalEngine(device="cpu").embed([], backbone, SMALL)) == []


def test_closing_the_iterator_stops_the_decoding_threads(tmp_path, backbone):
    for index in range(40):
        make_image(tmp_path / "imgs" / f"{index:02d}.jpg", size=(20, 20), seed=index)
    engine = LocalEngine(device="cpu", batch_size=1, workers=2)
    batches = engine.embed(find_images([tmp_path / "imgs"]), backbone, SMALL)
    next(batches)
    batches.close()
    with pytest.raises(StopIteration):
        next(batches)
    deadline = time.monotonic() + 10
    while any(thread.name.startswith("headstart-decode") for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "decoding threads still alive"
        time.sleep(0.01)


def test_load_image_returns_a_tensor_and_stamp_or_a_reason(folder):
    transform = build_transform(SMALL)
    tensor, stamp, error = load_image(folder / "0.jpg", transform, SMALL.draft_size)
    assert tensor.shape == (3, 32, 32) and error is None
    assert stamp.size == (folder / "0.jpg").stat().st_size
    assert load_image(folder / "2b_broken.jpg", transform, SMALL.draft_size) == (
        None,
        None,
        "not an image file (unrecognised format)",
    )
