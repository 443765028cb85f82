"""The embeddings step's options, importable without numpy or pyarrow so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EMBEDDING_FORMATS = ("parquet", "npy")
CHUNK_ROWS = 16384  # rows read from HDF5 and written (one Parquet row group) at a time: 32 MiB of 512-d float32


@dataclass(frozen=True, kw_only=True)
class EmbeddingsConfig:
    """Where the features come from (the chosen backbone's features file), where they go, and in which format."""

    out: Path
    cache: Path = Path("cache")
    format: str = "parquet"
    backbone: str | None = None  # which backbone's features, when the cache holds several
    chunk_rows: int = CHUNK_ROWS
