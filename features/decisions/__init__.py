"""Acting on what the audit found: the decisions file, and `apply` carrying it out on the dataset, journalled."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "ApplyConfig": "config",
    "Decision": "formats",
    "DecisionsError": "formats",
    "read_decisions": "formats",
    "write_decisions": "formats",
    "plan_decisions": "plan",
    "apply_decisions": "apply",
    "undo_last": "apply",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
