"""Audit a dataset from its cached features: wrong labels, duplicates, leakage, outliers, clean or collect, a report."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "AuditConfig": "config",
    "AuditResult": "result",
    "audit_cache": "run",
    "FORMAT_VERSION": "formats",
    "find_label_issues": "label_issues",
    "find_duplicates": "duplicates",
    "outlier_score": "outliers",
    "learning_curve": "learning_curve",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
