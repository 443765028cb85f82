"""audit over a features file above the in-memory limit (features/chunks.py), single-label: the same steps as
heads/audit/run.py, its models fitted on a sample, every row scored a chunk at a time, only what is listed kept.

- A seeded stratified sample of SAMPLE_ROWS train rows (heads/trust/streamed.py's sample_rows: each class keeps its
  share, at least 2 rows) is read; audit's recipe (config.train) gives its rows out-of-fold probabilities (k folds),
  and one head fitted on the whole sample scores every other row (train rows outside it, val, test) a chunk at a
  time: every score comes from a model that never saw the row. Confident learning's per-class thresholds come from
  the sample's out-of-fold probabilities; each chunk's flagged rows and wrong val rows are kept, nothing else.
- Outliers: the Mahalanobis model is fitted on the sample (out-of-fold scores for its rows, the sample's model for
  the rest); the cut-off is the quantile of the sample's out-of-fold scores; rows above it are kept as scored.
- The learning curve is fitted on the sample and scored on val (a stratified sample of VAL_CURVE_ROWS above that);
  the map places a stratified sample, as below the limit.
- Duplicates: heads/audit/streamed_pairs.py. Paths and hashes are read for the listed rows only (heads/audit/listed.py).
Which rows were read how is recorded in audit.json's `reading` (and the console's summary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from headstart.features.chunks import ReadingPlan, iter_chunks
from headstart.features.store import FeatureStore
from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.label_issues import LabelIssues, class_thresholds, find_label_issues
from headstart.heads.audit.learning_curve import learning_curve
from headstart.heads.audit.listed import ListedRows, layout
from headstart.heads.audit.probabilities import fit_scoring_head, out_of_fold_probabilities
from headstart.heads.audit.result import AuditResult, Outliers
from headstart.heads.audit.space import WHITEN_DIMS, Whitening, fit_whitening
from headstart.heads.audit.streamed_pairs import streamed_exact_pairs, streamed_pairs
from headstart.heads.pages.map import DatasetMap, map_coordinates, stratified_sample
from headstart.heads.trust import mahalanobis
from headstart.heads.trust.streamed import read_sample, sample_rows
from headstart.heads.trust.unknown import held_out_scores

# Train rows the streamed audit's models are fitted on: chosen by python -m bench.audit_sample (docs/scale.md).
SAMPLE_ROWS = 65_536
VAL_CURVE_ROWS = 65_536  # val rows the learning curve is scored on, at most (a stratified sample above)


# What the streamed audit holds for every row, beyond what it lists (docs/scale.md): its label (8 bytes), its
# whitened projection (4 bytes a dimension, WHITEN_DIMS at most), its 16 nearest lists as 2-byte integers (32), its
# place in the lists' order and its list number (12; heads/audit/streamed_pairs.py), and about 28 more of the sorts'
# and masks' temporaries, as measured by tests/test_audit_streamed.py's 50,000-row check (142 bytes a row at 16-d).
# The hash prefixes and their sort are gone before the projections are made.
def row_bytes(width: int, stored: type = np.float32) -> int:
    """Bytes the streamed audit holds for each row of a features file `width` wide, its projections stored as
    `stored` (208 at 512-d in float32; 144 in float16, as the lists search them)."""
    return np.dtype(stored).itemsize * min(WHITEN_DIMS, width) + 80


def unit_dtype(rows: int, index_min_rows: int) -> type:
    """How every row's whitened projection is held: float16 where the lists search it (half the bytes; each block
    compared is cast back to float32, which moves a similarity by at most about 1e-3: docs/scale.md), float32
    where every pair is compared (near_pairs' matrix products, which numpy has no float16 kernel for)."""
    from headstart.features.neighbours.index import use_index

    return np.float16 if use_index(rows, index_min_rows) else np.float32


OUTLIER_FOLDS, OUTLIER_SEED = 5, 0  # heads/audit/outliers.py's defaults, as run.py calls it

Progress = Callable[[str, int, int], None]


@dataclass
class _Found:
    """What the pass over every row keeps: flagged rows, wrong val rows, rows above the outlier cut-off."""

    issue_rows: list = field(default_factory=list)
    suggested: list = field(default_factory=list)
    confidence: list = field(default_factory=list)
    margin: list = field(default_factory=list)
    mistakes: list = field(default_factory=list)
    outlier_rows: list = field(default_factory=list)
    outlier_scores: list = field(default_factory=list)
    outlier_nearest: list = field(default_factory=list)
    gathered: dict = field(default_factory=dict)  # row -> features, for the map's and the curve's rows


@dataclass
class _Models:
    """Everything fitted on the sample that the pass applies."""

    sample: np.ndarray  # train row numbers, increasing
    sample_probabilities: np.ndarray  # out of fold
    sample_scores: np.ndarray  # out of fold
    head: torch.nn.Module
    thresholds: np.ndarray
    state: dict
    cutoff: float
    whitening: Whitening
    sample_unit: np.ndarray  # the sample's whitened rows: what the near-duplicate lists are fitted on
    sample_x: np.ndarray  # the sample's features and labels: what the learning curve is fitted on
    sample_y: np.ndarray


def _with_folds(sample: np.ndarray, labels: np.ndarray, config: AuditConfig) -> np.ndarray:
    """The sample, with rows added to each class it holds fewer than --folds of (or all the class has): a class's
    share of the sample must not fail the out-of-fold fits that all of train would pass."""
    held = np.bincount(labels[sample], minlength=int(labels.max()) + 1)
    wanted = np.minimum(config.folds, np.bincount(labels, minlength=len(held)))
    short = np.flatnonzero(held < wanted)
    if not len(short):
        return sample
    rng = np.random.default_rng(config.train.seed)
    extra = [
        rng.choice(np.setdiff1d(np.flatnonzero(labels == k), sample), wanted[k] - held[k], replace=False) for k in short
    ]
    return np.sort(np.concatenate([sample, *extra]))


def _fit_models(store: FeatureStore, plan: ReadingPlan, rows: ListedRows, config: AuditConfig) -> _Models:
    train_labels = rows.labels[: rows.counts.get("train", 0)]
    sample = _with_folds(sample_rows(train_labels, SAMPLE_ROWS, config.train.seed), train_labels, config)
    x, y = read_sample(store, plan, sample)
    num_classes = len(rows.classes)
    probabilities = out_of_fold_probabilities(x.numpy(), y.numpy(), num_classes, config.train, config.folds)
    head = fit_scoring_head(x, y, num_classes, config.train)
    state = mahalanobis.fit(x, y)
    scores = held_out_scores(x, y, mahalanobis.NAME, OUTLIER_FOLDS, OUTLIER_SEED).numpy()
    cutoff = float(np.quantile(scores, config.outlier_quantile))
    whitening = fit_whitening(x.numpy())
    return _Models(
        sample,
        probabilities,
        scores,
        head,
        class_thresholds(probabilities, y.numpy()),
        state,
        cutoff,
        whitening,
        whitening.transform(x.numpy()),
        x.numpy(),
        y.numpy(),
    )


def _score_chunk(
    found: _Found,
    models: _Models,
    first: int,
    features: np.ndarray,
    labels: np.ndarray,
    split: str,
    config: AuditConfig,
) -> None:
    """One chunk's flagged rows, wrong val rows and outliers (first: its first row number)."""
    x = torch.from_numpy(features)
    with torch.inference_mode():
        probabilities = torch.softmax(models.head(x), dim=1).numpy()
    scores = mahalanobis.score(models.state, x).numpy()
    if split == "train":  # the sample's rows: their out-of-fold values
        at = np.searchsorted(models.sample, np.arange(first, first + len(labels)))
        at = np.minimum(at, len(models.sample) - 1)
        sampled = models.sample[at] == np.arange(first, first + len(labels))
        probabilities[sampled] = models.sample_probabilities[at[sampled]]
        scores[sampled] = models.sample_scores[at[sampled]]
    issues = find_label_issues(probabilities, labels, models.thresholds, config.score)
    found.issue_rows.append(issues.rows + first)
    found.suggested.append(issues.suggested)
    found.confidence.append(issues.self_confidence)
    found.margin.append(issues.normalized_margin)
    if split == "val":
        wrong = np.flatnonzero(probabilities.argmax(1) != labels)
        found.mistakes += [
            (first + int(r), int(probabilities[r].argmax()), float(probabilities[r].max())) for r in wrong
        ]
    above = np.flatnonzero(scores > models.cutoff)
    found.outlier_rows.append(above + first)
    found.outlier_scores.append(scores[above])
    nearest = mahalanobis.class_distances(models.state, x[above]).min(1).indices.numpy() if len(above) else above
    found.outlier_nearest.append(nearest)


def _issues(found: _Found, thresholds: np.ndarray, score: str) -> LabelIssues:
    rows = np.concatenate(found.issue_rows).astype(np.int64)
    confidence, margin = np.concatenate(found.confidence), np.concatenate(found.margin)
    order = np.lexsort((rows, confidence if score == "self_confidence" else margin))
    return LabelIssues(
        rows[order], np.concatenate(found.suggested)[order], confidence[order], margin[order], thresholds
    )


def _outliers(found: _Found, cutoff: float) -> Outliers:
    rows = np.concatenate(found.outlier_rows).astype(np.int64)
    score, nearest = np.concatenate(found.outlier_scores), np.concatenate(found.outlier_nearest).astype(np.int64)
    order = np.lexsort((rows, -score))
    return Outliers(rows[order], score[order], nearest[order], cutoff)


def _gathered(found: _Found, rows: np.ndarray) -> np.ndarray:
    return np.stack([found.gathered[int(row)] for row in rows]) if len(rows) else np.zeros((0, 0), np.float32)


def _pass(
    store: FeatureStore, plan: ReadingPlan, rows: ListedRows, models: _Models, wanted: np.ndarray, config, stage
) -> tuple[_Found, np.ndarray]:
    """One pass over every row, a chunk at a time: what each chunk flags, every row's whitened projection, and the
    features of the `wanted` rows (the map's, the curve's val rows)."""
    unit: np.ndarray = np.empty(
        (len(rows), models.whitening.projection.shape[1]), unit_dtype(len(rows), config.index_min_rows)
    )
    found, done = _Found(), 0
    for name, count in zip(rows.split.names, rows.split.counts):
        offset = rows.split.start(name)
        for start, features, labels in iter_chunks(store, name, plan.chunk_rows) if count else ():
            first = offset + start
            _score_chunk(found, models, first, features, labels, name, config)
            unit[first : first + len(labels)] = models.whitening.transform(features)
            picked = wanted[(wanted >= first) & (wanted < first + len(labels))]
            found.gathered.update({int(row): features[row - first].copy() for row in picked})
            done += len(labels)
            stage("label issues", done, len(rows))
    return found, unit


def _dataset_map(found: _Found, map_rows: np.ndarray, total: int, config: AuditConfig) -> DatasetMap | None:
    if not len(map_rows):
        return None
    xy, method = map_coordinates(_gathered(found, map_rows), config.map_seed)
    rule = (
        f"{len(map_rows):,} of {total:,} cached rows: a sample stratified by split and class, seed "
        f"{config.map_seed}; the map shows at most {config.map_points:,} rows."
    )
    return DatasetMap(map_rows, xy, total, rule, method)


def audit_streamed(
    store: FeatureStore, plan: ReadingPlan, config: AuditConfig, folder, on_progress: Progress | None = None
) -> tuple[AuditResult, ListedRows, int]:
    """heads/audit/run.py's single-label audit of a store above the in-memory limit: the result, the rows the
    writer reads (paths and hashes of the listed rows only) and the number of train rows the models were fitted on."""
    rows = layout(store)
    num_classes = len(rows.classes)
    stage = (lambda name, done, total: on_progress(name, done, total)) if on_progress else (lambda *_: None)
    stage("label issues", 0, 1)
    models = _fit_models(store, plan, rows, config)
    # the map's rows and the curve's val rows, chosen now, their features gathered by the pass
    split_code = np.repeat(np.arange(len(rows.split.names)), rows.split.counts)
    map_rows = (
        stratified_sample(split_code * num_classes + rows.labels, config.map_points, config.map_seed)
        if config.map_points > 0
        else np.zeros(0, np.int64)
    )
    del split_code
    val = rows.where("val")
    curve_val = (
        val[sample_rows(rows.labels[val], VAL_CURVE_ROWS, config.train.seed)] if len(val) > VAL_CURVE_ROWS else val
    )
    exact = streamed_exact_pairs(store, rows)  # before the projections are held: its sort's memory is not added
    found, unit = _pass(store, plan, rows, models, np.union1d(map_rows, curve_val), config, stage)
    issues, outliers = _issues(found, models.thresholds, config.score), _outliers(found, models.cutoff)
    pairs = streamed_pairs(
        store,
        rows,
        unit,
        models.sample_unit,
        exact,
        config.near_threshold,
        config.max_pairs,
        config.index_min_rows,
        lambda d, t: stage("duplicates", d, t),
    )
    del unit
    curve = None
    if len(val):
        curve = learning_curve(
            models.sample_x,
            models.sample_y,
            _gathered(found, curve_val),
            rows.labels[curve_val],
            num_classes,
            config.train,
            config.curve_seeds,
            lambda d, t: stage("learning curve", d, t),
        )
    mistakes = found.mistakes
    result = AuditResult(folder, issues, pairs, outliers, curve, mistakes)
    result.dataset_map = _dataset_map(found, map_rows, len(rows), config)
    listed = [issues.rows, pairs.a, pairs.b, outliers.rows, np.array([m[0] for m in mistakes], np.int64), map_rows]
    rows.read_listed(store, np.concatenate(listed).astype(np.int64))
    result.val_mistakes = sorted(mistakes, key=lambda item: (-item[2], rows.paths[item[0]]))
    return result, rows, len(models.sample)
