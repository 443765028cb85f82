"""The queries' features: a query already in the cache (by content sha256) takes its cached row; any other is run
through the backbone the features file records, with its weights and preprocessing, as predict does for a head."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.features.config import EngineConfig
from headstart.features.engines.batches import ProgressCallback
from headstart.features.folder import ImageEntry
from headstart.features.images import ImageDecodeError, read_file
from headstart.features.neighbours.formats import SimilarError
from headstart.features.store import FeaturesHeader


@dataclass
class Queries:
    """The queries that were read, their features and cached rows (None: not cached); those that were not."""

    names: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    cached_row: list[int | None] = field(default_factory=list)  # a row of the features file
    features: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (query, reason)


def _digest(entry: ImageEntry) -> str | None:
    try:
        data, _ = read_file(entry.path)
    except (ImageDecodeError, OSError):
        return None  # the engine reports why, in its own words
    return hashlib.sha256(data).hexdigest()


def _backbone(header: FeaturesHeader, config: EngineConfig, features: Path, on_warning: Callable[[str], None]):
    """The engine and the frozen backbone that computed the features file's rows."""
    from headstart.features import WeightsError, build_engine, load_backbone

    recorded = header.weights
    if recorded.kind == "file" and not Path(recorded.name).is_file():
        raise WeightsError(
            f"{features} was computed with weights file {recorded.name}, which is gone: restore it, or re-run extract"
        )
    engine = build_engine(config)
    backbone = load_backbone(
        recorded.spec(), engine.driver_device, header.precision, on_warning=on_warning, backbone=header.backbone
    )
    if not backbone.identity.same_weights(recorded):
        raise WeightsError(
            f"the weights found for {features} ({backbone.identity.describe()}) are not those it records "
            f"({recorded.describe()}): re-run extract"
        )
    return engine, backbone


def _embed(entries, header, config, features, on_progress, on_warning) -> dict[str, np.ndarray | str]:
    """Per entry name, its features, or the reason it could not be read."""
    engine, backbone = _backbone(header, config, features, on_warning)
    found: dict[str, np.ndarray | str] = {}
    with closing(engine.embed(entries, backbone, header.preprocessing, on_progress)) as batches:
        for batch in batches:
            vectors = iter(batch.features)
            for entry, error in zip(batch.entries, batch.errors):
                found[entry.name] = error if error else np.asarray(next(vectors), np.float32)
    return found


def _cached_row(entry: ImageEntry, candidates: list[int], paths: list[str], data_root: Path) -> int | None:
    """The cached row that is this query: the one stored under the query's own path, else the first with its content."""
    where = entry.path.resolve()
    for row in candidates:
        if (data_root / paths[row]).resolve() == where:
            return row
    return candidates[0] if candidates else None


def query_features(
    entries: list[ImageEntry],
    rows,
    header: FeaturesHeader,
    config: EngineConfig,
    features: Path,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] = lambda message: None,
) -> Queries:
    """Each entry's features: its cached row's when its content is cached, else computed; the backbone is loaded only
    when some query is not cached."""
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(rows.sha256):
        by_digest.setdefault(digest, []).append(index)
    digests = [_digest(entry) for entry in entries]
    new = [entry for entry, digest in zip(entries, digests) if digest not in by_digest]
    computed = _embed(new, header, config, features, on_progress, on_warning) if new else {}
    queries = Queries()
    for entry, digest in zip(entries, digests):
        row = _cached_row(entry, by_digest.get(digest or "", []), rows.paths, Path(header.data_root))
        vector = rows.features[row] if row is not None else computed.get(entry.name, "cannot be read")
        if isinstance(vector, str):
            queries.failed.append((entry.name, vector))
            continue
        if vector.shape != rows.features.shape[1:]:
            raise SimilarError(
                f"{features} holds {rows.features.shape[1]}-d features, its backbone computes "
                f"{vector.shape[0]}-d ones: re-run extract"
            )
        queries.names.append(entry.name)
        queries.sha256.append(digest or "")
        queries.cached_row.append(row)
        queries.features.append(vector)
    return queries
