"""evaluate --html on a multi-label head: the metrics (overall and per label, with each label's threshold) and the
images whose predicted set is wrong, each with its true and predicted sets and the labels missed and added."""

from __future__ import annotations

from pathlib import Path

from headstart.heads.multilabel.predictions import SEPARATOR
from headstart.heads.pages.html_report import Section, render_page


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _labels_section(summary: dict) -> Section:
    columns = ["label", "support", "threshold", "precision", "recall", "F1", "average precision"]
    rows = [
        [
            name,
            str(scores["support"]),
            f"{scores['threshold']:.4f}",
            _score(scores["precision"]),
            _score(scores["recall"]),
            _score(scores["f1-score"]),
            _score(scores["average_precision"]),
        ]
        for name, scores in summary["labels"].items()
    ]
    note = (
        "A label is predicted when its probability is at least its threshold (stored in head.pt). Average precision "
        "ranks the images by the label's probability, with no threshold; n/a: no image here carries the label."
    )
    return Section("Per label", columns, rows, note=note)


def _difference(true: str, predicted: str) -> tuple[str, str]:
    """The labels missed (true, not predicted) and added (predicted, not true), each |-joined in set order."""
    given, guessed = (set(text.split(SEPARATOR)) - {""} for text in (true, predicted))
    missed = [name for name in true.split(SEPARATOR) if name and name not in guessed]
    added = [name for name in predicted.split(SEPARATOR) if name and name not in given]
    return SEPARATOR.join(missed), SEPARATOR.join(added)


def multilabel_evaluation_page(folder: Path, evaluation, thumbs, cap: int) -> str:
    """The page: a summary line of the overall scores, the per-label table, the wrong sets most confident first.
    `thumbs(path)` makes an image cell (heads/pages/page.py's Thumbnails)."""
    shown, more = evaluation.mistakes[:cap], max(0, len(evaluation.mistakes) - cap)
    rows = []
    for mistake in shown:
        missed, added = _difference(mistake.true, mistake.predicted)
        rows.append([thumbs(mistake.path), mistake.true, mistake.predicted, missed, added, f"{mistake.confidence:.3f}"])
    wrong = Section(
        "Most confidently wrong",
        ["image", "true labels", "predicted labels", "missed", "added", "confidence"],
        rows,
        more,
        "the mistakes CSV",
        "An image is wrong when its predicted set differs from its true set; confidence is that of its most "
        "confident wrong decision (an added label's probability, or one minus a missed label's).",
    )
    summary = evaluation.summary
    lines = [
        f"{evaluation.images} images, {len(evaluation.mistakes)} with a wrong label set.",
        f"mAP {_score(summary['mAP'])}, micro F1 {summary['micro_f1']:.4f}, macro F1 {summary['macro_f1']:.4f}, "
        f"subset accuracy {summary['subset_accuracy']:.4f}, Hamming loss {summary['hamming_loss']:.4f}.",
    ]
    return render_page(f"headstart evaluate: {folder.name}", lines, [], [_labels_section(summary), wrong])
