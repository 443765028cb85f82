"""Shards (features/engines/shards.py) without Ray: the worker's writer, the manifest checks, what an interrupted
run's shards folder resumes and discards, and the read-back; the Ray side is in test_ray.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset

from headstart.features import ExtractConfig, extract_features
from headstart.features.engines.shards import (
    ShardEntry,
    ShardError,
    complete_shards,
    read_back,
    remove_shards,
    write_shard,
)
from headstart.features.files.cachedir import owned_by_cache, shards_folder
from headstart.features.folder import ImageEntry
from headstart.features.images import read_file
from headstart.features.store import FeatureStore

PLANTED = 7.0  # a feature value no backbone computes: a row carrying it came from the planted shard


def a_batch(data: Path, names: list[str], first: int, width: int, broken: str | None = None) -> dict[str, np.ndarray]:
    """A block as the Ray pipeline hands it to write_shard: the entries' columns, stamps, and feature rows."""
    stamps = [read_file(data / name)[1] for name in names]
    ok = np.asarray([name != broken for name in names])
    return {
        "index": np.arange(first, first + len(names)),
        "path": np.asarray([str(data / name).encode() for name in names], object),
        "name": np.asarray(names, object),
        "label": np.asarray([0 if "/ants/" in name else 1 for name in names]),
        "label_set": np.asarray([""] * len(names), object),
        "split": np.asarray([name.split("/")[0] for name in names], object),
        "ok": ok,
        "size": np.asarray([stamp.size for stamp in stamps]),
        "mtime_ns": np.asarray([stamp.mtime_ns for stamp in stamps]),
        "sha256": np.asarray([stamp.sha256 for stamp in stamps], object),
        "error": np.asarray(["" if good else "not an image file" for good in ok], object),
        "features": np.full((len(names), width), PLANTED, np.float32),
    }


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """One small dataset for the module (no test changes it)."""
    return make_dataset(tmp_path_factory.mktemp("shards") / "data")


@pytest.fixture(scope="module")
def header(tiny_dataset, tmp_path_factory):
    """The header an extract of tiny_dataset with --weights none writes (taken from a real run)."""
    cache = tmp_path_factory.mktemp("first")
    extract_features(ExtractConfig(data=tiny_dataset, cache=cache, weights="none"))
    with FeatureStore(cache / "features.h5") as store:
        return store.header


TRAIN = ["train/ants/ants_0.jpg", "train/ants/ants_1.jpg", "train/ants/ants_2.jpg"]
VAL = ["val/bees/bees_0.jpg", "val/bees/bees_1.jpg"]


def test_an_interrupted_runs_checked_shards_are_resumed_and_the_rest_discarded(tiny_dataset, header, tmp_path):
    cache = tmp_path / "cache"
    folder = shards_folder(cache / "features.h5")
    folder.mkdir(parents=True)
    plain = header.to_dict()
    back = write_shard(a_batch(tiny_dataset, TRAIN, 0, 512), str(folder), plain, "aa")  # checks: resumed
    assert set(back) == {"index", "shard"}  # no feature rows go back to the driver
    spoiled = write_shard(a_batch(tiny_dataset, VAL, 3, 512), str(folder), plain, "bb")["shard"][0]
    with open(folder / spoiled, "ab") as handle:  # changed after its manifest entry vouched for it
        handle.write(b"\x00")
    orphan = write_shard(a_batch(tiny_dataset, ["train/bees/bees_0.jpg"], 5, 512), str(folder), plain, "cc")
    (folder / orphan["shard"][0]).with_suffix(".json").unlink()  # the driver died before its entry was written
    (folder / "shard-dd-000000009.h5.partial-1-2").write_bytes(b"half a shard")

    summary = extract_features(ExtractConfig(data=tiny_dataset, cache=cache, weights="none"))

    assert (summary.shards.resumed, summary.shards.discarded, summary.shards.written) == (1, 2, 0)
    assert summary.resumed == len(TRAIN)
    assert sum(split.extracted for split in summary.splits) == 12 - len(TRAIN)
    assert not folder.exists()
    with FeatureStore(cache / "features.h5") as store:
        train = store.read("train")
        planted = [name for name, row in zip(train.paths, train.features) if (row == PLANTED).all()]
        assert planted == TRAIN
        assert not (store.read("val").features == PLANTED).all(axis=1).any()


