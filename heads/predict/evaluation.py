"""The evaluate step: a labelled folder -> accuracy, per-class report, confusion matrix, confident mistakes.

Every file under the class folders is accounted for: images scored, images that could not be read (`failed`),
and other files listed by kind (`skipped`, features/folder.py's kinds). The images whose content (sha256) is in
the cache's train split are counted (`training`): their score is not a held-out one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.features.engines.batches import ProgressCallback
from headstart.features.files.cachedir import HEAD_FILE, chosen_features, features_file
from headstart.features.files.csvfile import CsvWriter, safe_path
from headstart.features.files.outputs import Output, check_outputs, text_output
from headstart.features.folder import DatasetError, ImageEntry, scan_labeled_images, text_path
from headstart.heads.config import EvaluateTable, PredictConfig
from headstart.heads.predict.predictor import Predictor
from headstart.heads.report import classification_summary

WRONG_COLUMNS = ["path", "true", "predicted", "confidence"]


@dataclass
class Mistake:
    """An image the head labelled wrongly, with the confidence of its wrong label."""

    path: str
    true: str
    predicted: str
    confidence: float


@dataclass
class Evaluation:
    """The evaluate step's result: the images seen, the scores, the mistakes and the unreadable files."""

    images: int
    summary: dict
    mistakes: list[Mistake]  # most confident first
    failed: list[tuple[str, str]] = field(default_factory=list)
    flagged: int | None = None  # images the unknown-image model flags; None: the head has none (why: no_unknown)
    unknown_rate: float | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files not read (or table rows not scored), why
    training: int | None = None  # scored images whose content is in the cache's train split; None: not checked
    from_table: bool = False  # evaluate --labels: `skipped` holds the table's rows not scored
    no_unknown: str = ""  # why the head carries no unknown-image model (HeadCheckpoint.no_unknown_reason)


def evaluate_head(
    folder: str | os.PathLike,
    cache: str | os.PathLike,
    out: str | os.PathLike,
    config: PredictConfig = PredictConfig(),
    on_progress: ProgressCallback | None = None,
    html: str | os.PathLike | None = None,
    table: EvaluateTable | None = None,
) -> Evaluation:
    """The evaluate step in one call: score the head in cache on folder and write its mistakes to out (and html).
    With `table`, the images and classes are the label table's rows, its paths relative to folder."""
    pages = [Output("--html", Path(html))] if html is not None else []
    check_outputs(cache, Output("--out", Path(out), streamed=True), *pages)
    predictor = Predictor.load(Path(cache) / HEAD_FILE, config)
    train = train_digests(cache, predictor.checkpoint.backbone)
    if table is None:
        evaluation = evaluate_folder(folder, predictor, on_progress, train)
    else:
        multi = predictor.checkpoint.multilabel is not None  # its entries carry label sets
        entries, skipped = _table_entries(table, Path(folder), predictor.classes, multi)
        evaluation = evaluate_folder(folder, predictor, on_progress, train, entries=entries)
        evaluation.skipped, evaluation.from_table = skipped, True
    write_mistakes(out, evaluation.mistakes)
    if html is not None:
        from headstart.heads.pages.page import write_evaluation_page

        features = Path(cache) / features_file(predictor.checkpoint.backbone)  # the head's backbone's
        write_evaluation_page(Path(html), Path(folder), evaluation, Path(cache), features=features)
    return evaluation


def _table_entries(
    table: EvaluateTable, root: Path, classes: list[str], multi_label: bool = False
) -> tuple[list[ImageEntry], list]:
    from headstart.features.sources.labels import scored_entries
    from headstart.features.sources.tables import TableColumns

    columns = TableColumns(path=table.path_column, label=table.label_column, multi_label=multi_label)
    return scored_entries(table.path, root, columns, classes, table.strict, multi_label)


