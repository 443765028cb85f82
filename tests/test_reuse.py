"""features.reuse: which rows of a previous features file stand for the files scanned now, and why a whole file
cannot (another backbone, weights, preprocessing or precision)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from contextlib import closing

import numpy as np
import pytest
from conftest import make_image

from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.folder import ImageEntry
from headstart.features.provenance import PREPROCESSINGS, WeightsIdentity
from headstart.features.reuse import PreviousRows, incompatibility
from headstart.features.store import FeaturesHeader, Rows, StoreWriter

HEADER = FeaturesHeader(
    producer="headstart test",
    created="2026-01-02T03:04:05+00:00",
    classes=["a", "b"],
    backbone="resnet18",
    weights=WeightsIdentity("file", "/w/one.pth", "ab" * 32),
    preprocessing=PREPROCESSINGS["imagenet"],
    precision="fp32",
    data_root="/data",
    torch_version="2",
    torchvision_version="0",
)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"backbone": "resnet50"}, "backbone changed (resnet18 -> resnet50)"),
        ({"weights": WeightsIdentity("none", "random init, seed 0", "")}, "weights changed"),
        ({"preprocessing": PREPROCESSINGS["notebook"]}, "preprocessing changed (imagenet -> notebook)"),
        ({"precision": "bf16"}, "precision changed (fp32 -> bf16)"),
    ],
)
def test_incompatibility_names_what_changed(change, reason):
    assert reason in incompatibility(HEADER, dataclasses.replace(HEADER, **change))


def test_the_same_weights_elsewhere_and_another_day_are_compatible():
    moved = dataclasses.replace(
        HEADER,
        weights=WeightsIdentity("file", "/elsewhere/copy.pth", "ab" * 32),
        created="2027-01-01T00:00:00+00:00",
        data_root="/other",
    )
    assert incompatibility(HEADER, moved) is None


@pytest.fixture
def files(tmp_path):
    """Three images and a store whose rows were computed from them, with their stamps, and a feature row each."""
    paths = [make_image(tmp_path / "data" / f"{name}.jpg", seed=seed) for seed, name in enumerate("xyz")]
    stats = [os.stat(path) for path in paths]
    writer = StoreWriter(tmp_path / FEATURES_FILE, HEADER, dim=2)
    writer.begin_split("train")
    writer.append(
        Rows(
            np.asarray([[0, 0], [1, 1], [2, 2]], np.float32),
            np.zeros(3, np.int64),
            ["x.jpg", "y.jpg", "z.jpg"],
            np.asarray([stat.st_size for stat in stats], np.int64),
            np.asarray([stat.st_mtime_ns for stat in stats], np.int64),
            [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths],
        )
    )
    writer.end_split([])
    writer.commit()
    return tmp_path, [ImageEntry(path, path.name) for path in paths]


def test_unchanged_touched_and_changed_files(files):
    folder, (same, touched, changed) = files
    os.utime(touched.path, ns=(1, 1))  # same bytes, another time: found by its content hash
    make_image(changed.path, seed=99)
    new = ImageEntry(folder / "data" / "new.jpg", "new.jpg")
    with closing(PreviousRows(folder / FEATURES_FILE, HEADER)) as previous:
        plan = previous.plan({"train": [same, touched, changed, new]})
        assert plan.todo == [changed, new]
        reused = {entry.name: reuse for entry, reuse in plan.splits["train"] if reuse is not None}
        assert reused["y.jpg"][1].mtime_ns == 1  # the stamp written is the file's current one
        rows = previous.features([cached for cached, _ in reused.values()])
        assert sorted(row.tolist() for row in rows.values()) == [[0.0, 0.0], [1.0, 1.0]]
    assert previous.rebuild_reason is None and previous.resumed_from == []


def test_an_incompatible_file_is_not_reused_and_says_why(files):
    folder, entries = files
    with closing(PreviousRows(folder / FEATURES_FILE, dataclasses.replace(HEADER, precision="bf16"))) as previous:
        assert previous.plan({"train": entries}).todo == entries
    assert previous.rebuild_reason == "precision changed (fp32 -> bf16)"
