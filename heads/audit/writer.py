"""An audit's result -> the files of CACHE/audit/ (formats.py), replaced together or not at all."""

from __future__ import annotations

from pathlib import Path

from headstart.features.files.atomic import replace_together
from headstart.heads.audit import formats
from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.duplicates import Pairs
from headstart.heads.audit.learning_curve import plot_learning_curve
from headstart.heads.audit.result import AuditResult, Outliers
from headstart.heads.audit.rows import CachedRows
from headstart.heads.pages.page import audit_page


def _label_issue_rows(result: AuditResult, rows: CachedRows):
    issues = result.label_issues
    for rank, (row, suggested, confidence, margin) in enumerate(
        zip(issues.rows, issues.suggested, issues.self_confidence, issues.normalized_margin), start=1
    ):
        yield {
            "path": rows.paths[row],
            "split": rows.split[row],
            "given": rows.classes[rows.labels[row]],
            "suggested": rows.classes[suggested],
            "self_confidence": float(confidence),
            "normalized_margin": float(margin),
            "rank": rank,
        }


def _duplicate_rows(pairs: Pairs, rows: CachedRows):
    for a, b, similarity, exact in zip(pairs.a, pairs.b, pairs.similarity, pairs.exact):
        yield {
            "path_a": rows.paths[a],
            "split_a": rows.split[a],
            "path_b": rows.paths[b],
            "split_b": rows.split[b],
            "similarity": float(similarity),
            "exact": bool(exact),
        }


def _outlier_rows(outliers: Outliers, rows: CachedRows):
    for rank, (row, score, nearest) in enumerate(zip(outliers.rows, outliers.score, outliers.nearest), start=1):
        yield {
            "path": rows.paths[row],
            "split": rows.split[row],
            "given": rows.classes[rows.labels[row]],
            "nearest": rows.classes[nearest],
            "score": float(score),
            "rank": rank,
        }


def write_audit(result: AuditResult, rows: CachedRows, config: AuditConfig, cache: Path) -> None:
    """Every file of CACHE/audit/, replaced together (audit.json last) or not at all."""
    folder = result.folder
    curve_file = [formats.CURVE_FILE] if result.curve is not None else []
    names = [
        formats.LABEL_ISSUES_FILE,
        formats.DUPLICATES_FILE,
        formats.OUTLIERS_FILE,
        *curve_file,
        formats.REPORT_FILE,
        formats.AUDIT_FILE,
    ]
    with replace_together(*(folder / name for name in names)) as temporaries:
        paths = dict(zip(names, temporaries))
        for name, columns, records in (
            (formats.LABEL_ISSUES_FILE, formats.LABEL_ISSUE_COLUMNS, _label_issue_rows(result, rows)),
            (formats.DUPLICATES_FILE, formats.DUPLICATE_COLUMNS, _duplicate_rows(result.pairs, rows)),
            (formats.OUTLIERS_FILE, formats.OUTLIER_COLUMNS, _outlier_rows(result.outliers, rows)),
        ):
            formats.write_csv(paths[name], columns, records)
        curve_png = None
        if result.curve is not None:
            plot_learning_curve(result.curve, rows.classes, paths[formats.CURVE_FILE])
            curve_png = paths[formats.CURVE_FILE].read_bytes()
        paths[formats.REPORT_FILE].write_text(
            audit_page(result, rows, cache, config.report_rows, config.thumbnail_size, curve_png), encoding="utf-8"
        )
        formats.write_json(paths[formats.AUDIT_FILE], result.record)
    if result.curve is None:  # no val split this time: a previous run's curve would contradict audit.json
        (folder / formats.CURVE_FILE).unlink(missing_ok=True)
    (folder / formats.LABEL_SET_ISSUES_FILE).unlink(missing_ok=True)  # a multi-label run's, now stale


def _label_set_issue_rows(result: AuditResult, rows: CachedRows):
    issues = result.label_set_issues
    assert issues is not None
    for index, (row, label) in enumerate(zip(issues.rows, issues.labels)):
        yield {
            "path": rows.paths[row],
            "split": rows.split[row],
            "label": rows.classes[label],
            "kind": issues.kind(index),
            "given": int(issues.given[index]),
            "probability": float(issues.probability[index]),
            "self_confidence": float(issues.self_confidence[index]),
            "normalized_margin": float(issues.normalized_margin[index]),
            "rank": index + 1,
        }


def write_multilabel_audit(result: AuditResult, rows: CachedRows, config: AuditConfig, cache: Path) -> None:
    """A multi-label audit's files (formats.py), replaced together (audit.json last) or not at all; the single-label
    files it does not write (label_issues.csv, learning_curve.png) are removed, as they would contradict it."""
    from headstart.heads.pages.page import multilabel_audit_page

    folder = result.folder
    names = [
        formats.LABEL_SET_ISSUES_FILE,
        formats.DUPLICATES_FILE,
        formats.OUTLIERS_FILE,
        formats.REPORT_FILE,
        formats.AUDIT_FILE,
    ]
    result.files = names
    with replace_together(*(folder / name for name in names)) as temporaries:
        paths = dict(zip(names, temporaries))
        for name, columns, records in (
            (formats.LABEL_SET_ISSUES_FILE, formats.LABEL_SET_ISSUE_COLUMNS, _label_set_issue_rows(result, rows)),
            (formats.DUPLICATES_FILE, formats.DUPLICATE_COLUMNS, _duplicate_rows(result.pairs, rows)),
            (formats.OUTLIERS_FILE, formats.OUTLIER_COLUMNS, _multilabel_outlier_rows(result.outliers, rows)),
        ):
            formats.write_csv(paths[name], columns, records)
        page = multilabel_audit_page(result, rows, cache, config.report_rows, config.thumbnail_size)
        paths[formats.REPORT_FILE].write_text(page, encoding="utf-8")
        formats.write_json(paths[formats.AUDIT_FILE], result.record, formats.MULTI_LABEL_VERSION)
    for stale in (formats.LABEL_ISSUES_FILE, formats.CURVE_FILE):
        (folder / stale).unlink(missing_ok=True)


def _multilabel_outlier_rows(outliers: Outliers, rows: CachedRows):
    """outliers.csv's rows, `given` the row's whole label set (`|`-joined), not its lowest label."""
    for rank, (row, score, nearest) in enumerate(zip(outliers.rows, outliers.score, outliers.nearest), start=1):
        yield {
            "path": rows.paths[row],
            "split": rows.split[row],
            "given": rows.label_set_text(row),
            "nearest": rows.classes[nearest],
            "score": float(score),
            "rank": rank,
        }
