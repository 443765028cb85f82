"""Decode images in DataLoader workers and run them through the backbone in batches, in input order.

The same code serves extract and predict, so both see identical pixels and identical features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .backbone import FEATURE_DIM, Backbone
from .folder import ImageEntry
from .images import FileStamp, ImageDecodeError, Preprocessing, build_transform, decode_image, read_file

ProgressCallback = Callable[[int, int], None]


def default_workers() -> int:
    """Decoding workers: as many as there are cores, at most 8, none where there is only one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(8, cores)


@dataclass
class EmbeddedBatch:
    """A batch of entries: per entry a stamp or an error; features for the entries without error, in order."""

    entries: list[ImageEntry]
    stamps: list[FileStamp | None]
    errors: list[str | None]
    features: np.ndarray

    def ok_entries(self) -> list[ImageEntry]:
        return [entry for entry, error in zip(self.entries, self.errors) if error is None]


class _DecodedImages(TorchDataset):
    """Reads and preprocesses one file per item; a bad file becomes an error string, never an exception."""

    def __init__(self, entries: list[ImageEntry], preprocessing: Preprocessing):
        self.entries = entries
        self.transform = build_transform(preprocessing)
        self.draft_size = preprocessing.draft_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        try:
            data, stamp = read_file(self.entries[index].path)
            return index, self.transform(decode_image(data, self.draft_size)), stamp, None
        except ImageDecodeError as error:
            return index, None, None, str(error)
        except (OSError, ValueError, RuntimeError) as error:  # pixels Pillow decoded but torchvision cannot use
            return index, None, None, f"cannot preprocess image: {error}"


def _collate(items):
    indices = [item[0] for item in items]
    tensors = [item[1] for item in items if item[1] is not None]
    batch = torch.stack(tensors) if tensors else None
    return indices, batch, [item[2] for item in items], [item[3] for item in items]


def embed_images(
    entries: list[ImageEntry],
    backbone: Backbone,
    preprocessing: Preprocessing,
    batch_size: int = 32,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[EmbeddedBatch]:
    """Yield the features of entries batch by batch, in the order given."""
    if not entries:
        return
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        _DecodedImages(entries, preprocessing),
        batch_size=batch_size,
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
