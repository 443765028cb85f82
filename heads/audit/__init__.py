"""Audit a dataset from its cached features: wrong labels, duplicates, leakage, outliers, clean or collect, a report."""

from importlib import import_module

_PUBLIC = {
    "AuditConfig": "config", "AuditResult": "result", "audit_cache": "run", "AUDIT_DIR": "formats",
    "FORMAT_VERSION": "formats", "find_label_issues": "label_issues", "find_duplicates": "duplicates",
    "outlier_score": "outliers", "learning_curve": "learning_curve",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
