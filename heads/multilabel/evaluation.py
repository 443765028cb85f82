"""evaluate on a multi-label head: a folder of class folders (the same content in several folders is one image with
their labels, as extract --multi-label reads it) -> the multi-label metrics and the images whose predicted set is
wrong.

A wrong image's `true` and `predicted` are its label sets, `|`-joined; its confidence is that of its most confident
wrong decision (an extra label's probability, or one minus a missed label's).
"""

from __future__ import annotations

import hashlib
from contextlib import closing
from typing import TYPE_CHECKING

import numpy as np

from headstart.features.engines.batches import ProgressCallback
from headstart.features.folder import DatasetError, ImageEntry, find_labeled_images, text_path
from headstart.features.sources.multilabel import label_matrix
from headstart.heads.multilabel.metrics import multilabel_summary
from headstart.heads.multilabel.predictions import SEPARATOR

if TYPE_CHECKING:
    from headstart.heads.predict.predictor import Predictor

Wrong = tuple[str, str, str, float]  # path, true set, predicted set, confidence: evaluate's Mistake


def _by_content(entries: list[ImageEntry], classes: int) -> tuple[list[ImageEntry], np.ndarray]:
    """One entry per file content (the first found) and the (N, classes) 0/1 matrix of its folders' labels."""
    first: dict[str, int] = {}
    kept: list[ImageEntry] = []
    rows: list[set[int]] = []
    for entry in entries:
        try:
            key = hashlib.sha256(entry.path.read_bytes()).hexdigest()
        except OSError:
            key = f"unreadable:{entry.path}"  # predict reports why it cannot read it
        if key not in first:
            first[key] = len(kept)
            kept.append(entry)
            rows.append(set())
        rows[first[key]].add(entry.label)
    targets = np.zeros((len(kept), classes), np.uint8)
    for row, labels in enumerate(rows):
        targets[row, sorted(labels)] = 1
    return kept, targets


def evaluate_multilabel(
    folder, predictor: Predictor, on_progress: ProgressCallback | None = None, entries: list[ImageEntry] | None = None
) -> tuple[int, dict, list[Wrong], list[tuple[str, str]]]:
    """Score a multi-label head on folder/<class>/ (or on `entries`, a label table's rows with their label sets,
    evaluate --labels): the images found, the metrics at its thresholds, the wrong sets most confident first, the
    unreadable files."""
    classes = predictor.classes
    thresholds = np.asarray(predictor.checkpoint.thresholds)
    where = "in its class folders" if entries is None else "named by the label table"
    if entries is None:
        entries, targets = _by_content(find_labeled_images(folder, classes), len(classes))
    else:
        targets = label_matrix(entries, len(classes))
    with closing(predictor.predict(entries, on_progress)) as predictions:
        scored = list(zip(targets, predictions))
    read = [(truth, prediction) for truth, prediction in scored if prediction.probabilities is not None]
    if not read:
        raise DatasetError(f"{text_path(folder)}: no readable images {where}; check the folder")
    truth = np.stack([row for row, _ in read]).astype(bool)
    probabilities = np.stack([np.asarray(prediction.probabilities) for _, prediction in read])
    predicted = probabilities >= thresholds
    mistakes: list[Wrong] = []
    for row in np.flatnonzero((predicted != truth).any(1)):
        wrong = predicted[row] != truth[row]
        sure = np.where(predicted[row], probabilities[row], 1 - probabilities[row])[wrong].max()
        true, guess = (SEPARATOR.join(np.asarray(classes)[labels]) for labels in (truth[row], predicted[row]))
        mistakes.append((read[row][1].path, true, guess, float(sure)))
    mistakes.sort(key=lambda mistake: (-mistake[3], mistake[0]))
    failed = [(p.path, p.error or "") for _, p in scored if p.probabilities is None]
    summary = multilabel_summary(truth, probabilities, thresholds, classes)
    return len(entries), summary, mistakes, failed
