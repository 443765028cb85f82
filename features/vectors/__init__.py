"""The cached features out to other tools: every row of features.h5 as Parquet or as .npy with a sidecar table."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "EmbeddingsConfig": "config",
    "EmbeddingsError": "formats",
    "EmbeddingsSummary": "step",
    "write_embeddings": "step",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
