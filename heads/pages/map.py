"""The dataset map: cached rows -> a seeded stratified sample -> PCA to 50 dimensions -> t-SNE's 2-D coordinates.

One job: where each sampled row goes on report.html's map. Deterministic for a seed (the sample, PCA's full SVD and
t-SNE's random state all take it). t-SNE (scikit-learn) and not UMAP: measured by `python -m bench.map`
(docs/features-out.md). At most `limit` rows are placed: above it, a stratified sample by split and class, each
stratum in proportion, so the map's groups keep their sizes; the rule is returned as a sentence the page shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAP_POINTS = 1000  # report.html's map: at most this many rows (t-SNE's time grows with them: docs/features-out.md)
PCA_DIMS = 50
PERPLEXITY = 30.0
TSNE_MIN_ROWS = 12  # fewer rows: the first two principal components (t-SNE needs perplexity < rows)


@dataclass(frozen=True)
class DatasetMap:
    """The rows placed (row numbers of the table they came from, ascending), their x, y in [0, 1], how they were
    chosen and placed, as sentences."""

    rows: np.ndarray
    xy: np.ndarray  # float32 (len(rows), 2)
    total: int
    rule: str
    method: str


def stratified_sample(strata: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` row numbers (ascending): each stratum in proportion to its size, the remainders to the largest
    fractions, and a stratum too small for its share keeps one row while the limit allows."""
    total = len(strata)
    if total <= limit:
        return np.arange(total)
    keys, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quota = counts * (limit / total)
    take = np.floor(quota).astype(np.int64)
    empty = np.flatnonzero(take == 0)
    first = empty[np.argsort(-counts[empty], kind="stable")][: limit - int(take.sum())]
    take[first] += 1
    left = limit - int(take.sum())
    if left > 0:
        take[np.argsort(-(quota - take), kind="stable")[:left]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == k), int(take[k]), replace=False) for k in range(len(keys))]
    return np.sort(np.concatenate(chosen))


def _scaled(xy: np.ndarray) -> np.ndarray:
    """Into [0, 1], one scale for both axes (the map's distances keep their ratio)."""
    low = xy.min(axis=0)
    span = float((xy.max(axis=0) - low).max())
    if span <= 0:
        return np.full_like(xy, 0.5, dtype=np.float32)
    centred = (xy - low) / span + (1 - (xy.max(axis=0) - low) / span) / 2
    return np.round(centred, 4).astype(np.float32)


def map_coordinates(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """Each row's x, y in [0, 1]: PCA to PCA_DIMS dimensions, then t-SNE (TSNE_MIN_ROWS rows or more); and how."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rows = len(features)
    if rows < 2:
        return np.full((rows, 2), 0.5, np.float32), "one row: in the middle"
    data = features.astype(np.float64)
    dims = min(PCA_DIMS, rows, data.shape[1])
    with threadpool_limits(limits=1):  # OpenMP threads spin-wait: on a busy machine, many threads ran 100x slower
        reduced = PCA(n_components=dims, svd_solver="full").fit_transform(data)
        if rows < TSNE_MIN_ROWS:
            xy = np.zeros((rows, 2))
            xy[:, : min(2, dims)] = reduced[:, :2]
            return _scaled(xy), f"the first two principal components ({rows} rows: too few for t-SNE)"
        perplexity = min(PERPLEXITY, (rows - 1) / 3)
        tsne = TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed, n_jobs=1)
        xy = tsne.fit_transform(reduced)
    return _scaled(xy), f"PCA to {dims} dimensions, then t-SNE (perplexity {perplexity:.0f}, seed {seed})"


def dataset_map(features: np.ndarray, strata: np.ndarray, limit: int = MAP_POINTS, seed: int = 0) -> DatasetMap:
    """The map of `features`' rows: a stratified sample of at most `limit` (strata: each row's split and class),
    placed by map_coordinates."""
    total = len(features)
    rows = stratified_sample(strata, limit, seed)
    xy, method = map_coordinates(features[rows], seed)
    if len(rows) == total:
        rule = f"All {total:,} cached rows."
    else:
        rule = (
            f"{len(rows):,} of {total:,} cached rows: a sample stratified by split and class (each in proportion, "
            f"at least one row each while they fit), seed {seed}; the map shows at most {limit:,} rows."
        )
    return DatasetMap(rows, xy, total, rule, method)
