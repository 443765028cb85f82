"""The frozen backbone of a registry entry: where its weights come from, what identifies them, its forward pass."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from headstart.features.backbones.network import build_network, state_mismatch, weights_path, weights_url, without_head
from headstart.features.backbones.registry import (
    BF16_PREPACKED,
    DEFAULT_BACKBONE,
    FOLD_CONV_BN,
    SOURCE_TIMM,
    BackboneEntry,
    backbone_entry,
)
from headstart.features.backbones.timm_models import timm_state, timm_weights_file
from headstart.features.batchnorm import fold_batchnorm
from headstart.features.compiled import CompiledForward, first_line
from headstart.features.prepacked import PrepackedResNet, prepacking_available
from headstart.features.provenance import IMAGENET, RANDOM, RANDOM_INIT_SEED, WeightsIdentity
from headstart.features.runtime import ONNXRUNTIME, TORCH, OnnxForward

FOLDED = "batchnorm folded"


class WeightsError(ValueError):
    """Weights that cannot be loaded or do not match what was recorded; the message says what to do."""


class DeviceError(ValueError):
    """A device asked for with --device that this machine (or the Ray cluster) does not have."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _imagenet_weights_file(entry: BackboneEntry, progress: bool) -> tuple[Path, str]:
    """torchvision's cached ImageNet file, downloaded (with torch's hash check) when absent, re-checked when present."""
    url, path = weights_url(entry), weights_path(entry)
    found = re.search(r"-([a-f0-9]+)\.", path.name)
    if found is None:
        raise WeightsError(f"torchvision's ImageNet weights URL {url} carries no hash to check the file against")
    hash_prefix = found.group(1)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=progress)
        except (OSError, RuntimeError) as error:
            raise WeightsError(
                f"cannot download the ImageNet weights from {url} ({error}); offline, pass a local "
                f"{entry.name} state_dict with --weights FILE, or --weights none for random (untrained) features"
            ) from None
    # torch checks the hash only while downloading: a cached file altered later would pass silently.
    sha256 = file_sha256(path)
    if not sha256.startswith(hash_prefix):
        raise WeightsError(
            f"the cached ImageNet weights {path} do not match their published hash ({hash_prefix}…): "
            "delete that file and run again to download it afresh"
        )
    return path, sha256


def _load_state_dict(path: Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:  # a file in torch's legacy format cannot be memory-mapped: read it
            if not mmap:
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or damaged files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot read weights file {path}: {first_line}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} is not a state_dict (a dict of tensors saved with torch.save)")
    return state


def _checked(state: dict[str, torch.Tensor], entry: BackboneEntry, source: str) -> dict[str, torch.Tensor]:
    """state without the final Linear; a file of another network (or width) is refused, naming what it is."""
    problem = state_mismatch(entry, state, source)
    if problem:
        raise WeightsError(problem)
    return without_head(state, entry)


class Backbone:
    """The frozen network of a registry entry for a set of weights, BatchNorm folded; built on first use, so a run
    with nothing to compute skips it. compile=True runs it through torch.compile, falling back to the folded eager
    network (and telling on_warning why) if compiling fails. bf16 on a CPU runs it with prepacked oneDNN weights
    (prepacked.py) where the entry says so, under autocast otherwise. runtime="onnxruntime" runs the folded fp32
    network in an onnxruntime CPU session instead (runtime.py; extract checks the options it is asked with)."""

    forward = FOLDED  # recorded in the features file (its `forward` attribute)

    def __init__(
        self,
        state: dict[str, torch.Tensor] | None,
        identity: WeightsIdentity,
        device: torch.device,
        precision: str = "fp32",
        compile: bool = False,
        on_warning: Callable[[str], None] | None = None,
        entry: BackboneEntry | None = None,
        runtime: str = TORCH,
    ):
        self.entry = entry or backbone_entry(DEFAULT_BACKBONE)
        self.identity = identity
        self.device = device
        self.precision = precision
        self.compile = compile
        self._on_warning = on_warning
        self._state = state
        self._model: nn.Module | None = None
        self._compiled: CompiledForward | None = None
        self._prepacked: PrepackedResNet | None = None
        self.runtime = runtime
        self._onnx: OnnxForward | None = None

    @property
    def model(self) -> nn.Module:
        return self.build()

    def build(self) -> nn.Module:
        """Build the network now rather than on first use (an engine does it while images decode); return it."""
        if self._model is not None:
            return self._model
        model = build_network(self.entry, self._state)
        if self.entry.fold == FOLD_CONV_BN:
            fold_batchnorm(model)
        model = model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
        self._model = model
        self._state = None
        if self.runtime == ONNXRUNTIME:
            self._onnx = OnnxForward(model)  # torch's threads, read where it runs
        elif self.compile:
            self._compiled = CompiledForward(model)
        elif self.device.type == "cpu" and self.precision == "bf16" and self._prepacks():
            self._prepacked = PrepackedResNet(model)
        return model

    def _prepacks(self) -> bool:
        return self.entry.bf16 == BF16_PREPACKED and prepacking_available()

    @property
    def width(self) -> int:
        """The width of the features this backbone computes."""
        return self.entry.width

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        model = self.model
        if self._compiled is not None:
            try:
                return self._compiled(batch)
            except Exception as error:  # noqa: BLE001  torch.compile fails in many ways (no compiler, an op it lacks)
                self._compiled = None
                if self._on_warning:
                    self._on_warning(
                        f"--compile failed, running the folded eager network instead: "
                        f"{first_line(str(error)) or type(error).__name__}"
                    )
        return model(batch)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """The entry's pooled pre-logit features, float32 on the CPU, whatever the compute precision."""
        self.build()
        if self._prepacked is not None:
            return self._prepacked(batch)
        if self._onnx is not None:
            return self._onnx(batch.to(self.device))
        batch = batch.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        with torch.inference_mode(), _without_tf32(self.device, self.precision):
            if self.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = self._forward(batch)
            else:
                out = self._forward(batch)
        return out.float().cpu()


