"""The Parquet writer: one row group per chunk, the embedding a fixed-size list of float32 (vectors/formats.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from headstart.features.vectors.formats import METADATA_KEY, MULTI_LABEL_VERSION, Chunk, EmbeddingsError

INSTALL_HINT = "pip install 'headstart[embeddings]' (or pip install pyarrow)"


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, an optional extra: without it, one line saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise EmbeddingsError(f"--format parquet needs pyarrow: {INSTALL_HINT}; or use --format npy") from None
    return pyarrow, pyarrow.parquet


def require_pyarrow() -> None:
    """Refuse at once, before any work, when pyarrow is missing."""
    _pyarrow()


def _schema(pa: Any, dim: int, record: dict) -> Any:
    multi = [pa.field("labels", pa.list_(pa.string()), nullable=False)]  # a multi-label file's (format 2) only
    return pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("label", pa.string()),
            *(multi if record["format_version"] == MULTI_LABEL_VERSION else []),
            pa.field("sha256", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.field("item", pa.float32(), nullable=False), dim), nullable=False),
        ],
        metadata={METADATA_KEY: json.dumps(record, allow_nan=False)},
    )


def write_parquet(
    path: str | os.PathLike, chunks: Iterable[Chunk], dim: int, record: dict, on_chunk: Callable[[int], None]
) -> None:
    """Write the chunks into path (a temporary file the caller renames), one row group each."""
    pa, pq = _pyarrow()
    schema = _schema(pa, dim, record)
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in chunks:
            flat = pa.array(chunk.features.astype("float32", copy=False).reshape(-1), pa.float32())
            columns = [
                pa.array(chunk.paths, pa.string()),
                pa.array([chunk.split] * len(chunk.paths), pa.string()),
                pa.array(chunk.labels, pa.string()),
                *([pa.array(chunk.label_sets, pa.list_(pa.string()))] if chunk.label_sets is not None else []),
                pa.array(chunk.sha256, pa.string()),
                pa.FixedSizeListArray.from_arrays(flat, type=schema.field("embedding").type),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            on_chunk(len(chunk.paths))
