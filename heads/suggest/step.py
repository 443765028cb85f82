"""The suggest step, a runner that only chains roles: head + features file -> candidates (the pool, or folders run
through the features' backbone) -> the head's probabilities and unknown scores -> a strategy's ranking -> the table
and the optional page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.features.engines.batches import ProgressCallback
from headstart.features.files.cachedir import HEAD_FILE, chosen_features
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.folder import POOL, DatasetError, find_images
from headstart.features.neighbours.queries import query_features
from headstart.features.neighbours.space import CachedRows, read_rows
from headstart.features.provenance import WeightsIdentity
from headstart.features.store import FeaturesHeader, FeatureStore
from headstart.heads.checkpoint import HeadCheckpoint, load_head
from headstart.heads.suggest.config import STRATEGIES, SuggestConfig
from headstart.heads.suggest.formats import SuggestError, Suggestion, write_suggestions
from headstart.heads.suggest.strategies import PoolView, rank


@dataclass
class Candidates:
    """The images ranked: their names (pool paths under data_root, or files as found), digests and features."""

    names: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    from_pool: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)


@dataclass(frozen=True)
class SuggestSummary:
    """What was done: the images ranked, where from, the strategy, the suggestions, the skipped images, the files."""

    ranked: int
    source: str
    strategy: str
    suggestions: list[Suggestion]
    skipped: list[tuple[str, str]]
    files: list[str]
    data_root: str


def head_path(config: SuggestConfig) -> Path:
    """The head file suggest reads: --head, else CACHE/head.pt."""
    return Path(config.head) if config.head is not None else Path(config.cache) / HEAD_FILE


def _check(config: SuggestConfig) -> None:
    if config.strategy not in STRATEGIES:
        raise SuggestError(f"unknown strategy {config.strategy!r}: use one of {', '.join(STRATEGIES)}")
    if config.n < 1:
        raise SuggestError(f"-n {config.n}: give at least 1")
    outputs = [Output("--out", Path(config.out), streamed=True)]
    outputs += [Output("--html", Path(config.html))] if config.html is not None else []
    check_outputs(config.cache, *outputs)


def check_head_matches(checkpoint: HeadCheckpoint, header: FeaturesHeader, head: Path, features: Path) -> None:
    """Refuse a head trained on other features than the file's: another backbone, other weights, another width."""
    recorded = WeightsIdentity.from_dict(checkpoint.weights)
    if checkpoint.backbone != header.backbone or not recorded.same_weights(header.weights):
        raise SuggestError(
            f"{head} was trained on {checkpoint.backbone} features ({recorded.describe()}), {features} holds "
            f"{header.backbone} features ({header.weights.describe()}): re-run train-head on this cache"
        )


def _pool(rows: CachedRows, features: Path) -> Candidates:
    chosen = [row for row, split in enumerate(rows.split) if split == POOL]
    if not chosen:
        raise SuggestError(f"{features} has no unlabeled pool: run extract with --pool FOLDER, or name folders to rank")
    return Candidates(
        names=[rows.paths[row] for row in chosen],
        sha256=[rows.sha256[row] for row in chosen],
        features=rows.features[chosen],
    )


def _folders(config, rows, header, features, on_progress, on_warning) -> Candidates:
    """The folders' images through the features' backbone; an image already labelled in the cache is skipped."""
    entries = find_images(list(config.folders))
    if not entries:
        raise DatasetError(f"no images found in {', '.join(map(str, config.folders))}")
    queries = query_features(entries, rows, header, config, features, on_progress, on_warning)
    found = Candidates(from_pool=False, skipped=list(queries.failed))
    kept = []
    for name, digest, row, vector in zip(queries.names, queries.sha256, queries.cached_row, queries.features):
        if row is not None and rows.split[row] != POOL:
            found.skipped.append((name, f"already labelled ({rows.split[row]}: {rows.paths[row]})"))
            continue
        found.names.append(name)
        found.sha256.append(digest)
        kept.append(vector)
    width = rows.features.shape[1] if rows.features.ndim == 2 else 0
    found.features = np.stack(kept).astype(np.float32) if kept else np.empty((0, width), np.float32)
    return found


def _scores(checkpoint: HeadCheckpoint, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The calibrated head's probabilities, and the unknown-image score when the head has a model."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(features, np.float32))
    with torch.inference_mode():
        probabilities = torch.softmax(checkpoint.head(tensor), dim=1).double().numpy()
        unknown = checkpoint.unknown.score(tensor).double().numpy() if checkpoint.unknown else None
    return probabilities, unknown


def rank_candidates(
    config: SuggestConfig, checkpoint: HeadCheckpoint, rows: CachedRows, found: Candidates
) -> list[Suggestion]:
    """The strategy's n suggestions among the candidates, each with the head's class and why it was chosen."""
    probabilities, unknown = _scores(checkpoint, found.features)
    labelled = rows.features[[row for row, split in enumerate(rows.split) if split == "train"]]
    view = PoolView(probabilities, found.features, labelled, unknown)
    ranking = rank(config.strategy, view, config.n, checkpoint.classes, config.seed)
    return [
        Suggestion(
            rank=place,
            path=found.names[row],
            sha256=found.sha256[row],
            score=float(score),
            suggested=checkpoint.classes[int(np.argmax(probabilities[row]))],
            confidence=float(probabilities[row].max()),
            why=why,
        )
        for place, (row, score, why) in enumerate(zip(ranking.rows.tolist(), ranking.score, ranking.why), start=1)
    ]


def suggest(
    config: SuggestConfig,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] = lambda message: None,
) -> SuggestSummary:
    """Rank the cache's unlabeled pool (or the images in config.folders) by how much labelling each should help the
    trained head, write the n best into config.out and, with config.html, a page of their thumbnails."""
    _check(config)
    head = head_path(config)
    checkpoint = load_head(head)
    if checkpoint.multilabel is not None:  # its strategies rank a softmax's classes; a sigmoid per label is not one
        raise SuggestError(
            f"{head} is a multi-label head: suggest ranks single-label heads only so far (docs/multi-label.md)"
        )
    features = chosen_features(config.cache, config.backbone)
    with FeatureStore(features) as store:
        header, rows = store.header, read_rows(store, [])
    check_head_matches(checkpoint, header, head, features)
    if config.folders:
        found = _folders(config, rows, header, features, on_progress, on_warning)
    else:
        found = _pool(rows, features)
    suggestions = rank_candidates(config, checkpoint, rows, found) if found.names else []
    write_suggestions(config.out, suggestions)
    files = [str(config.out)]
    if config.html is not None:
        from headstart.heads.pages.suggestions import write_suggestions_page

        write_suggestions_page(config, header, found.from_pool, suggestions)
        files.append(str(config.html))
    source = "the pool" if found.from_pool else ", ".join(map(str, config.folders))
    return SuggestSummary(
        len(found.names), source, config.strategy, suggestions, found.skipped, files, header.data_root
    )
