"""The export step: head -> whole classifier -> file in the chosen format -> verified against predict -> kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headstart.features.backbones.registry import TIMM_PREFIX
from headstart.features.files.atomic import replace_together
from headstart.features.files.cachedir import HEAD_FILE
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.files.room import ensure_room
from headstart.heads import PredictConfig, Predictor
from headstart.heads.export.classifier import ExportedClassifier, build_classifier
from headstart.heads.export.config import ExportConfig
from headstart.heads.export.formats import exporter_for
from headstart.heads.export.metadata import ExportError, ExportMetadata
from headstart.heads.export.verify import (
    TOLERANCES,
    check,
    largest_difference,
    model_inputs,
    predicted,
    verification_images,
)


@dataclass
class ExportSummary:
    """What was written and how closely it agrees with predict."""

    format: str
    paths: list[Path]
    sizes: list[int]  # bytes, per path
    images: int  # verified on
    difference: float  # largest absolute probability difference from predict
    tolerance: float
    metadata: ExportMetadata
    seconds: float


ROOM_MARGIN = 1 << 20  # the graph, the metadata and the container's own records, beside the weights


def _weights_bytes(classifier: ExportedClassifier) -> int:
    tensors = [*classifier.parameters(), *classifier.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def export_head(config: ExportConfig, on_stage: Callable[[str], None] | None = None) -> ExportSummary:
    """Write the cache's head as a whole classifier in config.format; nothing is written unless it matches predict."""
    started = time.perf_counter()
    stage = on_stage or (lambda message: None)
    exporter = exporter_for(config.format)
    targets = exporter.files(Path(config.out))
    check_outputs(config.cache, *(Output("--out", target) for target in targets))
    # On the CPU: an export must load on any machine, and predict here is what it is checked against.
    predictor = Predictor.load(
        Path(config.cache) / HEAD_FILE,
        PredictConfig(weights=config.weights, backbone=config.backbone, device="cpu", workers=0),
    )
    if exporter.PLAIN_BACKBONE and predictor.checkpoint.backbone.startswith(TIMM_PREFIX):
        raise ExportError(
            f"--format {config.format} writes a torchvision state_dict; {predictor.checkpoint.backbone} is a timm "
            "model: use --format torchscript or onnx"
        )
    entries = verification_images(Path(config.cache), config.images, config.sample, predictor.checkpoint.backbone)
    entries, inputs = model_inputs(entries, predictor.preprocessing)
    stage(f"predicting {len(entries)} images the usual way")
    expected = predicted(predictor, entries)
    head_precision = predictor.checkpoint.precision
    bf16 = head_precision == "bf16" and exporter.BF16
    metadata = ExportMetadata.of_head(predictor.checkpoint, config.format, "bf16" if bf16 else "fp32", exporter.OPSET)
    tolerance = TOLERANCES.get(head_precision, TOLERANCES["fp32"])
    hint = (
        f" (predict runs this bf16 head's backbone in bfloat16, --format {config.format} in float32: use "
        "--format torchscript, or extract again with --precision fp32)"
        if head_precision == "bf16" and not bf16
        else ""
    )
    classifier = build_classifier(predictor, bf16, exporter.PLAIN_BACKBONE)
    with replace_together(*targets) as temporaries:
        # A full disk is refused before writing: the file is about the size of the weights it holds.
        ensure_room(targets[0], temporaries[0], _weights_bytes(classifier) + ROOM_MARGIN)
        stage(f"writing {config.format}")
        exporter.write(classifier, metadata, temporaries)
        stage(f"verifying the written file on {len(entries)} images")
        difference = largest_difference(exporter.load(temporaries), inputs, expected)
        check(difference, tolerance, len(entries), config.out, hint)
        sizes = [temporary.stat().st_size for temporary in temporaries]
    return ExportSummary(
        config.format, targets, sizes, len(entries), difference, tolerance, metadata, time.perf_counter() - started
    )
