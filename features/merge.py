"""Merge reused and freshly computed rows into a new features file, split by split, in scan order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.features.backbones.registry import backbone_entry
from headstart.features.engines.batches import EmbeddedBatch
from headstart.features.reuse import CachedRow, PreviousRows, ReusePlan
from headstart.features.sources.choose import UNSPLIT
from headstart.features.sources.multilabel import label_matrix
from headstart.features.store import FeaturesHeader, Rows, StoreWriter

BLOCK_ROWS = 256


@dataclass
class SplitSummary:
    """One split of an extract run: files found, extracted, reused, and skipped with their reasons (every file found
    is one of extracted, reused or skipped)."""

    split: str
    found: int = 0
    extracted: int = 0
    reused: int = 0
    relabelled: int = 0  # reused rows whose class or split changed: their features stay, their labels are the source's
    skipped: list[tuple[str, str]] = field(default_factory=list)


def write_features(
    path: Path,
    header: FeaturesHeader,
    plan: ReusePlan,
    previous: PreviousRows,
    batches: Iterator[EmbeddedBatch],
    not_read: dict[str, list[tuple[str, str]]] | None = None,
) -> list[SplitSummary]:
    """Write path from the plan: reused rows from previous, the rest from batches (the plan's todo, in order).
    not_read: per split, the files the scan did not read and why, recorded with the split's undecodable files (a
    folder without train/ records them under train, where its unreadable files go)."""
    computed = _computed(batches)
    width = backbone_entry(header.backbone).width
    not_read = dict(not_read or {})
    if UNSPLIT in not_read:
        not_read["train"] = not_read.get("train", []) + not_read.pop(UNSPLIT)
    with StoreWriter(path, header, width, BLOCK_ROWS) as writer:
        summaries = [
            _write_split(writer, split, entries, previous, computed, header.classes, not_read.get(split, []))
            for split, entries in plan.splits.items()
        ]
        writer.commit()
    return summaries


def _computed(batches: Iterator[EmbeddedBatch]) -> Iterator[tuple]:
    """Per entry, in order: its stamp, its error, its feature row, and whether it ends its batch."""
    for batch in batches:
        ok_rows = iter(batch.features)
        last = len(batch.entries) - 1
        for position, (stamp, error) in enumerate(zip(batch.stamps, batch.errors)):
            yield stamp, error, (next(ok_rows) if error is None else None), position == last


def _write_split(
    writer: StoreWriter,
    split: str,
    plan: list,
    previous: PreviousRows,
    computed: Iterator,
    classes: list[str],
    not_read: list[tuple[str, str]],
) -> SplitSummary:
    summary = SplitSummary(split, found=len(plan) + len(not_read), skipped=list(not_read))
    writer.begin_split(split)
    block = []
    for entry, reuse in plan:
        batch_done = False
        if reuse is not None:
            cached, stamp = reuse
            block.append((entry, stamp, cached))
            summary.reused += 1
            summary.relabelled += (cached.split, cached.class_name) != (split, _class_name(classes, entry.label))
        else:
            stamp, error, feature, batch_done = next(computed)
            if error is not None:
                summary.skipped.append((entry.name, error))
            else:
                block.append((entry, stamp, feature))
                summary.extracted += 1
        # Each computed batch (on a CPU a decoding group: four forward passes, at least 32 images) reaches the disk
        # at once: an interrupted run loses at most that.
        if len(block) == BLOCK_ROWS or batch_done:
            _write_block(writer, previous, block)
            block = []
    _write_block(writer, previous, block)
    writer.end_split(summary.skipped)
    return summary


def _class_name(classes: list[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else ""


def _write_block(writer: StoreWriter, previous: PreviousRows, block: list) -> None:
    """block: (entry, stamp, feature row or CachedRow), in file order."""
    cached = previous.features([source for _, _, source in block if isinstance(source, CachedRow)])
    features = [cached[source] if isinstance(source, CachedRow) else source for _, _, source in block]
    writer.append(
        Rows(
            np.stack(features).astype(np.float32) if features else np.zeros((0, writer.dim), np.float32),
            np.asarray([entry.label for entry, _, _ in block], np.int64),
            [entry.name for entry, _, _ in block],
            np.asarray([stamp.size for _, stamp, _ in block], np.int64),
            np.asarray([stamp.mtime_ns for _, stamp, _ in block], np.int64),
            [stamp.sha256 for _, stamp, _ in block],
            label_matrix([entry for entry, _, _ in block], writer.label_count) if writer.label_count else None,
        )
    )
