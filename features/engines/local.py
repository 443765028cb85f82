"""The local engine: decode images in DataLoader workers and run the backbone in this process, in input order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..backbone import FEATURE_DIM, Backbone, pick_device
from ..folder import ImageEntry
from ..images import build_transform
from ..provenance import Preprocessing
from .batches import EmbeddedBatch, ProgressCallback, load_image


def default_workers() -> int:
    """Decoding workers: as many as there are cores, at most 8, none where there is only one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(8, cores)


class _DecodedImages(TorchDataset):
    """Reads and preprocesses one file per item; a bad file becomes an error string, never an exception."""

    def __init__(self, entries: list[ImageEntry], preprocessing: Preprocessing):
        self.entries = entries
        self.transform = build_transform(preprocessing)
        self.draft_size = preprocessing.draft_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        return index, *load_image(self.entries[index].path, self.transform, self.draft_size)


def _collate(items):
    indices = [item[0] for item in items]
    tensors = [item[1] for item in items if item[1] is not None]
    batch = torch.stack(tensors) if tensors else None
    return indices, batch, [item[2] for item in items], [item[3] for item in items]


@dataclass(frozen=True)
class LocalEngine:
    """Decoding workers (default: one per core, at most 8) and the backbone on device, in this process."""

    device: str = "auto"
    batch_size: int = 32
    workers: int | None = None

    @property
    def driver_device(self) -> torch.device:
        return pick_device(self.device)

    def describe(self) -> str:
        return str(self.driver_device)

    def embed(self, entries: list[ImageEntry], backbone: Backbone, preprocessing: Preprocessing,
              on_progress: ProgressCallback | None = None) -> Iterator[EmbeddedBatch]:
        """Yield the features of entries batch by batch, in the order given."""
        if not entries:
            return
        workers = default_workers() if self.workers is None else self.workers
        loader = DataLoader(
            _DecodedImages(entries, preprocessing),
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=backbone.device.type == "cuda",
            prefetch_factor=4 if workers else None,
        )
        done = 0
        for indices, batch, stamps, errors in loader:
            features = backbone.features(batch) if batch is not None else torch.zeros(0, FEATURE_DIM)
            done += len(indices)
            if on_progress:
                on_progress(done, len(entries))
            yield EmbeddedBatch([entries[i] for i in indices], stamps, errors, features.numpy())