def _without_tf32(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """fp32 means fp32 on a GPU too: cuDNN's default TF32 convolutions move features far from the CPU's
    (bench/gpu.py; docs/benchmark.md), and extract there is bound by decoding, not by the forward pass."""
    if device.type != "cuda" or precision != "fp32":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
    )


@dataclass(frozen=True)
class LocatedWeights:
    """A --weights value found and hashed once per run: the file (None for random init) and its identity."""

    spec: str
    path: Path | None
    identity: WeightsIdentity


def locate_weights(spec: str, progress: bool = True, entry: BackboneEntry | None = None) -> LocatedWeights:
    """'imagenet', 'none' or a file path -> where the entry's weights are and what they are, found and hashed, not
    loaded."""
    entry = entry or backbone_entry(DEFAULT_BACKBONE)
    if spec == RANDOM:
        return LocatedWeights(spec, None, WeightsIdentity(RANDOM, f"random init, seed {RANDOM_INIT_SEED}", ""))
    if spec == IMAGENET and entry.source == SOURCE_TIMM:
        try:
            path = timm_weights_file(entry)
        except FileNotFoundError as error:
            raise WeightsError(str(error)) from None
        return LocatedWeights(spec, path, WeightsIdentity(SOURCE_TIMM, entry.weights, file_sha256(path)))
    if spec == IMAGENET:
        path, sha256 = _imagenet_weights_file(entry, progress)
        return LocatedWeights(spec, path, WeightsIdentity("torchvision", entry.weights, sha256))
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist (use imagenet, none, or a {entry.name} state_dict file)"
        )
    return LocatedWeights(spec, path, WeightsIdentity("file", str(path), file_sha256(path)))


def resolve_weights(
    spec: str, progress: bool = True, entry: BackboneEntry | None = None
) -> tuple[dict[str, torch.Tensor] | None, WeightsIdentity]:
    """'imagenet', 'none' or a file path -> (the entry's state_dict without its final Linear, identity)."""
    entry = entry or backbone_entry(DEFAULT_BACKBONE)
    located = locate_weights(spec, progress, entry)
    return _located_state(located, entry), located.identity


def _located_state(located: LocatedWeights, entry: BackboneEntry) -> dict[str, torch.Tensor] | None:
    """The state_dict of located weights (without the final Linear); timm's own checkpoint is read through timm."""
    if located.path is None:
        return None
    if located.identity.kind == SOURCE_TIMM:
        return timm_state(entry, located.path)
    return _checked(_load_state_dict(located.path), entry, located.spec)


def check_weights(located: LocatedWeights, entry: BackboneEntry) -> None:
    """Refuse a weights file of another network or feature width now, before any image is read; torchvision's own
    file is the entry's by construction. The file is memory-mapped, not read."""
    if located.path is not None and located.identity.kind == "file":
        _checked(_load_state_dict(located.path, mmap=True), entry, located.spec)


def plain_network(entry: BackboneEntry, spec: str) -> nn.Module:
    """torchvision's frozen network for a --weights value, its layers as torchvision names them (the final Linear an
    Identity): what a state_dict for torchvision's builder is taken from (heads/export)."""
    return build_network(entry, resolve_weights(spec, progress=False, entry=entry)[0])


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when there is one, unless told otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA device is available (use --device cpu)")
    return device


def load_backbone(
    spec: str | LocatedWeights,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
    compile: bool = False,
    on_warning: Callable[[str], None] | None = None,
    backbone: str | BackboneEntry = DEFAULT_BACKBONE,
    runtime: str = TORCH,
) -> Backbone:
    """The frozen backbone (a registry name or entry) for a --weights value (or weights a run already located),
    BatchNorm folded where it has any, ready for inference on device (run by torch, or by onnxruntime)."""
    entry = backbone if isinstance(backbone, BackboneEntry) else backbone_entry(backbone)
    located = spec if isinstance(spec, LocatedWeights) else locate_weights(spec, progress, entry)
    state = _located_state(located, entry)
    return Backbone(state, located.identity, device, precision, compile, on_warning, entry, runtime)
