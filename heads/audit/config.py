"""Options of the audit step, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.features.neighbours.config import INDEX_MIN_ROWS
from headstart.heads.config import TrainConfig
from headstart.heads.pages.map import MAP_POINTS

SCORES = ("self_confidence", "normalized_margin")


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """What `audit` computes and how much of it the report shows; the CLI's defaults come from here."""

    cache: Path = Path("cache")
    backbone: str | None = None  # whose features, when the cache holds several backbones'
    # train-head --head logreg: a converged fit whatever the number of rows, so out-of-fold probabilities and a
    # learning-curve point at 1 image per class are fitted heads, not a few SGD steps (docs/audit.md).
    train: TrainConfig = TrainConfig(head="logreg")
    folds: int = 5
    score: str = "self_confidence"
    near_threshold: float = 0.8  # whitened cosine; measured: docs/audit.md, python -m bench.audit
    outlier_quantile: float = 0.99
    curve_seeds: int = 5
    report_rows: int = 50  # per section of report.html; the CSVs hold every row
    thumbnail_size: int = 128
    max_pairs: int = 100_000  # duplicates.csv holds at most this many near pairs (the most similar)
    map_points: int = MAP_POINTS  # report.html's map: at most this many rows, a stratified sample above; 0: no map
    map_seed: int = 0  # the map's sample and t-SNE
    index_min_rows: int = INDEX_MIN_ROWS  # near duplicates by the approximate index from this many rows (faiss)
