"""Nearest neighbours over the cached features: the images most like any image (`similar`), found exactly."""

from headstart.features.lazy import lazy_names

_PUBLIC = {"SimilarConfig": "config", "SimilarError": "formats", "SimilarSummary": "step", "find_similar": "step"}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
