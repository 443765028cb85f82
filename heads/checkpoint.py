"""The head file (head.pt), format version 3: plain types only, so it loads with torch.load(weights_only=True).

    format_version  int, FORMAT_VERSION
    producer        "headstart <version>"
    torch_version   the torch that trained and saved the head
    created         ISO 8601 time, UTC
    head_type       "linear"
    head_args       {"in_features": int, "num_classes": int}: LinearHead(**head_args); in_features is the backbone's
                    feature width
    state_dict      {"weight": tensor, "bias": tensor}
    classes         list of class names; output i is classes[i]
    backbone        a name in features/backbones/registry.py, rebuilt by predict, evaluate, export (1, 2: "resnet18")
    weights         {"kind", "name", "sha256"} of the backbone the features came from
    preprocessing   {"name", "resize", "crop", "mean", "std", "interpolation"}
    precision       "fp32" | "bf16"
    train_config    {"epochs", "lr", "momentum", "batch_size", "seed", "head": "sgd"|"logreg", "weight_decay",
                    "class_weight": "none"|"balanced", "c"} (the last three absent from heads saved before them)
    metrics         final-epoch metrics ("epoch", "train_loss", "train_acc", "val_loss", "val_acc"),
                    "history" (one dict per epoch), "best_epoch" (the history entry best on val, or None),
                    "val_report" ({"accuracy", "report", "confusion", "classes"} of the val split, or None),
                    and after `sweep`, "sweep" (heads/sweep/step.py's sweep_record: how the setting was chosen)
    features_file   the features file it was trained on
    unknown         (format 2) the unknown-image model and threshold, schema in heads/trust/unknown.py, or None
    calibration     (format 2) the temperature folded into state_dict and the uncalibrated weights, schema in
                    heads/trust/calibration.py, or None (--no-calibrate)
    digest          (format 2) sha256 of the state_dict's tensors (name, dtype, shape, bytes, in name order), of
                    the class names and of the unknown model (its tensors the same way, then its numbers):
                    checked on load, so a flipped byte is a clear error, never wrong labels.
    multilabel      (format 4 and 5, a multi-label head only) {"task": "multi-label", "thresholds": [float per
                    class, in (0, 1)], "threshold_rule": str}: outputs are independent sigmoids, a label is predicted
                    when its probability is at least its threshold; part of the digest. A single-label head is
                    written as format 3 without this key, unchanged. Format 5 (written since per-label calibration)
                    may carry a multi-label `calibration` (schema in heads/multilabel/calibration.py) and an
                    `unknown` model whose Mahalanobis means have 1 to classes + 1 rows (heads/multilabel/unknown.py);
                    format 4 multi-label heads load with neither.

Format 1 files (no unknown, no calibration, no digest) still load, with unknown and calibration None. Format 3 is
format 2 whose backbone may be any registry entry; format 1 and 2 files are resnet18 heads and load as before.

Every field is checked on load, as untrusted input, before anything uses it (a digest can be recomputed by whoever
crafts a file): the format version is a whole number; the backbone is a registry entry and in_features its width;
classes are distinct names, one per output; precision is fp32 or bf16; the weights record is a known kind with a
hex sha256; the preprocessing is one the backbone's heads are trained with; the unknown-image model's threshold,
rate and folds are finite and in range and its tensors have the head's shapes; the temperature is a finite number
> 0 and the uncalibrated head has the head's shapes. Any failure is one HeadFileError line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from headstart.features import __version__
from headstart.features.backbones.registry import DEFAULT_BACKBONE, ENTRIES
from headstart.features.files.atomic import atomic_write
from headstart.features.files.regular import UnsafeFileError, open_regular
from headstart.features.provenance import PREPROCESSINGS, RANDOM, Preprocessing, RecordError
from headstart.heads.linear import LinearHead
from headstart.heads.trust.unknown import UnknownModel

FORMAT_VERSION = 3
MULTI_LABEL_VERSION = 5  # written only for a multi-label head; 4: one without calibration or unknown model
READABLE_VERSIONS = (1, 2, 3, 4, 5)
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_SHA256 = re.compile(r"[0-9a-f]{64}")
PRECISIONS = ("fp32", "bf16")
WEIGHTS_KINDS = ("torchvision", "file", RANDOM)
_REQUIRED = ("head_type", "head_args", "state_dict", "classes", "backbone", "weights", "preprocessing", "precision")


class HeadFileError(ValueError):
    """A head file that is missing, damaged, unsafe or of another version; the message says to re-run train-head."""


@dataclass
class HeadCheckpoint:
    """A loaded head and what it was trained on."""

    head: LinearHead
    classes: list[str]
    backbone: str
    weights: dict
    preprocessing: dict
    precision: str
    train_config: dict
    metrics: dict
    unknown: UnknownModel | None = None
    calibration: dict | None = None
    multilabel: dict | None = None  # a multi-label head's {"task", "thresholds", "threshold_rule"}; None: single-label
    format_version: int | None = None  # the file's, when loaded; None: not loaded from a file

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label head's per-class thresholds; None for a single-label (softmax) head."""
        return list(self.multilabel["thresholds"]) if self.multilabel else None

    @property
    def no_unknown_reason(self) -> str:
        """Why the head carries no unknown-image model (when `unknown` is None), and how to get one, in words."""
        if self.format_version == 1:
            return "a format 1 head file, saved before unknown-image models: re-run train-head to add one"
        if self.format_version == 4:
            return (
                "a format 4 multi-label head file, saved before multi-label heads had one: re-run train-head to add one"
            )
        return "train-head had too few training rows to fit one: add training images and re-run train-head"


