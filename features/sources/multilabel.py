"""`extract --multi-label` from class folders: the same content in several class folders is one image with several
labels. Each split's entries are grouped by content hash (the cache's, or read now); the first in scan order stands
for the group and carries the sorted set of its folders' labels.

A label table (features/sources/labels.py) gives its entries their `label_set` directly; copies are merged the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from headstart.features.folder import ImageEntry
from headstart.features.reuse import Reuse, ReusePlan
from headstart.features.sources.split import content_sha256


def merge_by_content(
    plan: ReusePlan, content: Callable[[ImageEntry, Reuse], str | None] = content_sha256
) -> tuple[ReusePlan, int]:
    """The plan with each split's copies of one content merged into its first entry, labelled by the union of their
    labels; and how many copies were merged away. An unreadable file stays an entry of its own (one label)."""
    merged: dict[str, list[tuple[ImageEntry, Reuse]]] = {}
    dropped = 0
    for split, entries in plan.splits.items():
        groups: dict[str, list[tuple[ImageEntry, Reuse]]] = {}
        order: list[list[tuple[ImageEntry, Reuse]]] = []
        for entry, reuse in entries:
            sha256 = content(entry, reuse)
            if sha256 is None:
                order.append([(entry, reuse)])
                continue
            if sha256 not in groups:
                groups[sha256] = []
                order.append(groups[sha256])
            groups[sha256].append((entry, reuse))
        merged[split] = [_one_image(group) for group in order]
        dropped += len(entries) - len(order)
    return ReusePlan(merged), dropped


def _one_image(group: list[tuple[ImageEntry, Reuse]]) -> tuple[ImageEntry, Reuse]:
    """The group's first entry with the union of the group's label sets as its own (its label: the lowest; -1 for
    none: an unlabeled image, or a table row with an empty label)."""
    entry, reuse = group[0]
    sets = (member.label_set if member.label_set is not None else (member.label,) for member, _ in group)
    labels = tuple(sorted({label for labels in sets for label in labels if label >= 0}))
    return ImageEntry(entry.path, entry.name, labels[0] if labels else -1, labels), reuse


def label_matrix(entries: list[ImageEntry], classes: int) -> np.ndarray:
    """The (N, classes) uint8 0/1 matrix of the entries' label sets (an entry without a set: its one label; an
    unlabeled pool entry, or an empty set: a row of zeros)."""
    matrix = np.zeros((len(entries), classes), np.uint8)
    for row, entry in enumerate(entries):
        labels = entry.label_set if entry.label_set is not None else (entry.label,)
        matrix[row, [label for label in labels if label >= 0]] = 1
    return matrix
