"""audit.json's record, the summary lines and the leakage warning, from an audit's result."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from headstart.features import __version__
from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.formats import DUPLICATES_FILE
from headstart.heads.audit.result import AuditResult
from headstart.heads.audit.rows import CachedRows


def describe(result: AuditResult, rows: CachedRows, config: AuditConfig, features_path: Path) -> None:
    """audit.json's record, the summary lines and the warnings shown by the CLI and the page."""
    pairs, issues = result.pairs, result.label_issues
    leakage = int(pairs.leakage.sum())
    curve = result.curve.to_dict(rows.classes, config.train.head) if result.curve else None
    result.record = {
        "producer": f"headstart {__version__}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": str(features_path),
        "classes": rows.classes,
        "counts": rows.counts,
        "label_issues": {
            "score": config.score,
            "folds": config.folds,
            "head": config.train.to_dict(),
            "flagged": len(issues.rows),
            "thresholds": {c: round(float(t), 6) for c, t in zip(rows.classes, issues.thresholds)},
        },
        "duplicates": {
            "threshold": config.near_threshold,
            "exact_pairs": int(pairs.exact.sum()),
            "near_pairs": int((~pairs.exact).sum()),
            "leakage_pairs": leakage,
            "listed": len(pairs),
            "not_listed": pairs.not_listed,
        },
        "outliers": {
            "quantile": config.outlier_quantile,
            "cutoff": round(result.outliers.cutoff, 6),
            "listed": len(result.outliers.rows),
        },
        "learning_curve": curve,
        "val_mistakes": len(result.val_mistakes),
    }
    if rows.header.weights.kind == "none":
        result.warnings.append(
            "these features come from a randomly initialised backbone, NOT pretrained: the near-duplicate "
            "threshold, the label issues and the outliers are measured in a space that means little"
        )
    if leakage:  # near duplicates are a threshold's guess, and exact ones may be the same image on purpose
        result.warnings.append(
            f"possible leakage: {leakage} image pairs in train and in val/test look alike "
            f"({int((pairs.exact & pairs.leakage).sum())} of them exact copies); check them in {DUPLICATES_FILE}"
        )
    result.summary_lines = [
        f"{len(issues.rows)} possible label issues, {int(pairs.exact.sum())} exact and {int((~pairs.exact).sum())} "
        f"near-duplicate pairs (whitened cosine >= {config.near_threshold}), {len(result.outliers.rows)} outliers."
    ]
    if curve is None:
        result.curve_note = "no val rows: no learning curve"
    else:
        improving = curve["still_improving"]
        result.curve_note = (
            f"still improving with all their images: {', '.join(improving)} — more images should help these classes"
            if improving
            else "no class is still improving with all its images: cleaning labels beats collecting more"
        )
        result.summary_lines.append(result.curve_note)


def describe_multilabel(result: AuditResult, rows: CachedRows, config: AuditConfig, features_path: Path) -> None:
    """audit.json's record (format 2), the summary lines and the warnings of a multi-label audit."""
    issues = result.label_set_issues
    assert issues is not None
    describe(result, rows, config, features_path)  # duplicates, outliers, warnings: as for single-label
    record = {key: value for key, value in result.record.items() if key != "label_issues"}
    missing = int((issues.given == 0).sum())
    result.record = {
        "task": "multi-label",
        **record,
        "label_set_issues": {
            "score": config.score,
            "folds": config.folds,
            "head": config.train.to_dict(),
            "flagged": len(issues.rows),
            "missing": missing,
            "extra": len(issues.rows) - missing,
            "thresholds": {
                name: {"absent": round(float(low), 6), "present": round(float(high), 6)}
                for name, (low, high) in zip(rows.classes, issues.thresholds)
            },
        },
        "val_mistakes": None,
    }
    pairs = result.pairs
    result.summary_lines = [
        f"{len(issues.rows)} possible label-set issues ({missing} likely missing labels, "
        f"{len(issues.rows) - missing} likely extra), {int(pairs.exact.sum())} exact and "
        f"{int((~pairs.exact).sum())} near-duplicate pairs (whitened cosine >= {config.near_threshold}), "
        f"{len(result.outliers.rows)} outliers."
    ]
    result.curve_note = "multi-label features: no learning curve, val mistakes or map yet"
    result.summary_lines.append(result.curve_note)