def save_head(path: str | os.PathLike, checkpoint: HeadCheckpoint, features_file: str = "") -> None:
    """Write the head file whole or not at all; a head with weights that are not finite is refused."""
    if not all(bool(torch.isfinite(tensor).all()) for tensor in checkpoint.head.state_dict().values()):
        raise ValueError(f"refusing to write {path}: the head's weights are not finite (training diverged)")
    state_dict = {k: v.detach().clone() for k, v in checkpoint.head.state_dict().items()}
    classes = list(checkpoint.classes)
    unknown = checkpoint.unknown.to_dict() if checkpoint.unknown else None
    data = {
        "format_version": FORMAT_VERSION,
        "producer": f"headstart {__version__}",
        "torch_version": str(torch.__version__),  # TorchVersion is a class weights_only refuses
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "head_type": "linear",
        "head_args": checkpoint.head.head_args,
        "state_dict": state_dict,
        "classes": classes,
        "backbone": checkpoint.backbone,
        "weights": dict(checkpoint.weights),
        "preprocessing": dict(checkpoint.preprocessing),
        "precision": checkpoint.precision,
        "train_config": dict(checkpoint.train_config),
        "metrics": checkpoint.metrics,
        "features_file": features_file,
        "unknown": unknown,
        "calibration": checkpoint.calibration,
    }
    if checkpoint.multilabel is not None:
        data |= {"format_version": MULTI_LABEL_VERSION, "multilabel": dict(checkpoint.multilabel)}
    data["digest"] = head_digest(state_dict, classes, unknown, checkpoint.multilabel)
    with atomic_write(path) as out:
        torch.save(data, out)


def head_digest(
    state_dict: dict[str, torch.Tensor], classes: list[str], unknown: dict | None = None, multilabel: object = None
) -> str:
    """sha256 of what decides a head's answers: its tensors, its class names, a multi-label head's thresholds and its
    unknown-image model."""
    digest = hashlib.sha256()
    _digest_tensors(digest, state_dict)
    digest.update(json.dumps(classes).encode())
    if multilabel is not None:
        digest.update(json.dumps(multilabel, sort_keys=True, default=str).encode())
    if not isinstance(unknown, dict):
        return digest.hexdigest()
    state = unknown.get("state")
    if isinstance(state, dict) and all(isinstance(tensor, torch.Tensor) for tensor in state.values()):
        _digest_tensors(digest, state)
        rest = {key: value for key, value in unknown.items() if key != "state"}
        digest.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _digest_tensors(digest, tensors: dict[str, torch.Tensor]) -> None:
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}:".encode())
        digest.update(tensor.numpy().tobytes())


