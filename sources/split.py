"""A folder without train/ split by the rule: each entry's content hash (the cache's, or read now) -> its split."""

from __future__ import annotations

from collections.abc import Callable

from headstart.features.backbone import file_sha256
from headstart.features.folder import ImageEntry
from headstart.features.reuse import Reuse, ReusePlan
from headstart.sources.choose import UNSPLIT
from headstart.sources.rule import SplitRule


def _content(entry: ImageEntry, reuse: Reuse) -> str | None:
    """The entry's sha256: the cached row's when its file is unchanged, else read now (None: unreadable)."""
    if reuse is not None:
        return reuse[1].sha256
    try:
        return file_sha256(entry.path)
    except OSError:
        return None


def assign_splits(
    plan: ReusePlan, rule: SplitRule, content: Callable[[ImageEntry, Reuse], str | None] = _content
) -> ReusePlan:
    """The plan with its UNSPLIT entries moved to train, val and test by the rule, in scan order within each."""
    if UNSPLIT not in plan.splits:
        return plan
    drawn = []
    for entry, reuse in plan.splits[UNSPLIT]:
        sha256 = content(entry, reuse)
        # An unreadable file goes to train: the engine reports and skips it there, like any undecodable image.
        split, u = (rule.split_of(sha256), rule.draw(sha256)) if sha256 else ("train", 1.0)
        drawn.append([split, u, entry, reuse])
    for label in {entry.label for _, _, entry, _ in drawn}:
        of_class = [item for item in drawn if item[2].label == label]
        if not any(item[0] == "train" for item in of_class):
            max(of_class, key=lambda item: item[1])[0] = "train"
    names = ["train"] + [
        name for name, fraction in (("val", rule.val_fraction), ("test", rule.test_fraction)) if fraction
    ]
    return ReusePlan({name: [(entry, reuse) for split, _, entry, reuse in drawn if split == name] for name in names})
