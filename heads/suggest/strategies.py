"""Which unlabeled images to label next: one ranking per strategy, from the head's probabilities and the features.

- margin: 1 - (top probability - second): the calibrated head cannot choose between two classes.
- entropy: the probabilities' entropy over log(classes), in [0, 1]: the head spreads its belief over many classes.
- diversity: k-center greedy (Sener & Savarese, "Active learning for convolutional neural networks: a core-set
  approach", ICLR 2018) in the centred unit-length feature space: each pick is the image farthest from every
  labelled image and every image picked before it, so the picks cover the pool and are never near-copies.
- unknown: the trust model's unknown-image score (heads/trust/unknown.py): images unlike anything labelled.
- combined: k-center greedy whose distance is weighted by the margin's uncertainty: far from what is labelled and
  picked, and hard for the head.
- random: the pool in a seeded random order, the control the others are measured against (python -m bench.suggest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headstart.heads.audit.space import unit_rows
from headstart.heads.suggest.config import STRATEGIES

WHY = {
    "margin": "the head is torn between {first} and {second}",
    "entropy": "the head's belief is spread over the classes (top: {first})",
    "diversity": "far from every labelled image and every earlier suggestion",
    "unknown": "unlike the labelled images (unknown-image score)",
    "combined": "far from what is labelled or suggested, and the head is torn between {first} and {second}",
    "random": "drawn at random",
}


class StrategyError(ValueError):
    """A strategy that cannot run on what the head and the cache hold; the message says what to do."""


@dataclass(frozen=True)
class PoolView:
    """What the strategies see: the pool's probabilities and features, the labelled features, the unknown scores."""

    probabilities: np.ndarray  # float (N, C), the calibrated head's
    features: np.ndarray  # float32 (N, D)
    labelled: np.ndarray  # float32 (M, D): the rows the head was trained on
    unknown: np.ndarray | None = None  # float (N,): the trust model's score; None: the head has no model


@dataclass(frozen=True)
class Ranking:
    """The chosen pool rows, best first, each with its score (higher: label it sooner) and why it was chosen."""

    rows: np.ndarray  # int64 (n,)
    score: np.ndarray  # float64 (n,)
    why: list[str]


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 - (top - second probability) per row, in [0, 1]; 1: a tie."""
    if probabilities.shape[1] < 2:
        return np.zeros(len(probabilities))
    top = np.sort(probabilities, axis=1)[:, -2:]
    return 1.0 - (top[:, 1] - top[:, 0])


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """The entropy of each row over log(classes), in [0, 1]."""
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(max(probabilities.shape[1], 2))


def k_center(features: np.ndarray, labelled: np.ndarray, n: int, weight: np.ndarray | None = None):
    """k-center greedy: n rows, each the farthest (times `weight`) from the labelled rows and the rows picked.

    Distances are Euclidean between centred unit-length rows (heads/audit/space.py); returns (rows, distances).
    """
    centre = labelled.mean(axis=0) if len(labelled) else features.mean(axis=0)
    pool, known = unit_rows(features, centre), unit_rows(labelled, centre)
    nearest = np.full(len(pool), 4.0)  # the largest squared distance between unit vectors
    for start in range(0, len(known), 4096):
        block = known[start : start + 4096]
        nearest = np.minimum(nearest, 2.0 - 2.0 * (pool @ block.T).max(axis=1))
    weight = np.ones(len(pool)) if weight is None else weight
    rows: list[int] = []
    distances: list[float] = []
    for _ in range(min(n, len(pool))):
        value = np.sqrt(np.maximum(nearest, 0.0)) * weight
        value[rows] = -np.inf
        pick = int(np.argmax(value))
        rows.append(pick)
        distances.append(float(value[pick]))
        nearest = np.minimum(nearest, 2.0 - 2.0 * (pool @ pool[pick]))
    return np.array(rows, np.int64), np.array(distances)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:n]


def choose(strategy: str, view: PoolView, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the n pool rows `strategy` would have labelled next, best first."""
    if strategy not in STRATEGIES:
        raise StrategyError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "margin":
        scores = margin_uncertainty(view.probabilities)
    elif strategy == "entropy":
        scores = entropy(view.probabilities)
    elif strategy == "unknown":
        if view.unknown is None:
            raise StrategyError("the head has no unknown-image model: re-run train-head, or pick another --strategy")
        scores = np.asarray(view.unknown, np.float64)
    elif strategy == "random":
        rows = np.random.default_rng(seed).permutation(len(view.features))[:n]
        return rows.astype(np.int64), np.zeros(len(rows))
    else:
        weight = margin_uncertainty(view.probabilities) if strategy == "combined" else None
        return k_center(view.features, view.labelled, n, weight)
    rows = _top(scores, n)
    return rows, scores[rows]


def rank(strategy: str, view: PoolView, n: int, classes: list[str], seed: int = 0) -> Ranking:
    """The n suggestions of `strategy`, with the sentence saying why each was chosen."""
    rows, scores = choose(strategy, view, n, seed)
    order = np.argsort(-view.probabilities[rows], axis=1) if len(rows) else np.zeros((0, 1), np.int64)
    why = []
    for ranked in order:
        second = classes[ranked[1]] if len(ranked) > 1 else classes[ranked[0]]
        why.append(WHY[strategy].format(first=classes[ranked[0]], second=second))
    return Ranking(rows, scores.astype(np.float64), why)
