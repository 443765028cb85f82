"""Export metadata, format version 1 (2 for a multi-label head): what a caller of an exported classifier needs
besides its weights.

One JSON object, stored inside a TorchScript file as the extra file `headstart.json`
(`torch.jit.load(path, _extra_files={"headstart.json": ""})`), in an ONNX model's metadata under the key
`headstart` (`onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map["headstart"]`), and
beside a torchvision state_dict as FILE.json. Bump FORMAT_VERSION on any change.

    format_version     int, FORMAT_VERSION
    producer           "headstart <version>"
    created            ISO 8601 time, UTC
    format             "torchscript" | "onnx" | "torchvision"
    classes            list of class names: output column i is classes[i]
    input              {"name": "images", "shape": [null, 3, H, W], "dtype": "float32", "range": [0, 1],
                        "layout": "NCHW, RGB"}: decoded, resized and cropped as `preprocessing` says, not normalised
    output             {"name": "probabilities", "shape": [null, C]}; torchvision: "logits" (apply softmax)
    normalized_inside  true when the model applies mean and std itself (torchscript, onnx); false for torchvision
    preprocessing      the head's record {"name", "resize", "crop", "mean", "std", "interpolation"}: resize (an
                       int: the shorter side to that, keeping the aspect ratio; [h, w]: exactly), then centre-crop
                       to crop x crop when crop is not null; bilinear with antialiasing (Pillow's resize)
    backbone           a name in features/backbones/registry.py ("resnet18" in files written before the registry)
    weights            {"kind", "name", "sha256"} of the backbone weights the head was trained on; for a weights
                       file ("kind": "file") the name is the file's bare name, never this machine's path (the
                       sha256 identifies it)
    head_precision     "fp32" | "bf16": the backbone precision of the head's features (and of predict)
    compute_precision  "fp32" | "bf16": the backbone precision of this export (bf16: torchscript of a bf16 head)
    onnx_opset         int for onnx, else null

Format 2, written for a multi-label head only (a single-label export is format 1, unchanged), adds:

    task               "multi-label": the outputs are independent sigmoids (torchscript, onnx; torchvision's logits:
                       apply a sigmoid), not a softmax
    thresholds         list of float per class: label i is predicted when its probability is at least thresholds[i]
    calibration        null, or the per-label calibration already folded into the weights, for reference:
                       {"method", "scale", "shift"} (heads/multilabel/calibration.py)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from headstart.features import __version__
from headstart.features.backbones.registry import DEFAULT_BACKBONE

FORMAT_VERSION = 1
MULTI_LABEL_VERSION = 2  # written for a multi-label head only
READABLE_VERSIONS = (FORMAT_VERSION, MULTI_LABEL_VERSION)
_MULTI_LABEL_FIELDS = ("task", "thresholds", "calibration")
METADATA_NAME = "headstart.json"  # the TorchScript extra file
ONNX_METADATA_KEY = "headstart"
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


class ExportError(ValueError):
    """An export that cannot be made or kept; the message says what to do."""


def input_size(preprocessing: dict) -> list[int]:
    """[H, W] of the model's input: the crop when there is one, else the fixed resize."""
    if preprocessing.get("crop"):
        return [preprocessing["crop"]] * 2
    if isinstance(preprocessing["resize"], list):
        return list(preprocessing["resize"])
    raise ExportError(f"preprocessing {preprocessing['name']!r} has no fixed input size (no crop, one resize side)")


def shared_weights(weights: dict) -> dict:
    """The weights' identity as a file meant to be shared carries it: a weights file by its bare name (the sha256
    says which file it is), never by this machine's path."""
    shared = dict(weights)
    if shared.get("kind") == "file" and isinstance(shared.get("name"), str):
        shared["name"] = PurePath(shared["name"]).name
    return shared


@dataclass(frozen=True)
class ExportMetadata:
    """The record every exported file carries; see the module docstring."""

    format: str
    classes: list[str]
    preprocessing: dict
    weights: dict
    head_precision: str
    compute_precision: str = "fp32"
    backbone: str = DEFAULT_BACKBONE
    onnx_opset: int | None = None
    producer: str = f"headstart {__version__}"
    created: str = ""
    format_version: int = FORMAT_VERSION
    task: str | None = None  # "multi-label" (format 2); None: a single-label head's softmax
    thresholds: list[float] | None = None
    calibration: dict | None = None

    @classmethod
    def of_head(
        cls, checkpoint, export_format: str, compute_precision: str, onnx_opset: int | None = None
    ) -> ExportMetadata:
        """The metadata of an export of a loaded HeadCheckpoint."""
        multi: dict[str, Any] = {}
        if checkpoint.multilabel is not None:
            calibration = checkpoint.calibration and {
                key: checkpoint.calibration[key] for key in ("method", "scale", "shift")
            }
            multi = {"format_version": MULTI_LABEL_VERSION, "task": "multi-label", "calibration": calibration}
            multi["thresholds"] = list(checkpoint.thresholds)
        return cls(
            export_format,
            list(checkpoint.classes),
            dict(checkpoint.preprocessing),
            shared_weights(checkpoint.weights),
            checkpoint.precision,
            compute_precision,
            checkpoint.backbone,
            onnx_opset,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            **multi,
        )

    @property
    def normalized_inside(self) -> bool:
        return self.format != "torchvision"

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.task is None:  # a single-label export's record, as format 1 wrote it
            data = {key: value for key, value in data.items() if key not in _MULTI_LABEL_FIELDS}
        height, width = input_size(self.preprocessing)
        data["input"] = {
            "name": INPUT_NAME,
            "shape": [None, 3, height, width],
            "dtype": "float32",
            "range": [0, 1],
            "layout": "NCHW, RGB",
        }
        data["output"] = {
            "name": OUTPUT_NAME if self.normalized_inside else "logits",
            "shape": [None, len(self.classes)],
        }
        data["normalized_inside"] = self.normalized_inside
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str) -> ExportMetadata:
        """Parse metadata read from source (a path, for the error message)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ExportError(f"{source}: the export metadata is not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format_version") not in READABLE_VERSIONS:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise ExportError(
                f"{source}: export metadata format {version}; this headstart reads format "
                f"{' or '.join(map(str, READABLE_VERSIONS))}: export again"
            )
        fields: tuple[str, ...] = (
            "format",
            "classes",
            "preprocessing",
            "weights",
            "head_precision",
            "compute_precision",
            "backbone",
            "onnx_opset",
            "producer",
            "created",
            "format_version",
        )
        if data["format_version"] == MULTI_LABEL_VERSION:
            fields += _MULTI_LABEL_FIELDS
        missing = [name for name in fields if name not in data]
        if missing:
            raise ExportError(f"{source}: the export metadata lacks {missing}: export again")
        return cls(**{name: data[name] for name in fields})
