"""heads.predict.evaluation: accuracy and the report against each image's class folder, the mistakes sorted
most confident first and written as CSV, unreadable images listed apart. A stub engine fixes every logit."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from headstart.features.engines.batches import EmbeddedBatch
from headstart.features.folder import NOT_AN_IMAGE, NOT_IMAGEFOLDER, DatasetError, skip_kind
from headstart.features.images import FileStamp
from headstart.heads.checkpoint import HeadCheckpoint
from headstart.heads.linear import LinearHead
from headstart.heads.predict.evaluation import evaluate_folder, write_mistakes
from headstart.heads.predict.predictor import Predictor

# file -> its features, which an identity head turns into logits: (3, 0) is "ants" with p = 0.953
LOGITS = {
    "ants/a1.jpg": (3, 0),
    "ants/a2.jpg": (0, 1),
    "ants/a3.jpg": None,
    "bees/b1.jpg": (0, 2),
    "bees/b2.jpg": (4, 0),
    "bees/b3.jpg": (3, 1),
}


def _digest(path) -> str:
    """The stub's content hash: the file's class and name stand for its content."""
    return hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).hexdigest()


@dataclass
class StubEngine:
    """Embeds each file as LOGITS says (None: an unreadable file), one batch, in input order."""

    batch_size: int = 32

    def embed(self, entries, backbone, preprocessing, on_progress=None):
        wanted = [LOGITS[entry.path.parent.name + "/" + entry.path.name] for entry in entries]
        stamps = [
            None if logits is None else FileStamp(1, 1, _digest(entry.path)) for logits, entry in zip(wanted, entries)
        ]
        errors = ["not an image file" if logits is None else None for logits in wanted]
        features = np.asarray([logits for logits in wanted if logits is not None], np.float32).reshape(-1, 2)
        yield EmbeddedBatch(entries, stamps, errors, features)


@pytest.fixture
def predictor() -> Predictor:
    head = LinearHead(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    checkpoint = HeadCheckpoint(head.eval(), ["ants", "bees"], "resnet18", {}, {}, "fp32", {}, {})
    return Predictor(checkpoint, backbone=None, preprocessing=None, engine=StubEngine())


@pytest.fixture
def folder(tmp_path):
    for name in LOGITS:
        (tmp_path / "labelled" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "labelled" / name).write_bytes(b"stub")
    return tmp_path / "labelled"


def test_scores_mistakes_and_failures(folder, predictor):
    evaluation = evaluate_folder(folder, predictor)
    assert evaluation.images == 6
    assert evaluation.summary["accuracy"] == pytest.approx(2 / 5)  # a1 and b1 right; a3 unreadable
    assert evaluation.summary["confusion"] == [[1, 1], [2, 1]]
    wrong = [(mistake.path.rsplit("/", 2)[-2:], mistake.true, mistake.predicted) for mistake in evaluation.mistakes]
    assert wrong == [
        (["bees", "b2.jpg"], "bees", "ants"),
        (["bees", "b3.jpg"], "bees", "ants"),
        (["ants", "a2.jpg"], "ants", "bees"),
    ]
    confidences = [mistake.confidence for mistake in evaluation.mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == pytest.approx(float(torch.softmax(torch.tensor([4.0, 0.0]), 0)[0]))
    failed = [(path.rsplit("/", 1)[-1], reason) for path, reason in evaluation.failed]
    assert failed == [("a3.jpg", "not an image file")]


def test_mistakes_csv_lists_them_most_confident_first(folder, predictor, tmp_path):
    evaluation = evaluate_folder(folder, predictor)
    write_mistakes(tmp_path / "wrong.csv", evaluation.mistakes)
    with open(tmp_path / "wrong.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "true", "predicted", "confidence"]
    assert [row[1:3] for row in rows[1:]] == [["bees", "ants"]] * 2 + [["ants", "bees"]]
    assert [row[0] for row in rows[1:]] == [mistake.path for mistake in evaluation.mistakes]
    assert rows[2][3] == f"{evaluation.mistakes[1].confidence:.6f}"


def test_a_folder_without_readable_images_is_an_error(tmp_path, predictor):
    (tmp_path / "only" / "ants").mkdir(parents=True)
    (tmp_path / "only" / "ants" / "a3.jpg").write_bytes(b"stub")
    with pytest.raises(DatasetError, match="no readable images"):
        evaluate_folder(tmp_path / "only", predictor)


def test_other_files_are_listed_by_kind_and_training_images_counted(folder, predictor):
    (folder / "ants" / "notes.txt").write_text("not an image")
    (folder / "bees" / "anim.gif").write_bytes(b"GIF89a")
    train = frozenset({_digest(folder / "ants" / "a1.jpg"), _digest(folder / "bees" / "b2.jpg"), "f" * 64})
    evaluation = evaluate_folder(folder, predictor, train=train)
    assert evaluation.images == 6 and evaluation.training == 2  # a1 and b2; a3 unreadable, the other digest unseen
    assert sorted((path.rsplit("/", 1)[-1], skip_kind(reason)) for path, reason in evaluation.skipped) == [
        ("anim.gif", NOT_IMAGEFOLDER),
        ("notes.txt", NOT_AN_IMAGE),
    ]
    assert evaluate_folder(folder, predictor).training is None  # no train split to compare with: not claimed
