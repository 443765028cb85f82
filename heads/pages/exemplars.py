"""evaluate --html's class examples from a features file above the in-memory limit, read a chunk at a time.

page.py's `class_exemplars` picks, per class, the train image nearest its class's centroid in the centred
unit-length space; this is the same choice in three passes over the train split's chunks (the train mean; each
class's mean unit row; each row's similarity to it), so peak memory is one chunk whatever the number of rows. The
mean is summed in float64 here and by numpy's pairwise float32 sum in memory, so a near-tie may pick the other
image; below the limit page.py's in-memory choice is used unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headstart.features.chunks import ReadingPlan, iter_chunks
from headstart.features.store import FeatureStore
from headstart.heads.audit.space import unit_rows


def _train_mean(store: FeatureStore, plan: ReadingPlan) -> np.ndarray:
    total, seen = np.zeros(plan.width), 0
    for _, features, _ in iter_chunks(store, "train", plan.chunk_rows):
        total += features.sum(axis=0, dtype=np.float64)
        seen += len(features)
    return (total / max(1, seen)).astype(np.float32)


def _class_means(store: FeatureStore, plan: ReadingPlan, centre: np.ndarray, classes: int) -> np.ndarray:
    """Each class's mean centred unit-length train row (float32, zeros for a class without rows)."""
    sums, counts = np.zeros((classes, plan.width)), np.zeros(classes)
    for _, features, labels in iter_chunks(store, "train", plan.chunk_rows):
        np.add.at(sums, labels, unit_rows(features, centre).astype(np.float64))
        counts += np.bincount(labels, minlength=classes)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def nearest_to_centroids(store: FeatureStore, plan: ReadingPlan) -> dict[int, int]:
    """Class number -> the train row nearest that class's centroid (the first of equals), for classes with rows."""
    classes = len(store.header.classes)
    centre = _train_mean(store, plan)
    means = _class_means(store, plan, centre, classes)
    best: dict[int, tuple[float, int]] = {}
    for start, features, labels in iter_chunks(store, "train", plan.chunk_rows):
        scores = np.einsum("ij,ij->i", unit_rows(features, centre), means[labels])
        for k in np.unique(labels):
            members = np.flatnonzero(labels == k)
            row = int(members[np.argmax(scores[members])])
            if int(k) not in best or scores[row] > best[int(k)][0]:
                best[int(k)] = (float(scores[row]), start + row)
    return {k: row for k, (_, row) in sorted(best.items())}


def streamed_examples(path: Path, plan: ReadingPlan) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The file's data root, and per class name the (path, sha256) of the train image nearest its centroid, the
    file read a chunk at a time (page.py makes the thumbnails)."""
    with FeatureStore(path) as store:
        if not ("train" in store.splits and store.count("train")):
            raise ValueError(f"{path} has no training rows: check the dataset and re-run `extract`")
        examples = {}
        for k, row in nearest_to_centroids(store, plan).items():
            one = store.read("train", slice(row, row + 1))
            examples[store.header.classes[k]] = (one.paths[0], one.sha256[0])
        return Path(store.header.data_root), examples
