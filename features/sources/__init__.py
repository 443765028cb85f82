"""Where labelled images come from: a split folder, one folder split for you by content. Names load on first use."""

from headstart.features.lazy import lazy_names

_PUBLIC = {"SplitRule": "rule", "split_rule": "choose", "find_source": "choose", "assign_splits": "split"}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
