"""features/untrusted.py through the store: a crafted or damaged features.h5 is refused with one line naming the file
and the fix (re-run extract); nothing in it can point headstart outside the file or outside the data folder."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import make_image, separable, write_features

from headstart.features.store import FeatureStore, StoreError
from headstart.features.untrusted import check_row_path, check_sha256
from headstart.heads.audit import AuditConfig, audit_cache
from headstart.heads.pages.thumbnails import thumbnail


@pytest.fixture
def store_path(tmp_path):
    return write_features(tmp_path / "cache", {"train": separable(12, dim=4), "val": separable(6, seed=1, dim=4)})


def refused(path, *patterns: str, read: bool = True) -> str:
    """The one-line StoreError opening (and reading) path gives; it names the file and says to re-run extract."""
    with pytest.raises(StoreError) as caught:
        with FeatureStore(path) as store:
            if read:
                for split in store.splits:
                    store.read(split)
                    store.stamps(split)
    message = str(caught.value)
    assert str(path) in message and message.endswith("re-run `extract`") and "\n" not in message
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_soft_links_and_their_loops_are_refused(store_path):
    with h5py.File(store_path, "r+") as raw:
        raw["val/loop"] = h5py.SoftLink("/val/loop")
    refused(store_path, "'/val/loop' is a soft link")


def test_a_column_that_is_a_soft_link_is_refused(store_path):
    with h5py.File(store_path, "r+") as raw:
        del raw["val/labels"]
        raw["val/labels"] = h5py.SoftLink("/train/labels")
    refused(store_path, "'/val/labels' is a soft link")


def test_external_links_are_refused(store_path, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["labels"] = np.zeros(6, np.int64)
    with h5py.File(store_path, "r+") as raw:
        del raw["val/labels"]
        raw["val/labels"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/labels")
    refused(store_path, "'/val/labels' is an external link")


def test_external_storage_is_refused_and_never_read(store_path, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 64)
    with h5py.File(store_path, "r+") as raw:
        del raw["val/features"]
        raw.create_dataset("val/features", (6, 4), np.float32, external=[(str(secret), 0, 96)])
    refused(store_path, "'/val/features' keeps its rows in an external file")


def test_virtual_datasets_are_refused(store_path, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["features"] = np.ones((6, 4), np.float32)
    layout = h5py.VirtualLayout((6, 4), np.float32)
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "features", (6, 4))
    with h5py.File(store_path, "r+") as raw:
        del raw["val/features"]
        raw.create_virtual_dataset("val/features", layout)
    refused(store_path, "'/val/features' is a virtual dataset")


def test_a_declared_shape_larger_than_the_file_is_refused_before_anything_is_allocated(store_path):
    with h5py.File(store_path, "r+") as raw:
        del raw["val/features"]
        raw.create_dataset("val/features", (10**9, 4), np.float32, maxshape=(None, 4), chunks=(64, 4))
    refused(store_path, "'/val/features' declares shape (1000000000, 4)", "more than the file's", read=False)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("features", np.zeros((6, 4, 2), np.float32), "not headstart's column"),
        ("features", np.zeros((6, 5), np.float32), "widths [4, 5]"),
        ("features", np.full((6, 4), np.nan, np.float32), "24 non-finite values"),
        ("labels", np.array([0, 1, 2, 0, 1, 0]), "labels run from 0 to 2; 2 classes"),
        ("labels", np.array([0, 1, -1, 0, 1, 0]), "labels run from -1 to 1"),
        ("labels", np.zeros(6, np.float64), "not headstart's column"),
        ("paths", np.array([f"val/ants/{i}.jpg" for i in range(5)] + ["../../secret.jpg"], dtype=object), ".."),
        ("paths", np.array([f"/etc/{i}.jpg" for i in range(6)], dtype=object), "'/etc/0.jpg' is not a relative"),
        ("sha256", np.array(["../../../tmp/x"] * 6, dtype=object), "is not 64 lowercase hexadecimal"),
        ("sha256", np.array(["A" * 64] * 6, dtype=object), "is not 64 lowercase hexadecimal"),
    ],
)
def test_damaged_or_hostile_values_are_one_line(store_path, column, value, expected):
    with h5py.File(store_path, "r+") as raw:
        del raw[f"val/{column}"]
        dtype = h5py.string_dtype("utf-8") if value.dtype == object else value.dtype
        raw.create_dataset(f"val/{column}", data=value, dtype=dtype)
    refused(store_path, expected)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ({"ants": 0}, "is not a non-empty list"),
        (["ants", "ants"], "name a class twice"),
        ([], "non-empty"),
        ([1, 2], "not a non-empty list of names"),
    ],
)
def test_classes_of_the_wrong_type_or_with_duplicates_are_refused(store_path, classes, expected):
    with h5py.File(store_path, "r+") as raw:
        raw.attrs["classes"] = json.dumps(classes)
    refused(store_path, "header", expected, read=False)


def test_row_paths_and_digests_are_checked_as_text():
    for good in ("train/ants/a.jpg", "a b/c..d.png", "train/bees/\\xff.jpg"):
        assert check_row_path(good) == good
    for bad in ("", "/abs.jpg", "a/../../b.jpg", "..", "C:\\x.jpg", "\\\\server\\share\\x.jpg", "a\0b"):
        with pytest.raises(ValueError):
            check_row_path(bad)
    assert check_sha256("0" * 64)
    for bad in ("0" * 63, "0" * 65, "g" * 64, "../" + "0" * 61):
        with pytest.raises(ValueError):
            check_sha256(bad)


def test_a_digest_that_is_a_path_never_makes_the_thumbnail_cache_read_another_file(tmp_path):
    image = make_image(tmp_path / "data" / "a.png", seed=1)
    secret = make_image(tmp_path / "secret.jpg", size=(64, 64), seed=2, fmt="JPEG")
    cache = tmp_path / "cache"
    (cache / "thumbnails" / "128").mkdir(parents=True)  # as after an earlier report
    hostile = "/".join([".."] * 8) + str(secret.with_suffix(""))  # cache/thumbnails/128/<2 chars>/<this>.jpg
    got = thumbnail(image, hostile, cache)
    assert got is not None and got != secret.read_bytes()
    assert thumbnail(image, None, cache) == got  # the thumbnail of the image itself


def test_a_crafted_features_file_cannot_make_audit_embed_a_file_from_outside_the_dataset(tmp_path):
    data = tmp_path / "data"
    secret = make_image(tmp_path / "secret" / "private.jpg", size=(64, 64), seed=3, fmt="JPEG")
    features, labels = separable(16, dim=4)
    path = write_features(tmp_path / "cache", {"train": (features, labels), "val": separable(8, seed=1, dim=4)})
    with h5py.File(path, "r+") as raw:
        raw.attrs["data_root"] = str(data)
        raw["train/paths"][0] = "../secret/private.jpg"
    with pytest.raises(StoreError, match="'../secret/private.jpg' is not a relative path inside the data folder"):
        audit_cache(AuditConfig(cache=tmp_path / "cache", curve_seeds=1))
    assert not (tmp_path / "cache" / "audit").exists()
    with h5py.File(path, "r+") as raw:
        raw["train/paths"][0] = "train/ants/0.jpg"
        raw["train/sha256"][0] = "/".join([".."] * 8) + str(secret.with_suffix(""))
    with pytest.raises(StoreError, match="is not 64 lowercase hexadecimal digits"):
        audit_cache(AuditConfig(cache=tmp_path / "cache", curve_seeds=1))
    assert not (tmp_path / "cache" / "audit").exists()