def _read(path: Path) -> object:
    """torch.load of a regular file that is a torch zip archive; anything else is refused before unpickling."""
    try:
        descriptor = open_regular(path)
    except UnsafeFileError as error:
        raise HeadFileError(f"{error}; a head file is written by `train-head`") from None
    with os.fdopen(descriptor, "rb") as handle:
        if handle.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise HeadFileError(
                f"{path} is not a head file (not a PyTorch checkpoint; something else was written "
                "over it?): re-run `train-head`"
            )
        handle.seek(0)
        try:
            return torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise HeadFileError(
                f"{path} holds objects that are not plain data and was refused unread: it is not a "
                "headstart head file; re-run `train-head`"
            ) from None
        except Exception as error:  # torch raises many types for damaged files
            raise HeadFileError(
                f"{path} is not a readable head file ({type(error).__name__}): re-run `train-head`"
            ) from None


def _integrity_problem(data: dict) -> str | None:
    """Damage the records cannot show: a digest that no longer matches (format 2), weights that are not finite."""
    state_dict = data["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
        return None  # load_state_dict says what is wrong with it
    stored = data.get("digest")
    recorded = head_digest(state_dict, data["classes"], data.get("unknown"), data.get("multilabel"))
    if data["format_version"] >= 2 and stored != recorded:
        return "its weights, class names or unknown-image model do not match their checksum"
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state_dict.values()):
        return "its weights are not finite: the training that made it diverged"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def _record_problem(data: dict) -> str | None:
    """What is wrong with the records a head file must carry, or None."""
    return (
        _shape_problem(data)
        or _classes_problem(data["classes"], data["head_args"]["num_classes"])
        or _provenance_problem(data)
        or _unknown_problem(data.get("unknown"), data["head_args"], "multilabel" in data)
        or _calibration_problem(data)
    )


def _shape_problem(data: dict) -> str | None:
    """head_args against the backbone the head names: the features' width is the registry entry's."""
    args, backbone = data["head_args"], data["backbone"]
    if not isinstance(args, dict) or set(args) != {"in_features", "num_classes"}:
        return "head_args is not {in_features, num_classes}"
    if not all(_is_int(args[key]) and args[key] >= 1 for key in args):
        return f"head_args {args} are not positive whole numbers"
    if not isinstance(backbone, str) or backbone not in ENTRIES:
        return (
            f"its backbone {str(backbone)[:80]!r} is not one this headstart can build (one of {', '.join(ENTRIES)}); "
            "a newer headstart may have written it"
        )
    if data["format_version"] < 3 and backbone != DEFAULT_BACKBONE:
        return f"a format {data['format_version']} head names backbone {backbone!r}; that format knew only resnet18"
    # in_features against the backbone's width is checked where the two meet (heads/predict/predictor.py, and the
    # features a head is applied to): a head fitted on features of another width is refused there, in one line.
    return None


def _classes_problem(classes: object, outputs: int) -> str | None:
    if not isinstance(classes, list) or not all(isinstance(name, str) and name for name in classes):
        return "classes is not a list of names"
    if len(classes) != outputs:
        return f"{len(classes)} class names for a head with {outputs} outputs"
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        return f"class names repeat ({', '.join(map(repr, repeated[:3]))})"
    return None


