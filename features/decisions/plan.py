"""Decisions -> moves: each valid, current, conflict-free decision becomes one rename inside the dataset folder (a
relabel or a split move) or into the quarantine folder (a removal, a duplicate's copy); the rest are listed."""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from headstart.features.decisions.formats import Decision, InvalidRow


@dataclass(frozen=True)
class Move:
    """One rename: the file at `source` to `target` (absolute paths), for `decision`."""

    source: Path
    target: Path
    sha256: str
    decision: Decision


@dataclass
class Plan:
    """What apply would do: the moves in file order, the ignored findings, and the rows skipped with why."""

    data: Path
    quarantine: Path
    moves: list[Move] = field(default_factory=list)
    ignored: list[Decision] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line, path, reason)


def file_sha256(path: Path) -> str | None:
    """The sha256 of a regular file that is not a link; None when it is missing or anything else."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _target(decision: Decision, plan: Plan) -> Path | str:
    """Where the decision's file goes, or why it cannot go anywhere."""
    parts = decision.path.split("/")
    if decision.action == "relabel":
        if len(parts) < 2:
            return "relabel needs the image inside a class folder"
        if parts[-2] == decision.argument:
            return f"already in class {decision.argument}"
        return plan.data.joinpath(*parts[:-2], decision.argument, parts[-1])
    if decision.action == "move-split":
        if len(parts) < 3:
            return "move-split needs the image inside <split>/<class>/"
        if parts[-3] == decision.argument:
            return f"already in split {decision.argument}"
        return plan.data.joinpath(*parts[:-3], decision.argument, *parts[-2:])
    if decision.action == "duplicate-of":
        if decision.argument == decision.path:
            return "an image cannot be a duplicate of itself"
        if file_sha256(plan.data / decision.argument) is None:
            return f"the kept image {decision.argument} is missing"
    return plan.quarantine.joinpath(*parts)  # remove, duplicate-of: this copy into quarantine


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _plan_one(decision: Decision, plan: Plan, targets: set[Path], removed: set[str]) -> str | None:
    """Add the decision's move to the plan; the reason when it is skipped."""
    source = plan.data / decision.path
    if not _inside(source.parent, plan.data):
        return "the path leads outside the dataset folder (a link)"
    found = file_sha256(source)
    if found is None:
        return "no such regular file"
    if found != decision.sha256:
        return "stale: the file changed since the decision was made (its sha256 differs)"
    if decision.action == "duplicate-of" and decision.argument in removed:
        return f"the kept image {decision.argument} is itself removed"
    target = _target(decision, plan)
    if isinstance(target, str):
        return target
    if not (_inside(target.parent, plan.data) or _inside(target.parent, plan.quarantine)):
        return "the target folder leads outside the dataset and quarantine folders (a link)"
    if os.path.lexists(target) or target in targets:
        return f"{target} exists: never overwritten"
    targets.add(target)
    plan.moves.append(Move(source, target, found, decision))
    return None


def plan_decisions(decisions: list[Decision], invalid: list[InvalidRow], data: Path, quarantine: Path) -> Plan:
    """The moves that carry out decisions on the dataset folder `data`; nothing is touched."""
    plan = Plan(Path(data), Path(quarantine))
    plan.skipped += [(row.line, row.path, f"invalid row: {row.reason}") for row in invalid]
    acted = [decision for decision in decisions if decision.action != "ignore"]
    plan.ignored = [decision for decision in decisions if decision.action == "ignore"]
    twice = {path for path, count in Counter(decision.path for decision in acted).items() if count > 1}
    removed = {decision.path for decision in acted if decision.action in ("remove", "duplicate-of")}
    targets: set[Path] = set()
    for decision in acted:
        if decision.path in twice:
            reason: str | None = "conflict: several decisions for this image"
        else:
            reason = _plan_one(decision, plan, targets, removed)
        if reason:
            plan.skipped.append((decision.line, decision.path, reason))
    return plan
