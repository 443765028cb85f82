"""The embeddings step: the features file -> chunks of rows -> a Parquet file, or an .npy with its table and record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headstart.features.files.atomic import replace_together
from headstart.features.files.cachedir import chosen_features
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.store import FeatureStore
from headstart.features.vectors.config import EMBEDDING_FORMATS, EmbeddingsConfig
from headstart.features.vectors.formats import EmbeddingsError, npy_sidecars, read_chunks, record


@dataclass(frozen=True)
class EmbeddingsSummary:
    """What was written: the files (the data file first), the rows per split and the vectors' width."""

    files: list[str]
    rows: dict[str, int]
    dim: int
    format: str

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _targets(config: EmbeddingsConfig) -> list[Path]:
    """The files to write, each checked not to be one of the cache's own."""
    if config.format not in EMBEDDING_FORMATS:
        raise EmbeddingsError(f"unknown embeddings format {config.format!r}: use one of {', '.join(EMBEDDING_FORMATS)}")
    out = Path(config.out)
    targets = [out, *npy_sidecars(out)] if config.format == "npy" else [out]
    check_outputs(config.cache, *(Output("--out", target) for target in targets))
    return targets


def _width(store: FeatureStore) -> int:
    for split in store.splits:
        return int(store.read(split, slice(0, 0)).features.shape[1])
    return 0


def write_embeddings(
    config: EmbeddingsConfig, on_progress: Callable[[int, int], None] | None = None
) -> EmbeddingsSummary:
    """Every cached row (path, split, label, sha256, vector) into config.out, streamed chunk by chunk; the files
    appear whole or not at all."""
    targets = _targets(config)
    if config.chunk_rows < 1:
        raise EmbeddingsError(f"chunk_rows is {config.chunk_rows}: give at least 1")
    if config.format == "parquet":
        from headstart.features.vectors.parquet import require_pyarrow

        require_pyarrow()  # before the features file is opened: the one-line hint comes first
    with FeatureStore(chosen_features(config.cache, config.backbone)) as store:
        dim, rows = _width(store), {split: store.count(split) for split in store.splits}
        total, done = sum(rows.values()), 0

        def on_chunk(count: int) -> None:
            nonlocal done
            done += count
            if on_progress is not None:
                on_progress(done, total)

        chunks = read_chunks(store, config.chunk_rows)
        with replace_together(*targets) as temporaries:
            if config.format == "parquet":
                from headstart.features.vectors.parquet import write_parquet

                write_parquet(temporaries[0], chunks, dim, record(store, dim), on_chunk)
            else:
                from headstart.features.vectors.npy import write_npy

                write_npy(
                    (temporaries[0], temporaries[1], temporaries[2]), chunks, (total, dim), record(store, dim), on_chunk
                )
    return EmbeddingsSummary([str(target) for target in targets], rows, dim, config.format)
