"""Every cached row of every split as one table: what each audit step reads, loaded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.features import FeaturesHeader, FeatureStore


@dataclass
class CachedRows:
    """Rows of all splits in file order (train first); `split` and `paths` say where each row came from."""

    features: np.ndarray  # float32 (N, dim)
    labels: np.ndarray  # int64 (N,)
    split: np.ndarray  # str (N,)
    paths: list[str]
    sha256: list[str]
    classes: list[str]
    data_root: Path
    header: FeaturesHeader
    label_sets: np.ndarray | None = None  # uint8 (N, C) of a multi-label file (labels: each row's lowest, -1: none)

    def __len__(self) -> int:
        return len(self.paths)

    def where(self, split: str) -> np.ndarray:
        """Row numbers of a split."""
        return np.flatnonzero(self.split == split)

    def label_set_text(self, row: int) -> str:
        """A multi-label row's labels, `|`-joined in class order (empty for none)."""
        assert self.label_sets is not None
        return "|".join(self.classes[label] for label in self.label_sets[row].nonzero()[0])

    @property
    def counts(self) -> dict[str, int]:
        """Rows per split."""
        names, counts = np.unique(self.split, return_counts=True)
        return {str(name): int(count) for name, count in zip(names, counts)}


def load_rows(path: str | Path) -> CachedRows:
    """Read features.h5 whole; refuse a file without training rows."""
    with FeatureStore(path) as store:
        header = store.header
        blocks = {split: store.read(split) for split in store.labelled_splits}  # the unlabeled pool is no evidence
    if "train" not in blocks or not len(blocks["train"]):
        raise ValueError(f"{path} has no training rows: check the dataset and re-run `extract`")
    order = ["train", *sorted(split for split in blocks if split != "train")]
    dim = blocks["train"].features.shape[1]
    return CachedRows(
        features=np.concatenate([blocks[s].features.reshape(-1, dim) for s in order]),
        labels=np.concatenate([blocks[s].labels for s in order]),
        split=np.concatenate([np.full(len(blocks[s]), s, dtype=object) for s in order]).astype(str),
        paths=[p for s in order for p in blocks[s].paths],
        sha256=[h for s in order for h in blocks[s].sha256],
        classes=list(header.classes),
        data_root=Path(header.data_root),
        header=header,
        label_sets=np.concatenate([blocks[s].label_sets for s in order]) if header.multi_label else None,
    )
