"""features/store.py: the HDF5 features file written whole or not at all, read back exactly."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from headstart.features.files.cachedir import FEATURES_FILE, PARTIAL_SUFFIX
from headstart.features.store import (
    FORMAT_VERSION,
    FeaturesHeader,
    FeatureStore,
    Rows,
    StoreError,
    StoreWriter,
    partial_files,
)

DIM = 8
HEADER = {
    "producer": "headstart test",
    "created": "2026-01-02T03:04:05+00:00",
    "classes": ["ants", "bees", "gu\u00eapes"],
    "backbone": "resnet18",
    "weights": {"kind": "file", "name": "/w/r\u00e9seau.pth", "sha256": "ab" * 32},
    "preprocessing": {
        "name": "imagenet",
        "resize": 256,
        "crop": 224,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear, antialias",
    },
    "precision": "fp32",
    "data_root": "/data/donn\u00e9es",
    "torch_version": "2.14.1",
    "torchvision_version": "0.29.1",
}


def typed(header: dict) -> FeaturesHeader:
    return FeaturesHeader.from_dict({**header, "format_version": FORMAT_VERSION})


def make_rows(n: int, start: int = 0, seed: int = 0) -> Rows:
    rng = np.random.default_rng(seed)
    names = ["train/ants/fourmi_\u00e9.jpg", "train/bees/\u8702.jpg", "train/ants/bad\\xff.jpg", "train/bees/b.png"]
    return Rows(
        rng.standard_normal((n, DIM)).astype(np.float32),
        rng.integers(0, 3, n).astype(np.int64),
        [f"{names[i % len(names)]}.{start + i}" for i in range(n)],
        rng.integers(1, 10**9, n).astype(np.int64),
        (1_700_000_000_123_456_789 + np.arange(start, start + n) * 1_000_000_007).astype(np.int64),
        [f"{start + i:064x}" for i in range(n)],
    )


def write_store(path, splits: dict[str, list[Rows]], skipped: dict | None = None, header=HEADER, chunk_rows=4):
    writer = StoreWriter(path, typed(header), DIM, chunk_rows=chunk_rows)
    for split, blocks in splits.items():
        writer.begin_split(split)
        for block in blocks:
            writer.append(block)
        writer.end_split((skipped or {}).get(split, []))
    writer.commit()
    return path


def assert_rows_equal(got: Rows, expected: Rows) -> None:
    assert got.features.dtype == np.float32 and got.features.shape == expected.features.shape
    np.testing.assert_array_equal(got.features, expected.features)
    assert got.labels.dtype == np.int64
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert got.paths == expected.paths
    np.testing.assert_array_equal(got.sizes, expected.sizes)
    np.testing.assert_array_equal(got.mtimes_ns, expected.mtimes_ns)
    assert got.sha256 == expected.sha256


def test_round_trip(tmp_path):
    train, val = make_rows(7, seed=1), make_rows(3, start=100, seed=2)
    skipped = {"train": [("train/ants/broken.jpg", "not an image file"), ("train/bees/caf\u00e9.jpg", "empty file")]}
    path = write_store(tmp_path / FEATURES_FILE, {"train": [train], "val": [val]}, skipped)

    with FeatureStore(path) as store:
        assert store.splits == ["train", "val"]
        assert (store.count("train"), store.count("val")) == (7, 3)
        assert_rows_equal(store.read("train"), train)
        assert_rows_equal(store.read("val"), val)
        assert store.skipped("train") == skipped["train"]
        assert store.skipped("val") == []
        paths, sizes, mtimes_ns, sha256 = store.stamps("train")
        assert paths == train.paths and sha256 == train.sha256
        np.testing.assert_array_equal(sizes, train.sizes)
        np.testing.assert_array_equal(mtimes_ns, train.mtimes_ns)
        header = store.header.to_dict()
    assert header["format_version"] == FORMAT_VERSION
    for key, value in HEADER.items():
        assert header[key] == value, key
    assert partial_files(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [FEATURES_FILE]


def test_paths_are_stored_as_utf8_strings(tmp_path):
    rows = make_rows(4)
    path = write_store(tmp_path / FEATURES_FILE, {"train": [rows]})
    with h5py.File(path, "r") as raw:
        dataset = raw["train"]["paths"]
        assert h5py.check_string_dtype(dataset.dtype).encoding == "utf-8"
        assert dataset[0].decode("utf-8") == rows.paths[0]
        assert "\u8702" in dataset[1].decode("utf-8")


def test_appending_in_blocks_equals_one_block(tmp_path):
    blocks = [make_rows(3, 0, seed=1), make_rows(0, 3), make_rows(6, 3, seed=2), make_rows(1, 9, seed=3)]
    path = write_store(tmp_path / FEATURES_FILE, {"train": blocks}, chunk_rows=4)
    whole = Rows(
        *[np.concatenate([getattr(b, name) for b in blocks]) for name in ("features", "labels")],
        [p for b in blocks for p in b.paths],
        *[np.concatenate([getattr(b, name) for b in blocks]) for name in ("sizes", "mtimes_ns")],
        [s for b in blocks for s in b.sha256],
    )
    with FeatureStore(path) as store:
        assert store.count("train") == 10
        assert_rows_equal(store.read("train"), whole)
        some = store.read("train", np.asarray([0, 4, 9]))
        np.testing.assert_array_equal(some.features, whole.features[[0, 4, 9]])
        assert some.paths == [whole.paths[i] for i in (0, 4, 9)]
        assert store.read("train", slice(2, 5)).sha256 == whole.sha256[2:5]


def test_an_empty_split_reads_as_no_rows(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(2)], "val": []})
    with FeatureStore(path) as store:
        assert store.count("val") == 0
        rows = store.read("val")
        assert len(rows) == 0 and rows.features.shape == (0, DIM)


def test_partial_file_is_what_is_written_until_commit(tmp_path):
    path = tmp_path / FEATURES_FILE
    writer = StoreWriter(path, typed(HEADER), DIM)
    writer.begin_split("train")
    writer.append(make_rows(2))
    assert writer.partial.parent == tmp_path
    assert writer.partial.name.startswith(FEATURES_FILE + PARTIAL_SUFFIX)
    assert writer.partial.exists() and not path.exists()
    assert partial_files(path) == [writer.partial]
    writer.end_split([])
    writer.commit()
    assert path.exists() and not writer.partial.exists()
    assert partial_files(path) == []


def test_two_writers_use_two_partial_files(tmp_path):
    path = tmp_path / FEATURES_FILE
    first, second = StoreWriter(path, typed(HEADER), DIM), StoreWriter(path, typed(HEADER), DIM)
    try:
        assert first.partial != second.partial
        assert set(partial_files(path)) == {first.partial, second.partial}
    finally:
        first.abandon()
        second.abandon()
    assert partial_files(path) == []


def test_kept_partial_is_readable_with_the_rows_written_so_far(tmp_path):
    path = tmp_path / FEATURES_FILE
    done, interrupted = make_rows(4, seed=1), make_rows(3, start=4, seed=2)
    writer = StoreWriter(path, typed(HEADER), DIM, chunk_rows=2)
    writer.begin_split("train")
    writer.append(done)
    writer.end_split([("train/ants/x.jpg", "empty file (0 bytes)")])
    writer.begin_split("val")
    writer.append(interrupted)
    writer.keep_partial()  # as on Ctrl-C: no end_split, no commit

    assert not path.exists()
    assert partial_files(path) == [writer.partial]
    with FeatureStore(writer.partial) as store:
        assert store.header.classes == HEADER["classes"]
        assert_rows_equal(store.read("train"), done)
        assert_rows_equal(store.read("val"), interrupted)
        assert store.skipped("train") == [("train/ants/x.jpg", "empty file (0 bytes)")]
        assert store.skipped("val") == []


def test_partial_files_are_listed_oldest_first_and_nothing_else(tmp_path):
    path = tmp_path / FEATURES_FILE
    names = [f"{FEATURES_FILE}{PARTIAL_SUFFIX}-{n}" for n in ("b", "a", "c")]
    for age, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, ns=(10**18 + age * 10**9, 10**18 + age * 10**9))
    (tmp_path / FEATURES_FILE).write_bytes(b"x")
    (tmp_path / "other.h5.partial-1").write_bytes(b"x")
    assert [p.name for p in partial_files(path)] == names


def test_abandon_leaves_no_partial_and_keeps_the_previous_file(tmp_path):
    first = make_rows(5, seed=1)
    path = write_store(tmp_path / FEATURES_FILE, {"train": [first]})
    before = path.read_bytes()

    writer = StoreWriter(path, typed({**HEADER, "producer": "second"}), DIM)
    writer.begin_split("train")
    writer.append(make_rows(9, seed=2))
    writer.abandon()

    assert not writer.partial.exists()
    assert path.read_bytes() == before
    with FeatureStore(path) as store:
        assert store.header.producer == "headstart test"
        assert_rows_equal(store.read("train"), first)


def test_commit_replaces_the_previous_file(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(5, seed=1)], "val": [make_rows(2)]})
    second = make_rows(3, seed=9)
    write_store(path, {"train": [second]}, header={**HEADER, "precision": "bf16"})
    with FeatureStore(path) as store:
        assert store.splits == ["train"]
        assert store.header.precision == "bf16"
        assert_rows_equal(store.read("train"), second)


def test_a_leftover_partial_from_a_crash_does_not_disturb_writing(tmp_path):
    path = tmp_path / FEATURES_FILE
    leftover = tmp_path / f"{FEATURES_FILE}{PARTIAL_SUFFIX}-1-2"
    leftover.write_bytes(b"half a file from a killed run")
    rows = make_rows(2)
    write_store(path, {"train": [rows]})
    with FeatureStore(path) as store:
        assert_rows_equal(store.read("train"), rows)
    assert leftover.read_bytes() == b"half a file from a killed run"  # the writer only ever touches its own


# --- files that are not (this version of) a features file --------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(StoreError, match="does not exist.*extract"):
        FeatureStore(tmp_path / FEATURES_FILE)


def test_garbage_file(tmp_path):
    path = tmp_path / FEATURES_FILE
    path.write_bytes(b"this is not HDF5 at all" * 100)
    with pytest.raises(StoreError, match="re-run `extract`") as caught:
        FeatureStore(path)
    assert str(path) in str(caught.value)


def test_truncated_file(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(300)]}, chunk_rows=16)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="re-run `extract`") as caught:
        with FeatureStore(path) as store:
            store.read("train")
    assert str(path) in str(caught.value)


def test_hdf5_without_format_version(tmp_path):
    path = tmp_path / FEATURES_FILE
    with h5py.File(path, "w") as raw:
        raw.attrs["classes"] = '["a", "b"]'
        raw.create_dataset("train/features", data=np.zeros((2, DIM), np.float32))
    with pytest.raises(StoreError, match="not a headstart features file.*re-run `extract`"):
        FeatureStore(path)


def test_future_format_version(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(2)]})
    with h5py.File(path, "r+") as raw:
        raw.attrs["format_version"] = FORMAT_VERSION + 2
    with pytest.raises(StoreError) as caught:
        FeatureStore(path)
    message = str(caught.value)
    assert f"format {FORMAT_VERSION + 2}" in message and "reads format 1 or 2" in message
    assert "re-run `extract`" in message


def test_a_damaged_json_attribute_is_a_store_error(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(2)]})
    with h5py.File(path, "r+") as raw:
        raw.attrs["weights"] = "{not json"
    with pytest.raises(StoreError, match="re-run `extract`"):
        FeatureStore(path)


@pytest.mark.parametrize("method", ["read", "stamps", "labels", "count", "skipped"])
def test_a_missing_split_is_a_store_error(tmp_path, method):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(2)]})
    with FeatureStore(path) as store:
        with pytest.raises(StoreError, match="no 'val' split") as caught:
            getattr(store, method)("val")
    assert "train" in str(caught.value)


def test_a_split_missing_a_dataset_is_a_store_error(tmp_path):
    path = write_store(tmp_path / FEATURES_FILE, {"train": [make_rows(2)]})
    with h5py.File(path, "r+") as raw:
        del raw["train"]["sha256"]
    with FeatureStore(path) as store:
        with pytest.raises(StoreError, match="damaged"):
            store.read("train")
        with pytest.raises(StoreError, match="damaged"):
            store.stamps("train")
