"""timm backbones (`--backbone timm:MODEL`, the optional extra `.[timm]`): any model timm can create, its pooled
pre-logit features (`create_model(name, num_classes=0)`), its preprocessing from timm's own data config
(`resolve_model_data_config`), its weights from timm's cache (never downloaded here) or a state_dict file.

Everything an entry needs is read from a network built on the meta device, so naming one allocates nothing.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from pathlib import Path

import torch
from torch import nn

from headstart.features.backbones.registry import (
    FOLD_NONE,
    SOURCE_TIMM,
    TIMM_PREFIX,
    BackboneEntry,
    UnknownBackboneError,
)
from headstart.features.provenance import BICUBIC, INTERPOLATION

_INTERPOLATIONS = {"bilinear": INTERPOLATION, "bicubic": BICUBIC}
INSTALL_HINT = "pip install 'headstart[timm]'"


class TimmMissingError(ValueError):
    """--backbone timm:MODEL without timm installed; the message says how to install it."""


def _timm():
    try:
        import timm
    except ImportError:
        raise TimmMissingError(f"--backbone timm:MODEL needs timm, which is not installed: {INSTALL_HINT}") from None
    return timm


def timm_model_name(entry: BackboneEntry) -> str:
    """timm's name of an entry's model (`resnet18`, or `resnet18.a1_in1k` with a pretrained tag)."""
    return entry.name[len(TIMM_PREFIX) :]


def create_timm(entry: BackboneEntry, weights_file: Path | None = None, meta: bool = False) -> nn.Module:
    """timm's network of an entry without its classifier (num_classes=0: the pooled pre-logit features out); with
    weights_file, timm loads it through its own filter (a hub checkpoint's key renames), never from the network."""
    timm = _timm()
    kwargs: dict = {"pretrained": weights_file is not None, "num_classes": 0}
    if weights_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    if meta:
        with torch.device("meta"):
            return timm.create_model(timm_model_name(entry), **kwargs)
    return timm.create_model(timm_model_name(entry), **kwargs)


def _unknown(model: str, timm) -> UnknownBackboneError:
    close = difflib.get_close_matches(model, timm.list_models(), n=1)
    hint = f"did you mean timm:{close[0]}? " if close else ""
    return UnknownBackboneError(
        f"unknown timm model {model!r}: {hint}`python -c \"import timm; print(timm.list_models('*name*'))\"` lists them"
    )


def _gflops(model: nn.Module, size: tuple[int, int, int]) -> float:
    """Multiply-adds per image in billions (what torchvision's metadata calls GFLOPs), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, *size, device="meta"))
    except Exception:  # noqa: BLE001  a model whose forward the meta device cannot run: no figure rather than none
        return 0.0
    return round(counter.get_total_flops() / 2e9, 3)


@functools.cache
def timm_entry(name: str) -> BackboneEntry:
    """The entry of `timm:MODEL`: width from the model's num_features, preprocessing from timm's data config; an
    unknown model is an UnknownBackboneError with the closest name, a missing timm a TimmMissingError."""
    timm = _timm()
    model_name = name[len(TIMM_PREFIX) :]
    if not timm.is_model(model_name):
        raise _unknown(model_name, timm)
    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    config = timm.data.resolve_model_data_config(model)
    channels, height, width = config["input_size"]
    interpolation = _INTERPOLATIONS.get(config["interpolation"])
    if channels != 3 or height != width or interpolation is None or config.get("crop_mode", "center") != "center":
        raise UnknownBackboneError(
            f"timm:{model_name} wants input headstart cannot prepare ({config}): choose a model taking square RGB "
            "input, bilinear or bicubic, centre-cropped"
        )
    cfg = model.pretrained_cfg
    return BackboneEntry(
        name,
        int(model.num_features),
        str(cfg.get("hf_hub_id") or cfg.get("url") or ""),  # where timm keeps its default weights
        math.floor(height / config["crop_pct"]),  # timm's transforms_factory: floor(size / crop_pct), centre crop
        height,
        _gflops(model, (channels, height, width)),
        str(cfg.get("classifier") or ""),
        interpolation,
        fold=FOLD_NONE,  # timm's norms are often fused with their activation (BatchNormAct2d): nothing to fold
        mean=tuple(float(value) for value in config["mean"]),  # type: ignore[arg-type]  # 3 channels, checked above
        std=tuple(float(value) for value in config["std"]),  # type: ignore[arg-type]
        source=SOURCE_TIMM,
    )


def _hub_file(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def timm_weights_file(entry: BackboneEntry) -> Path:
    """The entry's default pretrained weights in timm's cache (Hugging Face's hub cache, or torch.hub's checkpoints
    for a URL); absent is a FileNotFoundError saying how to get them: nothing is downloaded here."""
    source = entry.weights
    if source and "://" not in source:
        found = _hub_file(source)
    elif source:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(source)
        found = candidate if candidate.is_file() else None
    else:
        found = None
    if found is None:
        model = timm_model_name(entry)
        raise FileNotFoundError(
            f"timm's pretrained weights for {model} ({source or 'none published'}) are not in its cache: fetch them "
            "once where there is a network "
            f"(`python -c \"import timm; timm.create_model('{model}', pretrained=True)\"`), "
            "or pass --weights FILE (a state_dict) or --weights none (random init)"
        )
    return found


def timm_state(entry: BackboneEntry, weights_file: Path) -> dict[str, torch.Tensor]:
    """A timm checkpoint read the way timm reads it (its key filter applied), as the classifier-less network's
    state_dict."""
    return create_timm(entry, weights_file).state_dict()
