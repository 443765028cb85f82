"""The registry of backbones: one entry per torchvision network, plain Python, so naming one imports no torch.

Each entry says how to get the network's pooled pre-logit features (the final Linear replaced by an Identity), their
width, the default weights (torchvision's weights enum), the preprocessing those weights were trained with (copied
from `weights.transforms()` and `weights.meta["_ops"]`; tests/test_backbones.py checks every entry against them), how
BatchNorm is folded and how bf16 runs on a CPU. Adding a backbone is one entry here and its line in that test.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import import_module

from headstart.features.provenance import (
    BICUBIC,
    IMAGENET,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATION,
    PREPROCESSINGS,
    Preprocessing,
)

DEFAULT_BACKBONE = "resnet18"
FOLD_CONV_BN = "conv+bn"  # features/batchnorm.py's generic fold of each convolution's BatchNorm
FOLD_NONE = "none"  # no BatchNorm to fold (LayerNorm networks)
BF16_PREPACKED = "prepacked"  # features/prepacked.py: oneDNN weights cast and laid out once (torchvision's ResNet)
BF16_AUTOCAST = "autocast"
SOURCE_TORCHVISION = "torchvision"
SOURCE_TIMM = "timm"  # features/backbones/timm_models.py: `timm:MODEL`, the optional extra `.[timm]`
TIMM_PREFIX = "timm:"


class UnknownBackboneError(ValueError):
    """A backbone name the registry does not hold; the message lists the choices."""


@dataclass(frozen=True)
class BackboneEntry:
    """One backbone: the torchvision builder's name and everything needed to run it as a frozen feature extractor."""

    name: str  # torchvision.models.get_model's name
    width: int  # the pooled pre-logit features' width
    weights: str  # the default pretrained weights, torchvision's enum name
    resize: int  # weights.transforms(): resize_size, crop_size, interpolation
    crop: int
    gflops: float  # weights.meta["_ops"]: GFLOPs of one image at the crop size
    head: str  # the final Linear, replaced by an Identity (its parameters are dropped from weights files)
    interpolation: str = INTERPOLATION
    fold: str = FOLD_CONV_BN
    bf16: str = BF16_AUTOCAST
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    source: str = SOURCE_TORCHVISION  # who builds the network: torchvision's get_model, or timm's create_model

    @property
    def preprocessing(self) -> Preprocessing:
        """The weights' own preprocessing; the default backbone's is the one its files have always recorded as
        `imagenet` (PREPROCESSINGS), every other's is named for its backbone."""
        if self.name == DEFAULT_BACKBONE:
            return PREPROCESSINGS[IMAGENET]
        return Preprocessing(self.name, self.resize, self.crop, self.mean, self.std, self.interpolation)

    def preprocessing_for(self, preprocess: str) -> Preprocessing:
        """--preprocess: `imagenet` is the weights' own, any other a named one (the tutorial's `notebook`)."""
        return self.preprocessing if preprocess == IMAGENET else PREPROCESSINGS[preprocess]


def _entries(*entries: BackboneEntry) -> dict[str, BackboneEntry]:
    return {entry.name: entry for entry in entries}


ENTRIES = _entries(
    BackboneEntry("resnet18", 512, "ResNet18_Weights.IMAGENET1K_V1", 256, 224, 1.814, "fc", bf16=BF16_PREPACKED),
    BackboneEntry("resnet34", 512, "ResNet34_Weights.IMAGENET1K_V1", 256, 224, 3.664, "fc"),
    BackboneEntry("resnet50", 2048, "ResNet50_Weights.IMAGENET1K_V2", 232, 224, 4.089, "fc"),
    BackboneEntry("resnet101", 2048, "ResNet101_Weights.IMAGENET1K_V2", 232, 224, 7.801, "fc"),
    BackboneEntry("wide_resnet50_2", 2048, "Wide_ResNet50_2_Weights.IMAGENET1K_V2", 232, 224, 11.398, "fc"),
    BackboneEntry(
        "convnext_tiny", 768, "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", 236, 224, 4.456, "classifier.2", fold=FOLD_NONE
    ),
    BackboneEntry(
        "convnext_small", 768, "ConvNeXt_Small_Weights.IMAGENET1K_V1", 230, 224, 8.684, "classifier.2", fold=FOLD_NONE
    ),
    BackboneEntry(
        "efficientnet_b0", 1280, "EfficientNet_B0_Weights.IMAGENET1K_V1", 256, 224, 0.386, "classifier.1", BICUBIC
    ),
    BackboneEntry(
        "efficientnet_v2_s", 1280, "EfficientNet_V2_S_Weights.IMAGENET1K_V1", 384, 384, 8.366, "classifier.1"
    ),
    BackboneEntry(
        "mobilenet_v3_large", 1280, "MobileNet_V3_Large_Weights.IMAGENET1K_V2", 232, 224, 0.217, "classifier.3"
    ),
    BackboneEntry("regnet_y_1_6gf", 888, "RegNet_Y_1_6GF_Weights.IMAGENET1K_V2", 232, 224, 1.612, "fc"),
    BackboneEntry("vit_b_16", 768, "ViT_B_16_Weights.IMAGENET1K_V1", 256, 224, 17.564, "heads.head", fold=FOLD_NONE),
    BackboneEntry("swin_t", 768, "Swin_T_Weights.IMAGENET1K_V1", 232, 224, 4.491, "head", BICUBIC, fold=FOLD_NONE),
)


def backbone_entry(name: str) -> BackboneEntry:
    """The registry's entry for name (`timm:MODEL`: timm's model, features/backbones/timm_models.py); an unknown name
    is an UnknownBackboneError listing the choices."""
    if name.startswith(TIMM_PREFIX):
        # Loaded by name, as features/lazy.py does: timm_models builds on this module's entries.
        return import_module("headstart.features.backbones.timm_models").timm_entry(name)
    if name in ENTRIES:
        return ENTRIES[name]
    close = difflib.get_close_matches(name, list(ENTRIES), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}: {hint}choose one of {', '.join(ENTRIES)}, or timm:MODEL for a timm "
        "model (`headstart backbones` lists them)"
    )
