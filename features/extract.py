"""The extract step, a runner that only chains roles: scan -> reuse plan -> engine -> writer."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from headstart.features.backbone import Backbone, check_weights, load_backbone, locate_weights
from headstart.features.backbones.registry import BackboneEntry, backbone_entry
from headstart.features.config import ExtractConfig
from headstart.features.engines import build_engine
from headstart.features.engines.batches import EmbeddedBatch, ProgressCallback, ShardReport
from headstart.features.engines.shards import complete_shards, new_target, remove_shards
from headstart.features.files.cachedir import features_file
from headstart.features.files.lock import cache_lock
from headstart.features.folder import Dataset, text_path
from headstart.features.merge import SplitSummary, write_features
from headstart.features.provenance import WeightsIdentity
from headstart.features.reuse import PreviousRows
from headstart.features.runtime import check_device, check_runtime, forward_description
from headstart.features.sources.choose import find_source, split_rule
from headstart.features.sources.multilabel import merge_by_content
from headstart.features.sources.rule import SplitRule
from headstart.features.sources.split import assign_splits
from headstart.features.store import MULTI_LABEL, SINGLE_LABEL, FeaturesHeader, partial_files


@dataclass
class ExtractSummary:
    """What an extract run did, for the report: where, with what, and per split what was extracted, reused, skipped."""

    path: Path
    classes: list[str]
    weights: WeightsIdentity
    device: str  # where the backbone ran, as the engine describes it
    splits: list[SplitSummary]
    rebuild_reason: str | None
    seconds: float
    resumed: int = 0  # rows reused from interrupted runs' partial files
    split: SplitRule | None = None  # how a folder without train/ was split
    table_skipped: list[tuple[str, str]] = field(default_factory=list)  # a label table's rows skipped: (path, why)
    merged: int = 0  # --multi-label: copies of one content in other class folders, merged into one image
    excluded: int = 0  # images left out by --exclude
    shards: ShardReport = field(default_factory=ShardReport)  # resumed, discarded, written by --engine ray workers


def _header(
    config: ExtractConfig, entry: BackboneEntry, dataset: Dataset, weights: WeightsIdentity, rule: SplitRule | None
) -> FeaturesHeader:
    import torch

    from headstart.features import __version__

    return FeaturesHeader(
        producer=f"headstart {__version__}",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        classes=dataset.classes,
        backbone=entry.name,
        weights=weights,
        preprocessing=entry.preprocessing_for(config.preprocess),
        precision=config.precision,
        data_root=text_path(dataset.root.resolve()),
        torch_version=torch.__version__,
        # The installed distribution's version: importing torchvision would cost a warm run more than its work
        # (torchvision.ops imports torch._dynamo), and a run with nothing to compute never needs torchvision.
        torchvision_version=metadata.version("torchvision"),
        forward=forward_description(config.runtime, Backbone.forward),
        split=rule,
        task=MULTI_LABEL if config.multi_label else SINGLE_LABEL,
    )


def _no_batches() -> Generator[EmbeddedBatch, None, None]:
    """What an engine yields for no entries, without building a backbone."""
    yield from ()


def extract_features(
    config: ExtractConfig,
    on_progress: ProgressCallback | None = None,
    on_start: Callable[[ExtractSummary], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """Write the backbone's features file in config.cache for the dataset in config.data; return what was done."""
    started = time.perf_counter()
    entry = backbone_entry(config.backbone)
    check_runtime(config.runtime, config.precision, config.compile, config.engine)
    engine = build_engine(config)
    dataset, rule = find_source(config, split_rule(config))
    located = locate_weights(config.weights, entry=entry)  # found and hashed once: the identity and the network use it
    weights = located.identity
    header = _header(config, entry, dataset, weights, rule)
    path = Path(config.cache) / features_file(entry.name)
    with cache_lock(config.cache, "extract"):
        shards, discarded = complete_shards(path)  # an interrupted Ray run's checked shards; the rest removed
        with closing(PreviousRows(path, header, shards)) as previous:
            plan, merged = previous.plan(dataset.splits), 0
            if config.multi_label:
                plan, merged = merge_by_content(plan)
            plan = assign_splits(plan, rule) if rule else plan
            summary = ExtractSummary(
                path,
                dataset.classes,
                weights,
                engine.describe(),
                [],
                previous.rebuild_reason,
                0.0,
                previous.resumed_rows(plan),
                rule,
                dataset.table_skipped,
                merged,
                len(dataset.excluded),
            )
            summary.shards = ShardReport(resumed=previous.resumed_shards, discarded=discarded)
            if on_start:
                on_start(summary)
            # The weights are loaded only when there is something to compute: a
            # warm run needs neither their tensors nor torchvision.
            batches = _no_batches()
            if plan.todo:
                check_weights(located, entry)  # a file of another network is refused before any image is decoded
                check_device(config.runtime, engine.driver_device)
                backbone = load_backbone(
                    located,
                    engine.driver_device,
                    config.precision,
                    compile=config.compile,
                    on_warning=on_warning,
                    backbone=entry,
                    runtime=config.runtime,
                )
                splits = [split for split, entries in plan.splits.items() for _, reuse in entries if reuse is None]
                target = new_target(path, header, splits, summary.shards)
                batches = engine.embed(plan.todo, backbone, header.preprocessing, on_progress, shards=target)
            # closing: the decoding workers (or the Ray pipeline) stop whatever ends the run.
            with closing(batches) as batches:
                summary.splits = write_features(path, header, plan, previous, batches, dataset.skipped)
        for partial in partial_files(path):  # resumed from, or unusable: the complete file supersedes them all
            partial.unlink(missing_ok=True)
        remove_shards(path)  # the same for shards
    summary.seconds = time.perf_counter() - started
    return summary
