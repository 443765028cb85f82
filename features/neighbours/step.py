"""The similar step, a runner that only chains roles: features file -> searched rows -> queries' features -> exact
search -> the table (CSV or JSON Lines) and the optional HTML page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.features.engines.batches import ProgressCallback
from headstart.features.files.cachedir import chosen_features
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.folder import DatasetError, find_images
from headstart.features.neighbours.config import POOL_SPLIT, SIMILAR_FORMATS, SimilarConfig
from headstart.features.neighbours.formats import Neighbour, SimilarError, write_neighbours
from headstart.features.neighbours.index import IndexKey, cached_index, use_index
from headstart.features.neighbours.queries import Queries, query_features
from headstart.features.neighbours.space import CachedRows, ExactSearch, IndexedSearch, read_rows
from headstart.features.store import FeaturesHeader, FeatureStore


@dataclass(frozen=True)
class SimilarSummary:
    """What was done: the queries answered (and how many of them were cached), those that could not be read, the
    splits searched and their rows, and the files written."""

    queries: int
    cached: int
    failed: list[tuple[str, str]]
    splits: list[str]
    searched: int
    records: int
    files: list[str]


def _check(config: SimilarConfig) -> None:
    if config.format not in SIMILAR_FORMATS:
        raise SimilarError(f"unknown format {config.format!r}: use one of {', '.join(SIMILAR_FORMATS)}")
    if config.k < 1:
        raise SimilarError(f"-k {config.k}: give at least 1")
    outputs = [Output("--out", Path(config.out), streamed=True)]
    outputs += [Output("--html", Path(config.html))] if config.html is not None else []
    check_outputs(config.cache, *outputs)


def searched_splits(available: list[str], config: SimilarConfig) -> list[str]:
    """The splits searched: those named (--split), else every split but the pool; the pool too with --pool."""
    named = list(config.splits) or [split for split in available if split != POOL_SPLIT]
    if config.pool and POOL_SPLIT not in named:
        named.append(POOL_SPLIT)
    unknown = [split for split in named if split not in available and not (split == POOL_SPLIT and config.pool)]
    if unknown:
        raise SimilarError(
            f"--split {', '.join(unknown)}: the features file has no such split (it has {', '.join(available)})"
        )
    return [split for split in available if split in named]


def searcher(rows: CachedRows, config: SimilarConfig, features: Path, header: FeaturesHeader) -> ExactSearch:
    """Exact search, or above config.index_min_rows rows (with faiss installed) the index cached in CACHE/index/."""
    searched = rows.features[rows.searched]
    if not use_index(len(searched), config.index_min_rows):
        return ExactSearch(searched)
    search = ExactSearch(searched)
    unit = search.unit(searched)
    splits = sorted({rows.split[row] for row in rows.searched.tolist()})
    index, _ = cached_index(config.cache, IndexKey.of(features, header.backbone, "centred", unit, splits), unit)
    return IndexedSearch(searched, index)


def neighbours(rows: CachedRows, queries: Queries, k: int, search: ExactSearch) -> list[list[Neighbour]]:
    """Per query, its k nearest searched rows (the query's own cached row left out), nearest first."""
    exclude = []
    for row in queries.cached_row:
        position = int(np.searchsorted(rows.searched, row)) if row is not None else len(rows.searched)
        exclude.append(position if position < len(rows.searched) and rows.searched[position] == row else None)
    found, sims = search.nearest(np.stack(queries.features), k, exclude)
    answers = []
    for name, positions, similarities in zip(queries.names, found, sims):
        kept = [(int(p), float(s)) for p, s in zip(positions, similarities) if np.isfinite(s)]
        answers.append(
            [
                Neighbour(
                    *(name, rank, rows.paths[row], rows.split[row], rows.labels[row], similarity),
                    rows.label_sets[row] if rows.label_sets is not None else None,
                )
                for rank, (row, similarity) in enumerate(((rows.searched[p], s) for p, s in kept), start=1)
            ]
        )
    return answers


def find_similar(
    config: SimilarConfig,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] = lambda message: None,
) -> SimilarSummary:
    """For each query image (files, or folders searched recursively), the k nearest cached images by cosine over the
    same backbone's features, written as a table into config.out and, with config.html, as a page of thumbnails."""
    _check(config)
    entries = find_images(list(config.queries))
    if not entries:
        raise DatasetError(f"no images found in {', '.join(map(str, config.queries))}")
    features = chosen_features(config.cache, config.backbone)
    with FeatureStore(features) as store:
        header, splits = store.header, searched_splits(store.splits, config)
        rows = read_rows(store, splits)
    if not len(rows.searched):
        raise SimilarError(f"{features} holds no rows in {', '.join(splits) or 'any split'}: choose other splits")
    queries = query_features(entries, rows, header, config, features, on_progress, on_warning)
    answers = neighbours(rows, queries, config.k, searcher(rows, config, features, header)) if queries.names else []
    found = (record for answer in answers for record in answer)
    records = write_neighbours(config.out, found, config.format, multi_label=header.multi_label)
    files = [str(config.out)]
    if config.html is not None:
        from headstart.features.neighbours.page import write_similar_page

        write_similar_page(config, header, queries, answers)
        files.append(str(config.html))
    cached = sum(row is not None for row in queries.cached_row)
    return SimilarSummary(len(queries.names), cached, queries.failed, splits, len(rows.searched), records, files)
