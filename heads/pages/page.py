"""The audit's and evaluate's HTML pages: results -> sections of thumbnails, capped, with the rest in the CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headstart.heads.audit.formats import DUPLICATES_FILE, LABEL_ISSUES_FILE, LABEL_SET_ISSUES_FILE, OUTLIERS_FILE
from headstart.heads.pages.html_report import Block, Choice, Figure, Section, Thumb, render_page
from headstart.heads.pages.map_view import MAP_THUMB_SIZE, map_block, map_points
from headstart.heads.pages.thumbnails import thumbnail


class Thumbnails:
    """Thumbnails of rows of the features file (paths under data_root, keyed by their cached sha256)."""

    def __init__(self, data_root: Path, cache: Path, size: int):
        self.data_root, self.cache, self.size = data_root, cache, size

    def __call__(self, path: str, sha256: str | None = None, caption: str | None = None) -> Thumb:
        full = (self.data_root / path).absolute()
        return Thumb(thumbnail(full, sha256, self.cache, self.size), caption or path, full.as_uri())


IGNORE = ("ignore this finding", "ignore", "")
REMOVE = ("remove from the dataset", "remove", "")


def _relabel_choice(path: str, sha256: str, first: str, classes: list[str], given: str) -> Choice:
    """relabel to `first`, to any other class, remove, or ignore."""
    others = [name for name in classes if name not in (first, given)]
    options = [(f"relabel to {name}", "relabel", name) for name in (first, *others)]
    return Choice(path, sha256, [*options, REMOVE, IGNORE])


def _capped(rows: list, cap: int) -> tuple[list, int]:
    return rows[:cap], max(0, len(rows) - cap)


def _label_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    issues, classes = result.label_issues, rows.classes
    shown, more = _capped(list(range(len(issues.rows))), cap)
    return Section(
        "Label issues",
        ["image", "split", "given", "suggested", "self-confidence", "normalized margin", "decision"],
        [
            [
                thumbs(rows.paths[issues.rows[i]], rows.sha256[issues.rows[i]]),
                rows.split[issues.rows[i]],
                classes[rows.labels[issues.rows[i]]],
                classes[issues.suggested[i]],
                f"{issues.self_confidence[i]:.3f}",
                f"{issues.normalized_margin[i]:.3f}",
                _relabel_choice(
                    rows.paths[issues.rows[i]],
                    rows.sha256[issues.rows[i]],
                    classes[issues.suggested[i]],
                    classes,
                    classes[rows.labels[issues.rows[i]]],
                ),
            ]
            for i in shown
        ],
        more,
        LABEL_ISSUES_FILE,
        "Out-of-fold probabilities disagree with the folder's class (confident learning); most suspicious first. "
        "Self-confidence: the probability a head not trained on this image gives its folder's class (low: doubtful). "
        "Normalized margin: that probability minus the most likely other class's (below 0: another class wins).",
    )


def _duplicate_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    pairs = result.pairs
    shown, more = _capped(list(range(len(pairs))), cap)

    def _side(row: int) -> Thumb:
        return thumbs(rows.paths[row], rows.sha256[row], f"{rows.split[row]}: {rows.paths[row]}")

    return Section(
        "Duplicates and leakage",
        ["image a", "image b", "similarity", "kind", "decision about b"],
        [
            [
                _side(pairs.a[i]),
                _side(pairs.b[i]),
                f"{pairs.similarity[i]:.4f}",
                ("leakage, " if pairs.leakage[i] else "") + ("exact copy" if pairs.exact[i] else "near duplicate"),
                Choice(
                    rows.paths[pairs.b[i]],
                    rows.sha256[pairs.b[i]],
                    [("drop b, a copy of a", "duplicate-of", rows.paths[pairs.a[i]]), REMOVE, IGNORE],
                ),
            ]
            for i in shown
        ],
        more,
        DUPLICATES_FILE,
        "Pairs across train and val/test (leakage) first. Similarity: the cosine of the two images' whitened "
        "features, 1 for the same picture; an exact copy has the same bytes (sha256).",
    )


def _outlier_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    outliers, classes = result.outliers, rows.classes
    shown, more = _capped(list(range(len(outliers.rows))), cap)
    return Section(
        "Outliers",
        ["image", "split", "given", "nearest class", "score", "decision"],
        [
            [
                thumbs(rows.paths[outliers.rows[i]], rows.sha256[outliers.rows[i]]),
                rows.split[outliers.rows[i]],
                classes[rows.labels[outliers.rows[i]]],
                classes[outliers.nearest[i]],
                f"{outliers.score[i]:.3f}",
                _relabel_choice(
                    rows.paths[outliers.rows[i]],
                    rows.sha256[outliers.rows[i]],
                    classes[outliers.nearest[i]],
                    classes,
                    classes[rows.labels[outliers.rows[i]]],
                ),
            ]
            for i in shown
        ],
        more,
        OUTLIERS_FILE,
        "Far from every class of the train images; farthest first. Score: the Mahalanobis distance to the nearest "
        "class of train features; higher is less like anything labelled.",
    )


def _mistakes_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    classes = rows.classes
    shown, more = _capped(result.val_mistakes, cap)
    return Section(
        "Most confidently wrong val images",
        ["image", "true", "predicted", "confidence"],
        [
            [thumbs(rows.paths[row], rows.sha256[row]), classes[rows.labels[row]], classes[guess], f"{confidence:.3f}"]
            for row, guess, confidence in shown
        ],
        more,
        "",
        "The head fitted on all of train, as `evaluate` on the val folder would list them (all of them: its CSV).",
    )


def _map_part(result, rows, cache: Path) -> Block:
    """The dataset map: its points coloured by label, split, label issue or unknown, small thumbnails for some."""
    issues = {int(row) for row in result.label_issues.rows}
    unknown = {int(row) for row in result.outliers.rows}
    thumbs = Thumbnails(rows.data_root, cache, MAP_THUMB_SIZE)
    return map_block(result.dataset_map, map_points(result.dataset_map, rows, issues, unknown, thumbs))


def audit_page(result, rows, cache: Path, cap: int, thumb_size: int, curve_png: bytes | None) -> str:
    """report.html of an audit: summary, label issues, duplicate pairs, outliers, learning curve, val mistakes, the
    dataset map."""
    thumbs = Thumbnails(rows.data_root, cache, thumb_size)
    parts: list = [
        section(result, rows, thumbs, cap) for section in (_label_section, _duplicate_section, _outlier_section)
    ]
    if curve_png is not None:
        parts.append(Figure("Learning curve: clean or collect?", curve_png, result.curve_note))
    parts.append(_mistakes_section(result, rows, thumbs, cap))
    if result.dataset_map is not None:
        parts.append(_map_part(result, rows, cache))
    # the folder's name, not its path: the page is meant to be shared, this machine's layout is not
    return render_page(
        f"headstart audit: {rows.data_root.name}", result.summary_lines, result.warnings, parts, interactive=True
    )


def evaluation_page(
    folder: Path, evaluation, exemplars: dict[str, Thumb], cache: Path, cap: int, thumb_size: int
) -> str:
    """evaluate --html: each mistake beside an example of the class it was taken for."""
    shown, more = _capped(evaluation.mistakes, cap)
    thumbs = Thumbnails(Path(), cache, thumb_size)
    missing = Thumb(None, "no example cached")
    section = Section(
        "Most confidently wrong",
        ["image", "true", "predicted", "confidence", "an image of the predicted class"],
        [
            [
                thumbs(mistake.path),
                mistake.true,
                mistake.predicted,
                f"{mistake.confidence:.3f}",
                exemplars.get(mistake.predicted, missing),
            ]
            for mistake in shown
        ],
        more,
        "the mistakes CSV",
    )
    summary = evaluation.summary
    lines = [f"{evaluation.images} images, accuracy {summary['accuracy']:.4f}, {len(evaluation.mistakes)} wrong."]
    return render_page(f"headstart evaluate: {folder.name}", lines, [], [section])


def write_evaluation_page(
    out: Path, folder: Path, evaluation, cache: Path, cap: int = 50, thumb_size: int = 128, features: Path | None = None
) -> None:
    """evaluate --html: the page, written whole or not at all; examples of each class come from CACHE's features
    (the features file given: the head's backbone's; None: the default backbone's). A multi-label evaluation's page
    shows its metrics and wrong label sets instead (heads/pages/multilabel_evaluation.py)."""
    from headstart.features.files.atomic import atomic_write
    from headstart.features.files.cachedir import FEATURES_FILE

    if evaluation.summary.get("task") == "multi-label":  # no one class to show an example of: the sets instead
        from headstart.heads.pages.multilabel_evaluation import multilabel_evaluation_page

        page = multilabel_evaluation_page(folder, evaluation, Thumbnails(Path(), cache, thumb_size), cap)
    else:
        features = features or cache / FEATURES_FILE
        exemplars = _exemplars(features, cache, thumb_size) if features.exists() else {}
        page = evaluation_page(folder, evaluation, exemplars, cache, cap, thumb_size)
    with atomic_write(out, "w", encoding="utf-8") as handle:
        handle.write(page)


def _label_set_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    issues, classes = result.label_set_issues, rows.classes
    shown, more = _capped(list(range(len(issues.rows))), cap)
    return Section(
        "Likely missing and extra labels",
        ["image", "split", "labels given", "label", "kind", "probability", "self-confidence"],
        [
            [
                thumbs(rows.paths[issues.rows[i]], rows.sha256[issues.rows[i]]),
                rows.split[issues.rows[i]],
                rows.label_set_text(issues.rows[i]),
                classes[issues.labels[i]],
                issues.kind(i),
                f"{issues.probability[i]:.3f}",
                f"{issues.self_confidence[i]:.3f}",
            ]
            for i in shown
        ],
        more,
        LABEL_SET_ISSUES_FILE,
        "Per label, out-of-fold probabilities disagree with the labels given (confident learning per label); most "
        "suspicious first. Missing: not given, yet as probable as the label's own images. Extra: given, yet as "
        "improbable as the images without it. Self-confidence: the probability of what was given (low: doubtful).",
    )


def _multilabel_outlier_section(result, rows, thumbs: Thumbnails, cap: int) -> Section:
    outliers, classes = result.outliers, rows.classes
    shown, more = _capped(list(range(len(outliers.rows))), cap)
    return Section(
        "Outliers",
        ["image", "split", "labels given", "nearest label", "score"],
        [
            [
                thumbs(rows.paths[outliers.rows[i]], rows.sha256[outliers.rows[i]]),
                rows.split[outliers.rows[i]],
                rows.label_set_text(outliers.rows[i]),
                classes[outliers.nearest[i]],
                f"{outliers.score[i]:.3f}",
            ]
            for i in shown
        ],
        more,
        OUTLIERS_FILE,
        "Far from every label's train images (each image counted under its lowest label); farthest first.",
    )


def multilabel_audit_page(result, rows, cache: Path, cap: int, thumb_size: int) -> str:
    """report.html of a multi-label audit: summary, likely missing and extra labels, duplicate pairs, outliers."""
    thumbs = Thumbnails(rows.data_root, cache, thumb_size)
    sections = (_label_set_section, _duplicate_section, _multilabel_outlier_section)
    parts: list = [section(result, rows, thumbs, cap) for section in sections]
    return render_page(
        f"headstart audit: {rows.data_root.name}", result.summary_lines, result.warnings, parts, interactive=True
    )


def _exemplars(features: Path, cache: Path, thumb_size: int) -> dict[str, Thumb]:
    """The class examples: from the rows in memory below the in-memory limit, a chunk at a time above it."""
    from headstart.features.chunks import reading_plan
    from headstart.features.store import FeatureStore
    from headstart.heads.audit.rows import load_rows
    from headstart.heads.pages.exemplars import streamed_examples

    with FeatureStore(features) as store:
        plan = reading_plan(store)
    if not plan.streamed:
        return class_exemplars(load_rows(features), cache, thumb_size)
    data_root, examples = streamed_examples(features, plan)
    thumbs = Thumbnails(data_root, cache, thumb_size)
    return {name: thumbs(path, sha256, f"{name}: {path}") for name, (path, sha256) in examples.items()}


def class_exemplars(rows, cache: Path, thumb_size: int) -> dict[str, Thumb]:
    """Per class, the train image nearest its centroid: what 'the class it was taken for' looks like."""
    from headstart.heads.audit.space import unit_rows

    thumbs = Thumbnails(rows.data_root, cache, thumb_size)
    train = rows.where("train")
    unit = unit_rows(rows.features[train], rows.features[train].mean(axis=0))
    exemplars = {}
    for k, name in enumerate(rows.classes):
        members = train[rows.labels[train] == k]
        if len(members):
            member_unit = unit[rows.labels[train] == k]
            best = members[int(np.argmax(member_unit @ member_unit.mean(axis=0)))]
            exemplars[name] = thumbs(rows.paths[best], rows.sha256[best], f"{name}: {rows.paths[best]}")
    return exemplars