class TrainDigests:
    """The content hashes of a features file's train split, looked up a chunk at a time: evaluate never holds them
    whole (a ten-million-row cache has ten million), so its memory does not grow with the cache's rows."""

    def __init__(self, path: Path):
        from headstart.features.store import FeatureStore

        with FeatureStore(path):  # a damaged file is refused before any image is scored
            self.path = path

    def intersection(self, digests: Iterable[str]) -> set[str]:
        """Those of `digests` that the train split holds (a frozenset answers the same question)."""
        from headstart.features.chunks import found_digests
        from headstart.features.store import FeatureStore

        with FeatureStore(self.path) as store:
            return found_digests(store, "train", set(digests))


def train_digests(cache: str | os.PathLike, backbone: str) -> TrainDigests | None:
    """The train split's content hashes of the cache's features for the head's backbone; None when the cache
    holds no such features file (a head copied alone)."""
    path = chosen_features(cache, backbone)
    return TrainDigests(path) if path.exists() else None


def evaluate_folder(
    folder: str | os.PathLike,
    predictor: Predictor,
    on_progress: ProgressCallback | None = None,
    train: frozenset[str] | TrainDigests | None = None,
    entries: list[ImageEntry] | None = None,
) -> Evaluation:
    """Label every image of folder/<class>/ (or the labelled `entries` given) with the predictor and score it
    against its class (a multi-label head: against each image's label set, heads/multilabel/evaluation.py);
    `train`: the train split's content hashes, to count the scored images that are training images."""
    if predictor.checkpoint.multilabel is not None:
        from headstart.heads.multilabel.evaluation import evaluate_multilabel

        images, summary, wrong, failed = evaluate_multilabel(folder, predictor, on_progress, entries)
        return Evaluation(images, summary, [Mistake(*mistake) for mistake in wrong], failed)
    classes = predictor.classes
    where = "in its class folders" if entries is None else "named by the label table"
    skipped: list[tuple[str, str]] = []
    if entries is None:
        entries, skipped = scan_labeled_images(folder, classes)
    truth, guesses, mistakes, failed = [], [], [], []
    with closing(predictor.predict(entries, on_progress)) as predictions:
        scored = list(zip(entries, predictions))
    for entry, prediction in scored:
        if prediction.probabilities is None:
            assert prediction.error is not None  # Predictor.predict gives an unread image its reason
            failed.append((prediction.path, prediction.error))
            continue
        guess = int(np.argmax(prediction.probabilities))
        truth.append(entry.label)
        guesses.append(guess)
        if guess != entry.label:
            mistakes.append(
                Mistake(prediction.path, classes[entry.label], classes[guess], float(prediction.probabilities[guess]))
            )
    if not truth:
        raise DatasetError(f"{text_path(folder)}: no readable images {where}; check the folder")
    mistakes.sort(key=lambda mistake: (-mistake.confidence, mistake.path))
    summary = classification_summary(np.asarray(truth, np.int64), np.asarray(guesses, np.int64), classes)
    rate = predictor.unknown_rate
    flagged = sum(bool(prediction.unknown) for _, prediction in scored) if rate is not None else None
    training = None
    if train is not None:
        found = train.intersection(prediction.sha256 for _, prediction in scored if prediction.sha256)
        training = sum(prediction.sha256 in found for _, prediction in scored)
    missing = predictor.checkpoint.no_unknown_reason if rate is None else ""
    return Evaluation(len(entries), summary, mistakes, failed, flagged, rate, skipped, training, no_unknown=missing)


def write_mistakes(out: str | os.PathLike, mistakes: list[Mistake]) -> None:
    """The wrong images as CSV, most confident first, through the one CSV writer (features/files/csvfile.py):
    columns path, true, predicted (class names), confidence."""
    with text_output(out) as handle:
        writer = CsvWriter(handle, WRONG_COLUMNS)
        for mistake in mistakes:
            writer.writerow([safe_path(mistake.path), mistake.true, mistake.predicted, f"{mistake.confidence:.6f}"])
