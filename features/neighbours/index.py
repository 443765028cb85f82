"""The approximate nearest-neighbour index (faiss, `pip install 'headstart[index]'`) and its file in the cache.
This docstring is the file's schema; bump FORMAT_VERSION on any change.

An inverted-file index (faiss IndexIVFFlat, inner product over unit vectors: cosine): the rows are clustered
into `nlist` lists by k-means on a sample, and a query scans the `nprobe` lists whose centroids are nearest.
Used above INDEX_MIN_ROWS rows, when faiss is installed; exact search otherwise (docs/features-out.md says how
the size and the parameters were measured).

CACHE/index/<features file>.<space>.faiss, written whole or not at all:

    line 1   b"headstart neighbour index\\n"
    line 2   the record as one line of JSON: {"format": "headstart neighbour index", "format_version",
             "producer": "headstart <version>", "key": IndexKey (the features file's name, size, mtime_ns and
             backbone, the space, the rows' count and width, the splits), "nlist", "nprobe",
             "payload_sha256": the sha256 of what follows, "payload_bytes"}
    the rest faiss.serialize_index's bytes

Read as untrusted: a file whose first line, record, key, size or payload digest is not what is expected is
rebuilt (and replaced), never deserialised; the index read back must hold `rows` vectors of width `dim`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headstart.features import __version__
from headstart.features.files.atomic import atomic_write
from headstart.features.files.cachedir import index_file
from headstart.features.neighbours.config import INDEX_MIN_ROWS

FORMAT_NAME = "headstart neighbour index"
FORMAT_VERSION = 1
MAGIC = b"headstart neighbour index\n"
MAX_RECORD = 65536  # the record line's longest length: a file claiming more is not ours
# Chosen by python -m bench.neighbours (docs/features-out.md), 2 CPU cores: nlist = sqrt(rows) keeps the build at a
# million rows within minutes (4 * sqrt(rows) lists took 8 times as long at 100,000 rows), and 64 of its lists
# scanned per query give recall@10 >= 0.95 against exact search (32 gave 0.93 at 100,000 rows).
LISTS_PER_SQRT_ROW = 1  # nlist = sqrt(rows)
NPROBE = 64  # lists scanned per query
TRAIN_PER_LIST = 39  # k-means sample: 39 rows per list (faiss's own minimum before it warns)
KMEANS_ITERATIONS = 10  # faiss's default is 25: the lists' centroids barely move after 10 on clustered rows
ADD_BLOCK = 65536
INSTALL_HINT = "pip install 'headstart[index]' (or pip install faiss-cpu)"


@dataclass(frozen=True)
class IndexKey:
    """What an index was built from: the features file as it was then, the space, the rows it holds."""

    features: str  # the features file's name in the cache
    size: int
    mtime_ns: int
    backbone: str
    space: str  # "centred" (similar) or "whitened" (audit's duplicates)
    rows: int
    dim: int
    splits: list[str]

    @classmethod
    def of(cls, features: Path, backbone: str, space: str, rows: np.ndarray, splits: list[str]) -> IndexKey:
        """The key of an index over rows, built now from the features file at features."""
        found = features.stat()
        return cls(features.name, found.st_size, found.st_mtime_ns, backbone, space, len(rows), rows.shape[1], splits)


def faiss_module() -> Any | None:
    """faiss when the optional extra is installed, else None (exact search is used)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def require_faiss() -> Any:
    """faiss, or one line saying how to install it."""
    faiss = faiss_module()
    if faiss is None:
        raise ValueError(f"an approximate index needs faiss: {INSTALL_HINT}")
    return faiss


def use_index(rows: int, min_rows: int = INDEX_MIN_ROWS) -> bool:
    """Whether an approximate index serves a search over rows: large enough, and faiss installed."""
    return rows >= min_rows and faiss_module() is not None


def build_index(unit: np.ndarray, seed: int = 0) -> Any:
    """An IVF index over unit-length float32 rows (inner product: cosine), trained on a sample of them."""
    faiss = require_faiss()
    rows, dim = unit.shape
    nlist = max(1, min(rows // TRAIN_PER_LIST, int(LISTS_PER_SQRT_ROW * math.sqrt(rows))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = KMEANS_ITERATIONS
    sample = np.random.default_rng(seed).choice(rows, min(rows, nlist * TRAIN_PER_LIST), replace=False)
    index.train(np.ascontiguousarray(unit[np.sort(sample)], dtype=np.float32))
    for start in range(0, rows, ADD_BLOCK):
        index.add(np.ascontiguousarray(unit[start : start + ADD_BLOCK], dtype=np.float32))
    index.nprobe = min(NPROBE, nlist)
    return index


def _record(key: IndexKey, index: Any, payload: bytes) -> dict:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "producer": f"headstart {__version__}",
        "key": asdict(key),
        "nlist": int(index.nlist),
        "nprobe": int(index.nprobe),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
    }


def write_index(path: Path, key: IndexKey, index: Any) -> None:
    """The index file, whole or not at all."""
    faiss = require_faiss()
    payload = faiss.serialize_index(index).tobytes()
    with atomic_write(path) as out:
        out.write(MAGIC + json.dumps(_record(key, index, payload)).encode() + b"\n")
        out.write(payload)


def read_index(path: Path, key: IndexKey) -> Any | None:
    """The index stored at path when it is ours, intact and built from what key says; else None (rebuild it)."""
    faiss = require_faiss()
    try:
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                return None
            record = json.loads(handle.readline(MAX_RECORD))
            payload = handle.read(int(record["payload_bytes"]) + 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("format_version") != FORMAT_VERSION
        or record.get("key") != asdict(key)
    ):
        return None
    if len(payload) != record["payload_bytes"] or hashlib.sha256(payload).hexdigest() != record.get("payload_sha256"):
        return None
    try:
        index = faiss.deserialize_index(np.frombuffer(payload, np.uint8))
    except RuntimeError:
        return None
    if index.ntotal != key.rows or index.d != key.dim or not isinstance(record.get("nprobe"), int):
        return None
    index.nprobe = record["nprobe"]
    return index


def cached_index(cache: Path, key: IndexKey, unit: np.ndarray) -> tuple[Any, bool]:
    """(the index over unit, whether it was built now): read from CACHE/index/ when it was built from the same
    features, else built and stored there."""
    path = Path(cache) / index_file(key.features, key.space)
    index = read_index(path, key) if path.is_file() else None
    if index is not None:
        return index, False
    index = build_index(unit)
    write_index(path, key, index)
    return index, True


def search_index(index: Any, unit_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, similarities) of the k nearest per query; a missing neighbour is row -1 with similarity -inf."""
    sims, rows = index.search(np.ascontiguousarray(unit_queries, dtype=np.float32), k)
    sims = np.where(rows < 0, -np.inf, sims).astype(np.float32)
    return rows.astype(np.int64), sims


def index_size(path: str | os.PathLike) -> int:
    """Bytes of an index file (0 when absent), for what a command reports."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
