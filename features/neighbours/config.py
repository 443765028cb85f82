"""The similar step's options, importable without numpy or torch so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.features.config import EngineConfig

SIMILAR_FORMATS = ("csv", "jsonl")
INDEX_MIN_ROWS = 50_000  # searched rows from which the approximate index serves (features/neighbours/index.py)
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
