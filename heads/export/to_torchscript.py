"""TorchScript export: one file that `torch.jit.load` runs alone (no headstart, no torchvision), metadata inside."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from headstart.heads.export.classifier import ExportedClassifier
from headstart.heads.export.metadata import METADATA_NAME, ExportMetadata, input_size

OPSET = None
BF16 = True  # a bf16 head's autocast is traced into the graph: the file computes exactly as predict does
PLAIN_BACKBONE = False  # predict's own network (BatchNorm may be folded): the file computes as predict does


@contextmanager
def _jit_deprecation_silenced() -> Iterator[None]:
    """torch 2.14 deprecates torch.jit with a FutureWarning per call; the format still loads wherever torch does."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        yield


def files(out: Path) -> list[Path]:
    return [out]


def write(classifier: ExportedClassifier, metadata: ExportMetadata, paths: list[Path]) -> None:
    """Trace the classifier (the graph holds no Python, so loading needs no torchvision), freeze it for inference
    (weights become constants, BatchNorm folds into the convolutions) and save it with the metadata."""
    example = torch.rand(2, 3, *input_size(metadata.preprocessing), generator=torch.Generator().manual_seed(0))
    with _jit_deprecation_silenced(), torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(classifier, example))
        # Serialised in memory, then written from Python: torch's own file writer aborts the process on a full
        # disk (a C++ exception while closing); a Python write raises OSError, which removes the temporary file.
        buffer = io.BytesIO()
        torch.jit.save(frozen, buffer, _extra_files={METADATA_NAME: metadata.to_json()})
    paths[0].write_bytes(buffer.getbuffer())


def load(paths: list[Path]) -> Callable[[np.ndarray], np.ndarray]:
    """Run the saved file as a caller would: torch.jit.load, a float32 batch in, probabilities out."""
    with _jit_deprecation_silenced():
        model = torch.jit.load(str(paths[0]), map_location="cpu")

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(images)).numpy()

    return run
