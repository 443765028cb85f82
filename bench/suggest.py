"""A simulated labelling loop: which images `suggest` picks, against picking at random, on data with known labels.

    python -m bench.suggest [--seeds 5] [--rounds 10] [--per-round 20] [--out bench/results/suggest.json]

The data are generated FEATURES, not images: CLASSES classes in DIM dimensions, each class a mixture of MODES
clusters of different sizes, some of them near another class's clusters (so there are hard boundaries and
rare modes, as a backbone's features of real photos have). No backbone runs, so it takes seconds; the ImageNet
weights are not available here, and random-init features of the tutorial's 400 images leave too small a pool.

Per seed: a labelled start of START_PER_CLASS images per class, a pool, and a held-out test set. Each round, a
logistic-regression head is fitted on the labelled rows, its test accuracy recorded, and `per-round` pool images
are chosen by each strategy (heads/suggest/strategies.py, the code `headstart suggest` runs) and labelled. The
unknown score is the trust model's Mahalanobis distance (heads/trust/mahalanobis.py) fitted on the labelled rows.
Reported per strategy: mean test accuracy after each round, and the labels it needed to reach random's final
accuracy (linear between rounds; None: never reached), as a share of random's labels.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from headstart.heads.suggest.strategies import STRATEGIES, PoolView, choose
from headstart.heads.trust import mahalanobis

ROOT = Path(__file__).resolve().parents[1]
CLASSES, DIM, MODES = 10, 32, 4
POOL, TEST = 3000, 2000
START_PER_CLASS = 2
SCALE = 1.5  # cluster spread: random labelling ends near 0.9 accuracy, not saturated


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """POOL + TEST rows of labelled features: per class MODES clusters, with uneven weights and spreads."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (CLASSES, MODES, DIM)) * SCALE
    spread = rng.uniform(0.6, 1.4, (CLASSES, MODES))
    weights = rng.dirichlet(np.full(MODES, 0.7), CLASSES)
    rows = POOL + TEST
    labels = rng.integers(0, CLASSES, rows)
    modes = np.array([rng.choice(MODES, p=weights[label]) for label in labels])
    features = centres[labels, modes] + rng.normal(0, 1, (rows, DIM)) * spread[labels, modes][:, None]
    features = np.maximum(features + 1.0, 0.0)  # non-negative, as a backbone's features after a ReLU are
    return features.astype(np.float32), labels


def _fit(features: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=1.0, max_iter=300).fit(features, labels)


def _probabilities(head: LogisticRegression, features: np.ndarray) -> np.ndarray:
    """Every class's probability, a class the head never saw at 0."""
    out = np.zeros((len(features), CLASSES))
    out[:, head.classes_] = head.predict_proba(features)
    return out


def _unknown(labelled: np.ndarray, labels: np.ndarray, pool: np.ndarray) -> np.ndarray:
    state = mahalanobis.fit(torch.from_numpy(labelled), torch.from_numpy(labels))
    return mahalanobis.score(state, torch.from_numpy(pool)).numpy()


def run_loop(strategy: str, seed: int, rounds: int, per_round: int) -> list[float]:
    """Test accuracy after each round (round 0: the start) of labelling `per_round` images chosen by strategy."""
    features, labels = make_data(seed)
    pool_x, pool_y, test_x, test_y = features[:POOL], labels[:POOL], features[POOL:], labels[POOL:]
    rng = np.random.default_rng(seed + 1000)
    known = [int(rng.choice(np.flatnonzero(pool_y == k))) for k in range(CLASSES) for _ in range(START_PER_CLASS)]
    accuracies = []
    for _ in range(rounds + 1):
        head = _fit(pool_x[known], pool_y[known])
        accuracies.append(float((head.predict(test_x) == test_y).mean()))
        left = np.setdiff1d(np.arange(POOL), known)
        view = PoolView(
            probabilities=_probabilities(head, pool_x[left]),
            features=pool_x[left],
            labelled=pool_x[known],
            unknown=_unknown(pool_x[known], pool_y[known], pool_x[left]) if strategy == "unknown" else None,
        )
        rows, _ = choose(strategy, view, per_round, seed=int(rng.integers(1 << 30)))
        known.extend(int(row) for row in left[rows])
    return accuracies


def labels_to_reach(curve: list[float], labels: list[int], target: float) -> float | None:
    """The labels at which a mean accuracy curve first reaches target, linear between rounds; None: never."""
    for index, accuracy in enumerate(curve):
        if accuracy >= target:
            if index == 0:
                return float(labels[0])
            before = curve[index - 1]
            share = (target - before) / (accuracy - before)
            return labels[index - 1] + share * (labels[index] - labels[index - 1])
    return None


def run(seeds: int, rounds: int, per_round: int, out: Path) -> dict:
    """Every strategy over seeds 0..seeds-1; the figures, also written to out."""
    labels = [CLASSES * START_PER_CLASS + per_round * index for index in range(rounds + 1)]
    curves = {s: np.array([run_loop(s, seed, rounds, per_round) for seed in range(seeds)]) for s in STRATEGIES}
    target = float(curves["random"].mean(axis=0)[-1])
    results = {}
    for strategy, curve in curves.items():
        mean = curve.mean(axis=0)
        needed = labels_to_reach(mean.tolist(), labels, target)
        results[strategy] = {
            "mean_accuracy": [round(float(v), 4) for v in mean],
            "std_accuracy": [round(float(v), 4) for v in curve.std(axis=0)],
            "labels_to_reach_random_final": None if needed is None else round(needed, 1),
            "share_of_random_labels": None if needed is None else round(needed / labels[-1], 3),
        }
    figures = {
        "command": f"python -m bench.suggest --seeds {seeds} --rounds {rounds} --per-round {per_round}",
        "data": {"classes": CLASSES, "dim": DIM, "modes": MODES, "pool": POOL, "test": TEST, "generated": "features"},
        "seeds": seeds,
        "labels": labels,
        "random_final_accuracy": round(target, 4),
        "strategies": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suggest.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny fits: more threads only contend (measured 10x slower on a shared machine)
    with threadpool_limits(1):
        figures = run(args.seeds, args.rounds, args.per_round, args.out)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
