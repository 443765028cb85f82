"""What train-head and evaluate print for a multi-label head: per-label scores, mAP, F1, subset accuracy, Hamming."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from headstart.console.reporter import Reporter

if TYPE_CHECKING:
    from headstart.heads.fit import FitSummary


def _ap(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def multilabel_table(summary: dict, title: str) -> Table:
    """Per label: precision, recall, F1, average precision, support, threshold."""
    table = Table(title=title)
    for column in ("label", "precision", "recall", "f1", "AP", "support", "threshold"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for name in summary["classes"]:
        row = summary["labels"][name]
        scores = (f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}")
        table.add_row(name, *scores, _ap(row["average_precision"]), str(row["support"]), f"{row['threshold']:.3f}")
    return table


def overall_line(summary: dict) -> str:
    """mAP, micro and macro F1, subset accuracy and Hamming loss in one line."""
    return (
        f"mAP {_ap(summary['mAP'])}, micro F1 {summary['micro_f1']:.3f}, macro F1 {summary['macro_f1']:.3f}, "
        f"subset accuracy {summary['subset_accuracy']:.3f}, Hamming loss {summary['hamming_loss']:.3f}"
    )


def trust_line(metrics: dict) -> str:
    """metrics.json's multi-label `calibration` and `unknown` entries in one line."""
    calibration, unknown = metrics.get("calibration"), metrics.get("unknown")
    line = "calibration: none"
    if calibration:
        line = f"calibration: a {calibration['method']} per label folded into the head"
        before, after = calibration["val_ece_before"], calibration["val_ece_after"]
        if before is not None:
            line += f" (val mean per-label ECE {before:.4f} -> {after:.4f})"
    if unknown:
        line += f"; unknown images: {unknown['form']} distance, threshold set to flag {unknown['rate']:.1%} of train"
        if unknown["val_flagged_rate"] is not None:
            line += f" (flags {unknown['val_flagged_rate']:.1%} of val)"
    return line


def show_multilabel_training(report: Reporter, summary: FitSummary) -> None:
    """A multi-label head's val (and test) scores at its thresholds, how they were chosen, and the files written."""
    metrics = summary.metrics
    report.note(f"multi-label head: trained by {metrics['recipe']}; thresholds by {metrics['threshold_rule']}")
    for split, note in (("val", "last epoch"), ("test", "scored once, never used to choose")):
        scored = metrics.get(f"{split}_report")
        if scored:
            report.table(multilabel_table(scored, f"{split} split, {note}"))
            report.note(f"{split}: {overall_line(scored)}")
    if not metrics.get("val_report"):
        report.warn("no val rows: nothing held out scores this head; extract with a val split")
    report.note(trust_line(metrics))
    if summary.trust.skipped:
        report.warn(f"no calibration and no unknown-image model: {summary.trust.skipped}")
    if summary.header.weights.kind == "none":
        report.warn("these features come from a randomly initialised backbone, NOT pretrained")
    for name in summary.untrained_classes:
        report.warn(f"label {name} has no positive training row: the head never learned it")
    counts = ", ".join(f"{n} {split}" for split, n in summary.counts.items())
    report.note(
        f"trained on {counts} rows in {summary.seconds:.2f} s -> {summary.head_path}, "
        f"{summary.metrics_path}, {summary.curves_path}, {summary.calibration_path}"
    )
