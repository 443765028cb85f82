"""A folder without train/ split by the rule: each entry's content hash (the cache's, or read now) -> its split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from headstart.features.backbone import file_sha256
from headstart.features.folder import ImageEntry
from headstart.features.reuse import Reuse, ReusePlan
from headstart.features.sources.rule import UNSPLIT, SplitRule


@dataclass
class _Drawn:
    """One entry of the plan with its split and its draw."""

    split: str
    draw: float
    entry: ImageEntry
    reuse: Reuse


def content_sha256(entry: ImageEntry, reuse: Reuse) -> str | None:
    """The entry's sha256: the cached row's when its file is unchanged, else read now (None: unreadable)."""
    if reuse is not None:
        return reuse[1].sha256
    try:
        return file_sha256(entry.path)
    except OSError:
        return None


def assign_splits(
    plan: ReusePlan, rule: SplitRule, content: Callable[[ImageEntry, Reuse], str | None] = content_sha256
) -> ReusePlan:
    """The plan with its UNSPLIT entries moved to train, val and test by the rule, in scan order within each, after
    the entries a label table put in those splits itself; other splits (the pool) follow as they are."""
    if UNSPLIT not in plan.splits:
        return plan
    drawn: list[_Drawn] = []
    by_class: dict[int, list[_Drawn]] = {}
    for entry, reuse in plan.splits[UNSPLIT]:
        sha256 = content(entry, reuse)
        # An unreadable file goes to train: the engine reports and skips it there, like any undecodable image.
        split, u = (rule.split_of(sha256), rule.draw(sha256)) if sha256 else ("train", 1.0)
        drawn.append(_Drawn(split, u, entry, reuse))
        by_class.setdefault(entry.label, []).append(drawn[-1])
    for of_class in by_class.values():
        if not any(item.split == "train" for item in of_class):
            max(of_class, key=lambda item: item.draw).split = "train"
    names = ["train"] + [name for name, share in (("val", rule.val_fraction), ("test", rule.test_fraction)) if share]
    names += [name for name in plan.splits if name not in names and name != UNSPLIT]
    return ReusePlan(
        {
            name: plan.splits.get(name, []) + [(item.entry, item.reuse) for item in drawn if item.split == name]
            for name in names
        }
    )
