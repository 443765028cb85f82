"""info, evaluate's training-image count and evaluate --html's class examples read a features file a chunk at a
time: their results equal the whole-file reads', and their peak memory does not grow with the cache's rows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import separable, traced_peak, write_features

from headstart.features import chunks
from headstart.features.chunks import reading_plan
from headstart.features.store import FeatureStore
from headstart.heads.audit import run as audit_run
from headstart.heads.audit.rows import load_rows
from headstart.heads.info import describe_cache
from headstart.heads.pages import page
from headstart.heads.pages.exemplars import streamed_examples
from headstart.heads.predict.evaluation import TrainDigests, train_digests


def _cache(tmp_path, rows: int, dim: int = 2):
    rng = np.random.default_rng(rows)
    labels = rng.integers(0, 3, rows)
    features = rng.standard_normal((rows, dim)).astype(np.float32) + labels[:, None]
    cache = tmp_path / f"cache{rows}"
    write_features(cache, {"train": (features, labels), "val": (features[:50], labels[:50])}, ("a", "b", "c"))
    return cache


def test_info_counts_equal_a_whole_read_and_its_memory_does_not_grow_with_the_rows(tmp_path, monkeypatch):
    small, large = _cache(tmp_path, 2_000), _cache(tmp_path, 100_000)
    whole = describe_cache(large)
    with FeatureStore(large / "features.h5") as store:
        labels = store.labels("train")
    assert whole["features"]["splits"]["train"]["per_class"] == dict(zip("abc", np.bincount(labels).tolist()))
    assert whole["features"]["splits"]["train"]["rows"] == 100_000
    monkeypatch.setattr(chunks, "COLUMN_CHUNK_ROWS", 999)  # chunks that end mid-class
    assert describe_cache(large) == whole
    peaks = traced_peak(lambda: describe_cache(small)), traced_peak(lambda: describe_cache(large))
    assert peaks[1] < 1.5 * peaks[0] + 100_000, peaks  # the large file's labels alone are 0.8 MB


def test_evaluate_finds_training_images_a_chunk_of_hashes_at_a_time(tmp_path, monkeypatch):
    small, large = _cache(tmp_path, 2_000), _cache(tmp_path, 50_000)
    monkeypatch.setattr(chunks, "COLUMN_CHUNK_ROWS", 1_024)
    digests = train_digests(large, "resnet18")
    assert digests is not None
    assert digests.intersection(["0" * 64, "f" * 64]) == {"0" * 64}  # the test writer's one digest
    assert train_digests(tmp_path / "elsewhere", "resnet18") is None
    wanted = ["0" * 64, "1" * 64]
    peaks = [
        traced_peak(lambda at=cache: TrainDigests(at / "features.h5").intersection(wanted)) for cache in (small, large)
    ]
    assert peaks[1] < 1.5 * peaks[0] + 200_000, peaks  # 50,000 hashes held whole are over 5 MB


class _Thumbs:
    """page.Thumbnails without images: the caption names the row chosen."""

    def __init__(self, data_root, cache, size):
        pass

    def __call__(self, path, sha256=None, caption=None):
        return caption


def test_class_examples_above_the_limit_are_the_in_memory_choice(tmp_path, monkeypatch):
    features, labels = separable(900, seed=3)
    labels = labels + (np.arange(900) % 3 == 0)  # three classes of different sizes
    write_features(tmp_path / "cache", {"train": (features, labels), "val": (features[:9], labels[:9])}, "xyz")
    path = tmp_path / "cache" / "features.h5"
    monkeypatch.setattr(page, "Thumbnails", _Thumbs)
    in_memory = page.class_exemplars(load_rows(path), tmp_path, 16)
    monkeypatch.setattr(chunks, "IN_MEMORY_BYTES", 32 << 10)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 100 * 64)  # 100 rows a chunk
    with FeatureStore(path) as store:
        plan = reading_plan(store)
    assert plan.streamed and plan.chunk_rows == 100
    assert sorted(in_memory) == ["x", "y", "z"]
    monkeypatch.setattr(page, "class_exemplars", lambda *args: pytest.fail("read whole above the limit"))
    assert page._exemplars(path, tmp_path, 16) == in_memory


def test_class_examples_refuse_a_file_without_training_rows(tmp_path):
    features, labels = separable(40)
    write_features(tmp_path / "cache", {"val": (features, labels)})
    path = tmp_path / "cache" / "features.h5"
    with FeatureStore(path) as store:
        plan = reading_plan(store)
    with pytest.raises(ValueError, match="has no training rows"):
        streamed_examples(path, plan)


def test_a_single_label_audit_above_the_limit_streams_rather_than_refusing(tmp_path, monkeypatch):
    """Only a multi-label audit refuses above the limit (tests/test_audit_streamed.py); a single-label one streams."""
    features, labels = separable(900)
    write_features(tmp_path / "cache", {"train": (features[:800], labels[:800]), "val": (features[800:], labels[800:])})
    monkeypatch.setattr(chunks, "IN_MEMORY_BYTES", 32 << 10)
    with FeatureStore(tmp_path / "cache" / "features.h5") as store:
        assert reading_plan(store).streamed
    audit_run.refuse_above_limit(tmp_path / "cache" / "features.h5")  # no error: heads/audit/streamed.py reads it