def _provenance_problem(data: dict) -> str | None:
    """The weights, preprocessing and precision records: each one predict rebuilds, so each is checked."""
    weights = data["weights"]
    if not isinstance(weights, dict) or not all(isinstance(weights.get(k), str) for k in ("kind", "name", "sha256")):
        return "the weights record is not {kind, name, sha256}"
    if weights["kind"] not in WEIGHTS_KINDS:
        return f"the weights kind {weights['kind'][:40]!r} is not one of {', '.join(WEIGHTS_KINDS)}"
    if weights["kind"] != RANDOM and not _SHA256.fullmatch(weights["sha256"]):
        return "the weights record's sha256 is not 64 hex digits"
    if not isinstance(data["preprocessing"], dict):
        return "the preprocessing record is not a dict"
    try:
        preprocessing = Preprocessing.from_description(data["preprocessing"])
    except RecordError as error:
        return f"its preprocessing cannot be rebuilt ({str(error)[:160]})"
    entry = ENTRIES[data["backbone"]]
    if preprocessing not in [entry.preprocessing_for(name) for name in PREPROCESSINGS]:
        return f"its preprocessing {preprocessing.name!r} is not one a {entry.name} head is trained with"
    if data["precision"] not in PRECISIONS:
        return f"precision {str(data['precision'])[:40]!r} is not one of {', '.join(PRECISIONS)}"
    for key in ("train_config", "metrics"):
        if not isinstance(data.get(key, {}), dict):
            return f"{key} is not a dict"
    return None


def _unknown_problem(record: object, args: dict, multi_label: bool = False) -> str | None:
    """The unknown-image model's numbers and its tensors' shapes against the head's (in_features, num_classes); a
    multi-label head's Mahalanobis means have 1 to num_classes + 1 rows (heads/multilabel/unknown.py)."""
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("state"), dict):
        return "the unknown-image model is not {method, state, threshold, rate, folds}"
    for key, valid in (("threshold", _is_number), ("rate", lambda v: _is_number(v) and 0 < v < 1)):
        if not valid(record.get(key)):
            return f"the unknown-image model's {key} {str(record.get(key))[:40]} is not a finite number in range"
    if not (_is_int(record.get("folds")) and record["folds"] >= 2):
        return f"the unknown-image model's folds {str(record.get('folds'))[:40]} is not a whole number >= 2"
    expected = _UNKNOWN_SHAPES.get(record.get("method"))  # type: ignore[arg-type]
    if expected is None:
        return None  # UnknownModel.from_dict names the methods
    state, width, classes = record["state"], args["in_features"], args["num_classes"]
    shapes = {name: list(tensor.shape) for name, tensor in state.items() if isinstance(tensor, torch.Tensor)}
    groups = (shapes.get("means") or [0])[0]
    if multi_label and 1 <= groups <= classes + 1:
        classes = groups
    wanted = expected(shapes, width, classes)
    if shapes.keys() != wanted.keys() or any(shapes[name] != wanted[name] for name in wanted):
        return f"the unknown-image model's tensors are {shapes}, not {wanted}"
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state.values()):
        return "the unknown-image model's tensors are not finite"
    if "k" in state and int(state["k"][0]) < 1:
        return f"the unknown-image model's k is {int(state['k'][0])}, not a whole number >= 1"
    return None


def _calibration_problem(data: dict) -> str | None:
    """The temperature folded into the head: a finite number > 0, and the uncalibrated head of the same shapes (a
    multi-label head's per-label calibration: heads/multilabel/calibration.py)."""
    record, state_dict = data.get("calibration"), data["state_dict"]
    if "multilabel" in data and all(isinstance(tensor, torch.Tensor) for tensor in state_dict.values()):
        from headstart.heads.multilabel.calibration import record_problem

        return record_problem(record, state_dict, data["head_args"]["num_classes"])
    if record is None or not all(isinstance(tensor, torch.Tensor) for tensor in state_dict.values()):
        return None  # no calibration, or a damaged state_dict load_state_dict describes
    if not isinstance(record, dict):
        return "the calibration record is not a dict"
    temperature = record.get("temperature")
    if not (_is_number(temperature) and temperature > 0):  # type: ignore[operator]
        return f"the calibration temperature {str(temperature)[:40]} is not a finite number > 0"
    uncalibrated = record.get("uncalibrated")
    if not isinstance(uncalibrated, dict) or {
        name: list(tensor.shape) for name, tensor in uncalibrated.items() if isinstance(tensor, torch.Tensor)
    } != {name: list(tensor.shape) for name, tensor in state_dict.items()}:
        return "the calibration's uncalibrated head does not have the head's shapes"
    for key in ("val_ece_before", "val_ece_after"):
        if record.get(key) is not None and not _is_number(record[key]):
            return f"the calibration's {key} {str(record[key])[:40]} is not a number"
    return None


