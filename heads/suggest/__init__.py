"""Which unlabeled images to label next (headstart suggest): the strategies, measured by python -m bench.suggest."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "SuggestConfig": "config",
    "SuggestError": "formats",
    "SuggestSummary": "step",
    "suggest": "step",
    "rank": "strategies",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
