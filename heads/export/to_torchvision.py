"""torchvision export: a state_dict for `torchvision.models.get_model(BACKBONE, num_classes=C)` plus FILE.json (the
metadata, which names BACKBONE)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from headstart.features.backbones.registry import backbone_entry
from headstart.heads.export.classifier import ExportedClassifier
from headstart.heads.export.metadata import ExportError, ExportMetadata

OPSET = None
BF16 = False  # a state_dict has no compute precision; torchvision's network runs in float32
PLAIN_BACKBONE = True  # torchvision's layer names and BatchNorms, whatever predict's network folds


def files(out: Path) -> list[Path]:
    """The metadata first, the state_dict last: a caller who finds the weights finds their description."""
    return [Path(f"{out}.json"), out]


def write(classifier: ExportedClassifier, metadata: ExportMetadata, paths: list[Path]) -> None:
    """The backbone's parameters with the trained head as its final Linear (`fc` for a ResNet), contiguous CPU
    tensors, plus the metadata JSON."""
    head, final = classifier.head.state_dict(), backbone_entry(metadata.backbone).head
    state = {**classifier.backbone.state_dict(), f"{final}.weight": head["weight"], f"{final}.bias": head["bias"]}
    torch.save({key: value.detach().cpu().contiguous().clone() for key, value in state.items()}, paths[1])
    paths[0].write_text(metadata.to_json() + "\n", encoding="utf-8")


def load(paths: list[Path]) -> Callable[[np.ndarray], np.ndarray]:
    """Load the files into torchvision's builder of the recorded backbone with strict=True and normalise with the
    recorded mean and std."""
    from torchvision.models import get_model

    metadata = ExportMetadata.from_json(paths[0].read_text(encoding="utf-8"), str(paths[0]))
    name = backbone_entry(metadata.backbone).name
    model = get_model(name, num_classes=len(metadata.classes))
    try:
        model.load_state_dict(torch.load(paths[1], map_location="cpu", weights_only=True), strict=True)
    except RuntimeError as error:
        raise ExportError(
            f"the backbone's parameters do not load into torchvision's {name} ({str(error).splitlines()[0]})"
        ) from None
    preprocessing = metadata.preprocessing
    multi_label = metadata.task == "multi-label"
    classifier = ExportedClassifier(
        model, nn.Identity(), preprocessing["mean"], preprocessing["std"], multi_label=multi_label
    ).eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return classifier(torch.from_numpy(images)).numpy()

    return run
