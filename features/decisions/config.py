"""apply's options, importable without numpy or torch so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QUARANTINE_SUFFIX = "-quarantine"  # DATA's sibling DATA-quarantine/: removed files and the journals


@dataclass(frozen=True, kw_only=True)
class ApplyConfig:
    """Which decisions, on which dataset folder, where removed files and the journals go, and whether to act."""

    decisions: Path | None = None  # None: only with undo
    data: Path | None = None  # None: the data folder the cache's features file records
    cache: Path = Path("cache")
    backbone: str | None = None  # which features file names the data folder, when the cache holds several
    quarantine: Path | None = None  # None: DATA's sibling DATA-quarantine/
    yes: bool = False  # False: a dry run, nothing moves
    # A dataset named by a label table (features/decisions/table.py): its rows are edited, no image moves.
    labels: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    split_column: str | None = None


def quarantine_folder(config: ApplyConfig, data: Path) -> Path:
    """Where removed files and the journals go: --quarantine, else DATA-quarantine beside DATA."""
    if config.quarantine is not None:
        return Path(config.quarantine)
    data = data.resolve()
    return data.parent / (data.name + QUARANTINE_SUFFIX)