def _knn_shapes(shapes: dict, width: int, classes: int) -> dict:
    bank = shapes.get("bank") or [0]
    return {"bank": [max(bank[0], 1), width], "k": [1]}


_UNKNOWN_SHAPES = {
    "mahalanobis": lambda shapes, width, classes: {"means": [classes, width], "precision": [width, width]},
    "knn": _knn_shapes,
}


def load_head(path: str | os.PathLike) -> HeadCheckpoint:
    """Load a head file safely (never unpickles code); any problem is a HeadFileError naming the file."""
    path = Path(path)
    if not path.exists():
        raise HeadFileError(f"{path} does not exist: run `train-head` first")
    data = _read(path)
    if not isinstance(data, dict) or "format_version" not in data:
        raise HeadFileError(f"{path} is not a headstart head file: re-run `train-head`")
    if not _is_int(data["format_version"]):
        raise HeadFileError(
            f"{path} has a format_version that is not a whole number ({str(data['format_version'])[:40]!r}): "
            "it is not a headstart head file; re-run `train-head`"
        )
    if data["format_version"] not in READABLE_VERSIONS:
        raise HeadFileError(
            f"{path} is head format {data['format_version']}; this headstart reads format "
            f"{' or '.join(map(str, READABLE_VERSIONS))}: re-run `train-head`"
        )
    required = (*_REQUIRED, "multilabel") if data["format_version"] >= 4 else _REQUIRED
    missing = [key for key in required if key not in data]
    if missing or not isinstance(data["head_type"], str) or data["head_type"] != "linear":
        raise HeadFileError(f"{path} is incomplete (missing {missing}): re-run `train-head`")
    problem = _record_problem(data) or _integrity_problem(data)
    if problem:
        raise HeadFileError(f"{path} is damaged ({problem}): re-run `train-head`")
    try:
        head = LinearHead(**data["head_args"])
        head.load_state_dict(data["state_dict"])
    except (TypeError, RuntimeError) as error:
        raise HeadFileError(f"{path} has a damaged head ({str(error).splitlines()[0]}): re-run `train-head`") from None
    head.eval()
    return HeadCheckpoint(
        head,
        list(data["classes"]),
        data["backbone"],
        data["weights"],
        data["preprocessing"],
        data["precision"],
        data.get("train_config", {}),
        data.get("metrics", {}),
        _unknown_model(path, data),
        data.get("calibration"),
        _multilabel_record(path, data),
        data["format_version"],
    )


def _multilabel_record(path: Path, data: dict) -> dict | None:
    """A multi-label head's record, checked: one threshold in (0, 1) per class."""
    record = data.get("multilabel")
    if record is None:
        return None
    thresholds = record.get("thresholds") if isinstance(record, dict) else None
    if (
        not isinstance(thresholds, list)
        or len(thresholds) != len(data["classes"])
        or not all(isinstance(value, float) and 0 < value < 1 for value in thresholds)
        or record.get("task") != "multi-label"
    ):
        raise HeadFileError(f"{path} has a damaged multi-label record (thresholds, task): re-run `train-head`")
    return {"task": "multi-label", "thresholds": thresholds, "threshold_rule": str(record.get("threshold_rule", ""))}


def _unknown_model(path: Path, data: dict) -> UnknownModel | None:
    """The stored unknown-image model; None in format 1 files and heads trained with too few rows for one."""
    if data.get("unknown") is None:
        return None
    try:
        return UnknownModel.from_dict(data["unknown"])
    except (ValueError, KeyError, TypeError) as error:
        raise HeadFileError(f"{path} has a damaged unknown-image model ({error}): re-run `train-head`") from None