def test_a_shard_keeps_each_splits_rows_and_skipped_files(tiny_dataset, header, tmp_path):
    folder = tmp_path / "features.h5.shards"
    folder.mkdir()
    names = [*TRAIN, *VAL]
    batch = a_batch(tiny_dataset, names, 10, 512, broken=TRAIN[1])
    written = write_shard(batch, str(folder), header.to_dict(), "ee")["shard"][0]
    assert written == "shard-ee-000000010.h5"
    entry = ShardEntry.from_dict(json.loads((folder / "shard-ee-000000010.json").read_text()))
    assert (entry.rows, entry.skipped, entry.run, entry.backbone) == (4, 1, "ee", "resnet18")
    with FeatureStore(folder / written) as store:
        assert store.splits == ["train", "val"]
        assert store.read("train").paths == [TRAIN[0], TRAIN[2]]
        assert store.skipped("train") == [(TRAIN[1], "not an image file")]
        assert store.read("val").labels.tolist() == [1, 1]

    entries = [ImageEntry(tiny_dataset / name, name) for name in names]
    batches = list(read_back(entries, dict.fromkeys(range(5), written), folder, 2, 512))
    assert [len(batch.entries) for batch in batches] == [2, 2, 1]
    assert [error for batch in batches for error in batch.errors] == [None, "not an image file", None, None, None]
    assert sum(len(batch.features) for batch in batches) == 4
    with pytest.raises(ShardError, match="no shard holds val/bees/bees_1.jpg"):
        list(read_back(entries, dict.fromkeys(range(4), written), folder, 2, 512))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 2}, "not a manifest entry of format 1"),
        ({"rows": -1}, "row counts are not counts"),
        ({"rows": True}, "row counts are not counts"),
        ({"sha256": "ab"}, "shard name or sha256 is malformed"),
        ({"shard": "../features.h5"}, "shard name or sha256 is malformed"),
        ({"extra": 1}, "fields are missing or of the wrong type"),
    ],
)
def test_a_malformed_manifest_entry_is_refused(change, message):
    good = ShardEntry("shard-ab-000000001.h5", 3, 0, "0" * 64, "headstart 1", "ab", "now", "resnet18", "")
    assert ShardEntry.from_dict(good.to_dict()) == good
    with pytest.raises(ShardError, match=message):
        ShardEntry.from_dict({**good.to_dict(), **change})


def test_a_manifest_entry_vouching_for_another_shard_discards_both(tmp_path):
    features = tmp_path / "features.h5"
    folder = shards_folder(features)
    folder.mkdir()
    (folder / "shard-ab-000000001.h5").write_bytes(b"x")
    other = ShardEntry("shard-ab-000000002.h5", 1, 0, "0" * 64, "headstart 1", "ab", "now", "resnet18", "")
    (folder / "shard-ab-000000001.json").write_text(json.dumps(other.to_dict()))
    assert complete_shards(features) == ([], 1)
    assert list(folder.iterdir()) == []
    remove_shards(features)
    assert not folder.exists()


def test_the_shards_folder_is_the_caches_own(tmp_path):
    assert shards_folder(tmp_path / "features-resnet50.h5") == tmp_path / "features-resnet50.h5.shards"
    inside = tmp_path / "features.h5.shards" / "shard-a-1.h5"
    assert owned_by_cache(inside, tmp_path) == "features.h5.shards/shard-a-1.h5"
    assert owned_by_cache(tmp_path / "features-resnet50.h5.shards", tmp_path) == "features-resnet50.h5.shards"
    assert owned_by_cache(tmp_path / "notes.shards" / "x", tmp_path) is None
