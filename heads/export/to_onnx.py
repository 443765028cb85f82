"""ONNX export (opset 18, dynamic batch), run back with onnxruntime; needs the optional extra `.[export]`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import onnxscript  # noqa: F401 -- torch.onnx's exporter needs it; importing it here makes its absence one clear error
import torch

from headstart.heads.export.classifier import ExportedClassifier
from headstart.heads.export.metadata import INPUT_NAME, ONNX_METADATA_KEY, OUTPUT_NAME, ExportMetadata, input_size

# torch 2.14's exporter (torch.export-based) implements opset 18 natively; another opset is a conversion
# pass afterwards. onnxruntime runs opset 18 since 1.14.
OPSET = 18
BF16 = False  # onnxruntime's CPU kernels have no bfloat16 convolution: a bf16 head exports in float32
PLAIN_BACKBONE = False  # predict's own network (BatchNorm may be folded)


def files(out: Path) -> list[Path]:
    return [out]


def write(classifier: ExportedClassifier, metadata: ExportMetadata, paths: list[Path]) -> None:
    """Export through torch.export with a dynamic batch dimension, one self-contained file, metadata inside."""
    example = torch.rand(2, 3, *input_size(metadata.preprocessing), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals, nothing for the user
        program = torch.onnx.export(
            classifier,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # dynamo=True returns the program; only the old exporter returns None
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.model.metadata_props[ONNX_METADATA_KEY] = metadata.to_json()
    program.save(str(paths[0]))


def load(paths: list[Path]) -> Callable[[np.ndarray], np.ndarray]:
    """Run the saved file as a caller would: an onnxruntime CPU session."""
    session = onnxruntime.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    return run
