"""The similar step's options, importable without numpy or torch so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.features.config import EngineConfig

SIMILAR_FORMATS = ("csv", "jsonl")
# Rows from which the approximate index serves (features/neighbours/index.py), chosen by python -m bench.neighbours
# (docs/features-out.md): the smallest measured size at which audit's near pairs by the index took at most a
# fifth of the exact tiles' time (25,000 rows: 5.4 s against 28.6 s on 2 cores; at 10,000 it saved 1.3 s).
INDEX_MIN_ROWS = 25_000
POOL_SPLIT = "pool"  # the unlabeled pool's split: searched only when asked for (--pool)


@dataclass(frozen=True, kw_only=True)
class SimilarConfig(EngineConfig):
    """Which images to look up, where (the chosen backbone's features, which splits), how many, and the outputs."""

    queries: tuple[Path, ...]
    cache: Path = Path("cache")
    k: int = 10
    splits: tuple[str, ...] = ()  # searched splits; (): every split but the pool
    pool: bool = False  # search the pool split too
    backbone: str | None = None  # which backbone's features, when the cache holds several
    out: Path = Path("-")  # '-': stdout
    format: str = "csv"
    html: Path | None = None
    thumb_size: int = 128
    index_min_rows: int = INDEX_MIN_ROWS  # exact search below it, or without faiss
