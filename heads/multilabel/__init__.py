"""Multi-label heads: one sigmoid per label over the cached features, per-label thresholds, their metrics."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "best_thresholds": "metrics",
    "multilabel_summary": "metrics",
    "train_multilabel": "train",
    "fit_multilabel": "fit",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
