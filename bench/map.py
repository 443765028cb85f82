"""The dataset map's method: t-SNE (scikit-learn, what report.html uses) against UMAP (umap-learn, if installed).

    python -m bench.map [--rows 1000 5000 20000] [--methods tsne umap] [--out /tmp/map-bench.json]

The data are generated FEATURES with a known answer, not images (the ImageNet weights are not available here):
CLASSES clusters in DIM dimensions, non-negative as a backbone's features after a ReLU. Both methods start from
the same PCA to 50 dimensions (heads/pages/map.py). Reported per method and size: the seconds of the 2-D step, and
how well the map keeps the known classes apart: the share of each point's 10 nearest 2-D neighbours in its class
(1.0: every group on its own). UMAP's first call also compiles it (numba): its time is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

CLASSES, DIM = 10, 512


def make_features(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of CLASSES clusters of uneven sizes and spreads in DIM dimensions, and their classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (CLASSES, DIM)) * 0.6
    labels = rng.choice(CLASSES, rows, p=rng.dirichlet(np.full(CLASSES, 2.0)))
    spread = rng.uniform(0.7, 1.3, CLASSES)
    features = centres[labels] + rng.normal(0, 1, (rows, DIM)) * spread[labels, None]
    return np.maximum(features + 0.5, 0).astype(np.float32), labels


def neighbour_agreement(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """The share of each point's k nearest 2-D neighbours that share its class."""
    from sklearn.neighbors import NearestNeighbors

    _, near = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)
    return float((labels[near[:, 1:]] == labels[:, None]).mean())


def _tsne(features: np.ndarray) -> np.ndarray:
    from headstart.heads.pages.map import map_coordinates

    return map_coordinates(features, seed=0)[0]


def _umap(features: np.ndarray) -> np.ndarray:
    import umap
    from sklearn.decomposition import PCA

    reduced = PCA(n_components=50, svd_solver="full").fit_transform(features.astype(np.float64))
    return umap.UMAP(n_components=2, random_state=0).fit_transform(reduced)


def run(rows: list[int], methods: list[str]) -> dict:
    """Seconds and neighbour agreement per method and size."""
    steps = {"tsne": _tsne, "umap": _umap}
    results: dict = {"rows": rows, "load_average": os.getloadavg()[0], "methods": {}}
    for method in methods:
        if method == "umap":
            started = time.perf_counter()
            _umap(make_features(200, seed=1)[0])  # numba compiles on the first call
            results["umap_first_call_seconds"] = round(time.perf_counter() - started, 2)
            print("umap first call (200 rows, compiling)", results["umap_first_call_seconds"], flush=True)
        for count in rows:
            features, labels = make_features(count)
            started = time.perf_counter()
            xy = steps[method](features)
            seconds = time.perf_counter() - started
            entry = {"seconds": round(seconds, 2), "agreement": round(neighbour_agreement(xy, labels), 3)}
            results["methods"].setdefault(method, {})[str(count)] = entry
            print(method, count, entry, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--methods", nargs="+", choices=["tsne", "umap"], default=["tsne", "umap"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/map-bench.json"))
    args = parser.parse_args()
    results = run(args.rows, args.methods)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
