"""heads.predict.runner: the predict step in one call: the cache's head over files and folders into one file or
stdout, counting labelled and unreadable images. A stub engine stands in for the backbone."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import headstart.heads.predict.predictor as predictor_module
from headstart.features.engines.batches import EmbeddedBatch
from headstart.features.folder import DatasetError
from headstart.features.images import FileStamp
from headstart.features.provenance import PREPROCESSINGS, WeightsIdentity
from headstart.heads.checkpoint import HeadCheckpoint, save_head
from headstart.heads.config import PredictConfig
from headstart.heads.linear import LinearHead
from headstart.heads.predict.runner import predict_files


class StubEngine:
    """Embeds a file as its first two bytes (then zeros, resnet18's width); a file starting with 'x' is unreadable."""

    batch_size = 32
    driver_device = torch.device("cpu")

    def embed(self, entries, backbone, preprocessing, on_progress=None):
        data = [entry.path.read_bytes() for entry in entries]
        errors = ["not an image file" if raw.startswith(b"x") else None for raw in data]
        features = np.asarray([list(raw[:2]) for raw, error in zip(data, errors) if error is None], np.float32)
        if on_progress:
            on_progress(len(entries), len(entries))
        yield EmbeddedBatch(
            entries,
            [None if error else FileStamp(1, 1, "") for error in errors],
            errors,
            np.pad(features.reshape(-1, 2), ((0, 0), (0, 510))),
        )


RANDOM_INIT = {"kind": "none", "name": "random init, seed 0", "sha256": ""}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_module, "build_engine", lambda config: StubEngine())
    # A stand-in backbone of resnet18's width: head.pt is checked against its backbone on load.
    stub_backbone = SimpleNamespace(width=512, identity=WeightsIdentity.from_dict(RANDOM_INIT))
    monkeypatch.setattr(predictor_module, "load_backbone", lambda *args, **kwargs: stub_backbone)
    head = LinearHead(512, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2, 512))
        head.bias.zero_()
    save_head(
        tmp_path / "cache" / "head.pt",
        HeadCheckpoint(
            head, ["ants", "bees"], "resnet18", RANDOM_INIT, PREPROCESSINGS["imagenet"].describe(), "fp32", {}, {}
        ),
    )
    return tmp_path / "cache"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(bytes([9, 1]))  # logits (9, 1): ants
    (folder / "deep" / "b.png").write_bytes(bytes([0, 5]))  # bees
    (folder / "c.jpg").write_bytes(b"xx")  # unreadable
    return folder


def test_files_in_one_csv_sorted_with_counts(cache, images, tmp_path):
    progress = []
    summary = predict_files(
        [images],
        tmp_path / "p.csv",
        cache,
        PredictConfig(),
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (summary.predicted, summary.failed, summary.out) == (2, 1, str(tmp_path / "p.csv"))
    assert progress == [(3, 3)]
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["path"].rsplit("imgs/", 1)[1], row["label"], row["error"]) for row in rows] == [
        ("a.jpg", "ants", ""),
        ("c.jpg", "", "not an image file"),
        ("deep/b.png", "bees", ""),
    ]


def test_jsonl_to_stdout_with_top_k(cache, images, capsys):
    summary = predict_files([images / "a.jpg"], "-", cache, output_format="jsonl", top_k=2)
    assert (summary.predicted, summary.failed) == (1, 0)
    record = json.loads(capsys.readouterr().out)
    assert [entry["label"] for entry in record["top_k"]] == ["ants", "bees"]
    assert record["confidence"] == pytest.approx(float(torch.softmax(torch.tensor([9.0, 1.0]), 0)[0]))


def test_no_images_is_an_error_and_writes_nothing(cache, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found in"):
        predict_files([tmp_path / "empty"], tmp_path / "p.csv", cache)
    assert not (tmp_path / "p.csv").exists()


def test_files_that_are_not_images_are_listed_and_counted_by_kind(cache, images, tmp_path):
    (images / "notes.txt").write_text("x")
    (images / "deep" / ".DS_Store").write_bytes(b"x")
    (images / "anim.gif").write_bytes(bytes([9, 1]))  # a GIF is read: the stub embeds its bytes
    summary = predict_files([images], tmp_path / "p.csv", cache)
    assert (summary.predicted, summary.failed) == (3, 1)
    assert [(name.rsplit("imgs/", 1)[1], reason.split(":")[0]) for name, reason in summary.skipped] == [
        ("deep/.DS_Store", "not an image"),
        ("notes.txt", "not an image"),
    ]
    assert summary.not_read == {"not an image": 2, "unreadable": 1}


def test_a_folder_of_files_that_are_not_images_says_what_they_are(cache, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no pictures")
    with pytest.raises(DatasetError, match=r"no images found in .*1 other file\(s\): not an image: \.txt extension"):
        predict_files([tmp_path / "docs"], tmp_path / "p.csv", cache)


def test_an_interrupted_predict_resumes_from_the_rows_it_had_done(cache, tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(10):
        (folder / f"{index}.jpg").write_bytes(bytes([index, 9 - index]))
    clean = predict_files([folder], tmp_path / "clean.csv", cache)
    given = []

    class Interrupted(StubEngine):
        def embed(self, entries, backbone, preprocessing, on_progress=None):
            given.append(len(entries))
            for start in range(0, len(entries), 3):
                if start == 6 and len(given) == 1:
                    raise KeyboardInterrupt
                yield from super().embed(entries[start : start + 3], backbone, preprocessing)

    monkeypatch.setattr(predictor_module, "build_engine", lambda config: Interrupted())
    out = tmp_path / "p.csv"
    with pytest.raises(KeyboardInterrupt):
        predict_files([folder], out, cache)
    assert not out.exists() and (tmp_path / ".p.csv.headstart-partial").is_file()
    summary = predict_files([folder], out, cache)
    assert given == [10, 4] and summary.resumed == 6 and clean.resumed == 0
    assert out.read_bytes() == (tmp_path / "clean.csv").read_bytes()
    assert not (tmp_path / ".p.csv.headstart-partial").exists()
