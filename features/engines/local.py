"""The local engine: decode images and run the backbone in this process, in input order.

On a CPU the forward pass already uses every core, so decoding and the forward pass take turns: a group of images
(four forward passes' worth, at least 32) is decoded on a pool of threads (Pillow releases the GIL while it decodes
and resizes), then run in forward passes of the batch size, and yielded as one batch (one write to the features
file, not one per forward pass). Decoding beside the forward pass made both slower than taking turns, on threads and
in per-core streams alike (docs/benchmark.md). The network is built on the pool beside the first group's decoding.
On a GPU the CPU only decodes, and DataLoader worker processes decode ahead while the GPU runs: processes decoded
faster than threads there (bench/gpu.py; docs/benchmark.md)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from headstart.features.backbone import Backbone, pick_device
from headstart.features.engines.batches import EmbeddedBatch, ProgressCallback, ShardTarget, load_image
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp, normalize_pixels, pixel_transform
from headstart.features.provenance import Preprocessing

# The fastest end to end on a CPU when measured (docs/benchmark.md).
CPU_BATCH_SIZES = {"fp32": 8, "bf16": 16}
GPU_BATCH_SIZE = 64
MAX_WORKERS = 32
DECODE_GROUP = 32  # images decoded per turn, at least: fewer, longer turns keep the threads busy
# On a CPU, forward passes between two decoding turns: after a turn the network's weights are out of the caches
# (measured: docs/benchmark.md).
PASSES_PER_TURN = 4

Loaded = tuple[torch.Tensor | None, FileStamp | None, str | None]  # load_image's answer for one file
Decoded = list[Loaded]
Decode = Callable[[str | os.PathLike], Loaded]


def default_workers() -> int:
    """Decoding threads (CPU) or processes (GPU): one per core, at most 32; none (decode in this thread) on one core.
    Beside a GPU decoding sets the pace, so more processes pay (bench/gpu.py; docs/benchmark.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(MAX_WORKERS, cores)


def default_batch_size(device: torch.device, precision: str = "fp32") -> int:
    """Images per forward pass when the user gives none: small batches stay in a CPU's caches; a GPU wants work."""
    return CPU_BATCH_SIZES[precision] if device.type == "cpu" else GPU_BATCH_SIZE


def _features(decoded: Decoded, backbone: Backbone, preprocessing: Preprocessing) -> torch.Tensor:
    """The features of the decoded images, in one forward pass."""
    tensors = [tensor for tensor, _, _ in decoded if tensor is not None]
    if not tensors:
        return torch.zeros(0, backbone.width)
    pixels = torch.stack(tensors).to(backbone.device, non_blocking=True)
    return backbone.features(normalize_pixels(pixels, preprocessing))


def _decoded_in_turns(
    groups: list[list[ImageEntry]], decode: Decode, threads: int, meanwhile: Callable[[], object]
) -> Generator[Decoded, None, None]:
    """Each group decoded on a pool of threads (or in this thread when threads is 0), in order; the next group starts
    only when the caller asks for it. meanwhile (building the network) runs on the pool beside the first group."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="headstart-decode") if threads else None
    try:
        pending = pool.submit(meanwhile) if pool else None
        if pending is None:
            meanwhile()
        for group in groups:
            paths = [entry.path for entry in group]
            decoded = list(pool.map(decode, paths)) if pool else [decode(path) for path in paths]
            if pending is not None:
                pending.result()  # its exception, if any, is raised here
                pending = None
            yield decoded
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)  # a thread busy with an image finishes it, then ends


class _Files(TorchDataset):
    """One file per item, decoded in a DataLoader worker process; a bad file becomes an error string."""

    def __init__(self, paths: list, decode: Decode):
        self.paths, self.decode = paths, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Loaded:
        return self.decode(self.paths[index])


def _decoded_ahead(groups: list[list[ImageEntry]], decode: Decode, workers: int) -> Generator[Decoded, None, None]:
    """Each group decoded by worker processes that keep several groups ahead of the caller, in order; closing the
    iterator ends them."""
    paths = [entry.path for group in groups for entry in group]
    yield from DataLoader(
        _Files(paths, decode),
        batch_size=len(groups[0]),
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=4 if workers else None,
    )


@dataclass(frozen=True)
class LocalEngine:
    """Decoding threads or processes (default: one per core, at most 32) and the backbone on device, in this process."""

    device: str = "auto"
    batch_size: int | None = None  # None: default_batch_size for the device
    workers: int | None = None

    @property
    def driver_device(self) -> torch.device:
        return pick_device(self.device)

    def describe(self) -> str:
        return str(self.driver_device)

    def embed(
        self,
        entries: list[ImageEntry],
        backbone: Backbone,
        preprocessing: Preprocessing,
        on_progress: ProgressCallback | None = None,
        shards: ShardTarget | None = None,
    ) -> Generator[EmbeddedBatch, None, None]:
        """Yield the features of entries a decoding group at a time (forward passes of batch_size within), in order.
        shards: ignored, the rows are computed here and come back to this process."""
        batch_size = self.batch_size or default_batch_size(backbone.device, backbone.precision)
        on_cpu = backbone.device.type == "cpu"
        size = max(PASSES_PER_TURN * batch_size if on_cpu else batch_size, DECODE_GROUP)
        groups = [entries[start : start + size] for start in range(0, len(entries), size)]
        if not groups:
            return
        decode = functools.partial(
            load_image, transform=pixel_transform(preprocessing), draft_size=preprocessing.draft_size
        )
        workers = default_workers() if self.workers is None else self.workers
        if on_cpu:
            decoded_groups = _decoded_in_turns(groups, decode, workers, meanwhile=backbone.build)
        else:
            decoded_groups = _decoded_ahead(groups, decode, workers)
        done = 0
        try:
            for group, decoded in zip(groups, decoded_groups):
                # One EmbeddedBatch per group, not per forward pass: a quarter of the writes to the features file.
                features = torch.cat(
                    [
                        _features(decoded[start : start + batch_size], backbone, preprocessing)
                        for start in range(0, len(group), batch_size)
                    ]
                )
                done += len(group)
                if on_progress:
                    on_progress(done, len(entries))
                yield EmbeddedBatch(
                    group, [stamp for _, stamp, _ in decoded], [error for _, _, error in decoded], features.numpy()
                )
        finally:
            decoded_groups.close()
