"""An entry's network: torchvision's builder, its final Linear replaced by an Identity, frozen; weights files are
checked against it (and against every other entry, to say what a foreign file looks like) before any work starts."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import nn

from headstart.features.backbones.registry import ENTRIES, SOURCE_TIMM, BackboneEntry, backbone_entry
from headstart.features.provenance import RANDOM_INIT_SEED


def _strip_head(model: nn.Module, entry: BackboneEntry) -> None:
    parent, _, leaf = entry.head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())


def without_head(state: dict[str, torch.Tensor], entry: BackboneEntry) -> dict[str, torch.Tensor]:
    """A state_dict without the entry's final Linear (a classifier trained for other classes)."""
    return {key: value for key, value in state.items() if not key.startswith(f"{entry.head}.")}


def _raw_network(entry: BackboneEntry, meta: bool = False) -> nn.Module:
    """The entry's network with its final Linear an Identity (timm: created without a classifier)."""
    if entry.source == SOURCE_TIMM:
        from headstart.features.backbones.timm_models import create_timm

        return create_timm(entry, meta=meta)
    from torchvision.models import get_model

    if meta:
        with torch.device("meta"):
            model = get_model(entry.name, weights=None)
    else:
        model = get_model(entry.name, weights=None)
    _strip_head(model, entry)
    return model


def build_network(entry: BackboneEntry, state: dict[str, torch.Tensor] | None) -> nn.Module:
    """The frozen network in eval mode, pooled pre-logit features out; state None: random init with a fixed seed
    (the global random state left as it was), else state (without the final Linear) loaded with strict=True."""
    if state is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = _raw_network(entry)
    else:
        model = _raw_network(entry)
    if state is not None:
        model.load_state_dict(state, strict=True)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


@functools.cache
def _shapes(name: str) -> dict[str, torch.Size]:
    """The entry's parameter and buffer shapes without its final Linear, from a network built without memory when the
    builder allows it (RegNet computes its widths with real tensors)."""
    entry = backbone_entry(name)
    try:
        model = _raw_network(entry, meta=True)
    except NotImplementedError:
        with torch.random.fork_rng(devices=[]):
            model = _raw_network(entry)
    return {key: value.shape for key, value in without_head(model.state_dict(), entry).items()}


def _mismatch(entry: BackboneEntry, state: dict[str, torch.Tensor]) -> str:
    """What keeps state (its final Linear ignored) from loading into the entry's network; empty when nothing does."""
    expected, state = _shapes(entry.name), without_head(state, entry)
    # torch fills in BatchNorm's num_batches_tracked when a file (like torchvision's own) lacks it.
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k])
    return "; ".join(
        f"{what}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        if keys
    )


def state_mismatch(entry: BackboneEntry, state: dict[str, torch.Tensor], source: str) -> str | None:
    """Why state is not the entry's (naming the entry it does fit, and its feature width), or None when it is."""
    detail = _mismatch(entry, state)
    if not detail:
        return None
    others = () if entry.source == SOURCE_TIMM else ENTRIES.values()  # a timm file is checked against its model only
    fits = [other for other in others if other is not entry and not _mismatch(other, state)]
    if fits:
        return (
            f"{source} is a {fits[0].name} state_dict ({fits[0].width}-d features), not a {entry.name} one "
            f"({entry.width}-d): pass --backbone {fits[0].name}, or weights for {entry.name}"
        )
    return f"{source} is not a {entry.name} state_dict, nor any other backbone's ({detail})"


def weights_url(entry: BackboneEntry) -> str:
    """Where torchvision publishes the entry's default weights."""
    from torchvision.models import get_weight

    return get_weight(entry.weights).url


def weights_path(entry: BackboneEntry) -> Path:
    """Where torchvision's cache keeps the entry's default weights (torch.hub's checkpoints folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url(entry))


def weights_cached(entry: BackboneEntry) -> bool:
    """Whether the entry's default weights are already on this machine (nothing is downloaded to find out)."""
    return weights_path(entry).is_file()
