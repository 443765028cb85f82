"""The Ray engine: the engine contract (entries in, EmbeddedBatches out, in input order) computed by Ray Data.

    file list -> read + decode + preprocess (Ray tasks, the local engine's own load_image)
              -> frozen backbone (a Ray actor pool: one backbone per actor, a GPU each where the cluster has them)
              -> back to the driver, put in input order by each row's index
              or, for extract (a ShardTarget): -> a shard file per block written by the workers
              (features/engines/shards.py) -> only row indices and shard names back to the driver, which reads
              the shards back in input order, a few at a time

Only this module imports Ray; features.engines.build_engine loads it for --engine ray.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import threading
import warnings
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import ray.data
import torch

from headstart.features.backbone import Backbone, DeviceError, WeightsError, load_backbone, pick_device
from headstart.features.backbones.registry import DEFAULT_BACKBONE
from headstart.features.engines.batches import EmbeddedBatch, ProgressCallback, ShardTarget, load_image
from headstart.features.engines.shards import read_back, write_shard
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp, build_transform
from headstart.features.provenance import Preprocessing, WeightsIdentity

CONNECT_SECONDS = 5  # how long a cluster address may take to accept a connection
ANSWER_SECONDS = 3  # and then to answer gRPC's greeting: connect and answer stay under 10 s together
# Ray's GCS and Ray Client servers speak gRPC, that is HTTP/2: its client preface and an empty SETTINGS frame
# are answered with a SETTINGS frame (type 4 in byte 3 of the frame header); a server that is not gRPC is not.
_HTTP2_GREETING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


class RayEngineError(ValueError):
    """The Ray pipeline failed; the message is the reason from inside it (Ray's full report is in its session logs)."""


def _reason(error: Exception) -> str:
    """The user-facing cause inside a Ray error: the first 'SomeError: message' line that is not Ray's own."""
    for line in str(error).splitlines():
        found = re.match(r"^([\w.]*\w(?:Error|Exception)): (.+)$", line.strip())
        if found and not found.group(1).startswith("ray."):
            return found.group(2)
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _input_shape(preprocessing: Preprocessing) -> tuple[int, int, int]:
    """The tensor every image becomes; failed rows carry zeros of this shape so a batch stays one array."""
    if preprocessing.crop:
        return 3, preprocessing.crop, preprocessing.crop
    if isinstance(preprocessing.resize, tuple):
        return 3, *preprocessing.resize
    raise ValueError(f"preprocessing {preprocessing.name} has no fixed output size, which batching needs")


def _decode(
    batch: dict[str, np.ndarray], preprocessing: Preprocessing, shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """A Ray task: read and preprocess a batch of files; a bad file gets ok=False and the local engine's reason."""
    transform = build_transform(preprocessing)
    count = len(batch["index"])
    pixels, ok = np.zeros((count, *shape), np.float32), np.zeros(count, bool)
    sizes, mtimes, hashes, errors = np.zeros(count, np.int64), np.zeros(count, np.int64), [""] * count, [""] * count
    for row, path in enumerate(batch["path"]):
        tensor, stamp, error = load_image(os.fsdecode(path), transform, preprocessing.draft_size)
        if error is None:
            assert tensor is not None and stamp is not None  # load_image: no error means a tensor and a stamp
            pixels[row], ok[row] = tensor.numpy(), True
            sizes[row], mtimes[row], hashes[row] = stamp.size, stamp.mtime_ns, stamp.sha256
        else:
            errors[row] = error
    return {
        **batch,  # the entry's own columns (name, label, split) go on to the shard writer
        "pixels": pixels,
        "ok": ok,
        "size": sizes,
        "mtime_ns": mtimes,
        "sha256": np.asarray(hashes, object),
        "error": np.asarray(errors, object),
    }


class _Embed:
    """A Ray actor's callable: builds the frozen backbone once, then turns pixel batches into feature batches."""

    def __init__(  # noqa: PLR0913  Ray passes the options by keyword
        self,
        weights: str,
        identity: dict,
        device: str,
        precision: str,
        compile: bool = False,
        backbone: str = DEFAULT_BACKBONE,
    ):
        # A failed --compile falls back to the folded network here too; the actor has no one to warn.
        self.backbone = load_backbone(
            weights, torch.device(device), precision, progress=False, compile=compile, backbone=backbone
        )
        expected = WeightsIdentity.from_dict(identity)
        if not self.backbone.identity.same_weights(expected):
            raise WeightsError(
                f"--weights {weights} on Ray node {ray.util.get_node_ip_address()} is "
                f"{self.backbone.identity.describe()}, not the driver's {expected.describe()}: "
                "give every node the same weights file"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["ok"]
        features = np.zeros((len(ok), self.backbone.width), np.float32)
        if ok.any():
            features[ok] = self.backbone.features(torch.from_numpy(batch["pixels"][ok])).numpy()
        return {**{key: value for key, value in batch.items() if key != "pixels"}, "features": features}


def _answers_grpc(connection: socket.socket) -> bool:
    """Whether the server on connection answers HTTP/2's greeting with a SETTINGS frame, as every gRPC server does."""
    connection.settimeout(ANSWER_SECONDS)
    try:
        connection.sendall(_HTTP2_GREETING)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # silence (a timeout) or a reset: not gRPC
        return False
    return header[3] == 4


def _check_reachable(address: str | None) -> None:
    """Fail at once when a cluster address (HOST:PORT or ray://HOST:PORT) answers nothing, or answers but is not a
    gRPC server: ray.init would retry for minutes. "auto", "local" and no address are Ray's to resolve."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip()) if address else None
    if found is None:
        return
    fix = "start it (`ray start --head`) or check --address / RAY_ADDRESS"
    try:
        with socket.create_connection((found.group(1), int(found.group(2))), timeout=CONNECT_SECONDS) as connection:
            grpc = _answers_grpc(connection)
    except OSError as error:
        raise RayEngineError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}): {fix}") from None
    if not grpc:
        raise RayEngineError(f"cannot reach the Ray cluster at {address} (something else listens there): {fix}")


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    """Join the cluster at address (RAY_ADDRESS when None and set), or start a local Ray; stop only what we started."""
    if ray.is_initialized():  # the caller's own Ray session (a notebook, the tests)
        yield
        return
    _check_reachable(address or os.environ.get("RAY_ADDRESS"))
    on_sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if on_sigterm is not None:  # ray.init replaces it with sys.exit; the caller's own cleanup comes first
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """No progress bars or execution banners from Ray Data: the CLI owns the terminal."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:  # its session log file keeps everything
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL)  # failures reach the caller as one exception, not as log lines


def _actor_pool(device: str, blocks: int) -> tuple[ray.data.ActorPoolStrategy, int]:
    """The backbone actors and the GPUs each takes: one actor per GPU; without GPUs, one-CPU actors on about
    seven CPUs in eight, the rest decoding (a ResNet18 forward pass costs several times a decode). Never more
    actors than blocks of input."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if device == "cuda" and not gpus:
        raise DeviceError("--device cuda was asked for, but the Ray cluster has no GPU (use --device cpu or auto)")
    if gpus and device != "cpu":
        return ray.data.ActorPoolStrategy(size=min(gpus, blocks)), 1
    return ray.data.ActorPoolStrategy(size=max(1, min(cpus - max(1, cpus // 8), blocks))), 0


def _rows(batch: dict[str, np.ndarray]) -> Iterator[tuple[int, tuple]]:
    """(index, (stamp, error, feature row)) for each row of a result batch."""
    for row, index in enumerate(batch["index"]):
        if batch["ok"][row]:
            stamp = FileStamp(int(batch["size"][row]), int(batch["mtime_ns"][row]), str(batch["sha256"][row]))
            yield int(index), (stamp, None, batch["features"][row])
        else:
            yield int(index), (None, str(batch["error"][row]), None)


def _in_order(
    entries: list[ImageEntry],
    batches: Iterable[dict[str, np.ndarray]],
    batch_size: int,
    on_progress: ProgressCallback | None,
    width: int,
) -> Iterator[EmbeddedBatch]:
    """Rows arrive as Ray finishes them; yield them as EmbeddedBatches of at most batch_size, in input order."""
    arrived: dict[int, tuple] = {}
    done = 0
    for batch in batches:
        arrived.update(_rows(batch))
        while done in arrived:
            count = 1
            while count < batch_size and done + count in arrived:
                count += 1
            stamps, errors, features = zip(*(arrived.pop(index) for index in range(done, done + count)))
            ok_features = [feature for feature in features if feature is not None]
            yield EmbeddedBatch(
                entries[done : done + count],
                list(stamps),
                list(errors),
                np.stack(ok_features) if ok_features else np.zeros((0, width), np.float32),
            )
            done += count
            if on_progress:
                on_progress(done, len(entries))
    if done != len(entries):
        raise RayEngineError(f"on Ray: the pipeline returned {done} of {len(entries)} images")


@dataclass(frozen=True)
class RayEngine:
    """A Ray Data pipeline on the cluster at address (None: RAY_ADDRESS, or a local Ray for the run); Ray sizes the
    decoding, so there is no workers option. This process builds the backbone on the CPU; the actors pick theirs."""

    device: str = "auto"
    batch_size: int = 32
    address: str | None = None

    @property
    def driver_device(self) -> torch.device:
        return pick_device("cpu")

    def describe(self) -> str:
        return f"ray, device {self.device}"

    def embed(
        self,
        entries: list[ImageEntry],
        backbone: Backbone,
        preprocessing: Preprocessing,
        on_progress: ProgressCallback | None = None,
        shards: ShardTarget | None = None,
    ) -> Generator[EmbeddedBatch, None, None]:
        """The local engine's embed on a Ray cluster: each actor rebuilds the backbone from its --weights value and
        checks it against backbone.identity. With shards, the workers write the rows and the driver reads them back."""
        if not entries:
            return
        shape = _input_shape(preprocessing)
        with _ray(self.address):
            _quiet_ray_data()
            dataset = _pipeline(entries, backbone, preprocessing, shape, self.device, self.batch_size, shards)
            try:
                batches = dataset.iter_batches(batch_size=None, batch_format="numpy")
                if shards is None:
                    yield from _in_order(entries, batches, self.batch_size, on_progress, backbone.width)
                    return
                shard_of = _shards_written(batches, len(entries), shards, on_progress)
            except ray.exceptions.RayError as error:
                raise RayEngineError(f"on Ray: {_reason(error)}") from None
        yield from read_back(entries, shard_of, Path(shards.folder), self.batch_size, backbone.width)


def _shards_written(
    batches: Iterable[dict[str, np.ndarray]], total: int, shards: ShardTarget, on_progress: ProgressCallback | None
) -> dict[int, str]:
    """Each entry's shard, as the workers report them; the bytes that reach the driver are counted on the way."""
    shard_of: dict[int, str] = {}
    for batch in batches:
        for column in batch.values():
            size = sum(len(value) for value in column) if column.dtype == object else column.nbytes
            shards.report.driver_bytes += size
            shards.report.feature_bytes += size if column.dtype.kind == "f" else 0
        shard_of.update(zip(batch["index"].tolist(), batch["shard"].tolist()))
        if on_progress:
            on_progress(len(shard_of), total)
    if len(shard_of) != total:
        raise RayEngineError(f"on Ray: the workers wrote {len(shard_of)} of {total} images")
    shards.report.written = len(set(shard_of.values()))
    return shard_of


def _pipeline(
    entries: list[ImageEntry],
    backbone: Backbone,
    preprocessing: Preprocessing,
    shape: tuple[int, int, int],
    device: str,
    batch_size: int,
    shards: ShardTarget | None = None,
) -> ray.data.Dataset:
    """file list -> decode tasks -> backbone actors (-> shard writers), as a lazy Ray dataset."""
    blocks = -(-len(entries) // batch_size)
    pool, gpus_per_actor = _actor_pool(device, blocks)
    rows = [{"index": index, "path": os.fsencode(entry.path)} for index, entry in enumerate(entries)]
    if shards is not None:  # what a worker needs to write the row as the store does
        for row, entry, split in zip(rows, entries, shards.splits):
            found = json.dumps(list(entry.label_set)) if entry.label_set is not None else ""
            row.update(name=entry.name, label=entry.label, label_set=found, split=split)
    dataset: ray.data.Dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        _decode,  # type: ignore[arg-type]  # ray's stub ignores fn_kwargs: it wants a one-argument function
        fn_kwargs={"preprocessing": preprocessing, "shape": shape},
        batch_size=batch_size,
        batch_format="numpy",
    )
    with warnings.catch_warnings():  # Ray 2.60 has no named parameter for max_restarts yet
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = dataset.map_batches(
            _Embed,
            fn_constructor_kwargs={
                "weights": backbone.identity.spec(),
                "identity": backbone.identity.to_dict(),
                "device": "cuda" if gpus_per_actor else "cpu",
                "precision": backbone.precision,
                "compile": backbone.compile,
                "backbone": backbone.entry.name,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=pool,
            num_cpus=1,
            num_gpus=gpus_per_actor,
            # Ray Data gives its actors arguments in the object store, which Ray cannot reliably restart them
            # with (ray#53727) and logs an error about on every run; only an interrupted extract resumes.
            max_restarts=0,
        )
    if shards is None:
        return dataset
    return dataset.map_batches(
        write_shard,  # type: ignore[arg-type]  # as _decode
        fn_kwargs={"folder": shards.folder, "header": shards.header, "run": shards.run},
        batch_size=None,  # one shard per block
        batch_format="numpy",
    )
