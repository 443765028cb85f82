"""Per-label calibration of a multi-label head: each label's logit mapped by `scale * z + shift`, fitted on
out-of-fold logits over train, folded into the head.

Two forms (METHODS): "temperature", one T per label (scale 1/T, shift 0: the ranking and the 0.5 point kept), and
"platt", Platt scaling per label (scale a > 0, shift b, a logistic regression on the logit). bench/multilabel_trust.py
measures both by held-out ECE (docs/multi-label.md); DEFAULT_METHOD is its choice.

The record stored in head.pt under "calibration" for a multi-label head (format 5, plain types only):

    method                 "temperature" | "platt"
    scale, shift           list of float per class: the saved head's weight row and bias of class k are the trained
                           ones times scale[k], and its bias plus shift[k]
    uncalibrated           {"weight": tensor, "bias": tensor}: the head as trained
    folds                  int: the k of the out-of-fold logits the calibration was fitted on
    val_ece_before/after   float or None: val's mean per-label ECE (15 bins), before and after

A scale > 0 keeps each label's ranking (its average precision); thresholds are chosen on the calibrated out-of-fold
probabilities, so they are in the calibrated head's units.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from headstart.heads.linear import LinearHead
from headstart.heads.trust.bins import BINS
from headstart.heads.trust.calibration import binned_reliability

METHODS = ("temperature", "platt")
DEFAULT_METHOD = "temperature"
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))  # as the single-label temperature's
_SCALE_RANGE = (1e-3, 1e3)
_RIDGE = 1e-3  # on Platt's (a, b): keeps a label whose out-of-fold logits separate perfectly finite


def _bce(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy per column of sigmoid(logits) against 0/1 targets."""
    return np.mean(np.logaddexp(0, logits) - targets * logits, axis=0)


def fit_temperatures(logits: np.ndarray, targets: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """Per label, the T minimising the BCE of sigmoid(z / T) (golden-section search over log T, every label at
    once); 1 for a label whose rows are all one value."""
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    low, high = (np.full(logits.shape[1], bound) for bound in _LOG_T_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    while float(np.max(high - low)) > tolerance:
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        left = _bce(logits / np.exp(a), targets) <= _bce(logits / np.exp(b), targets)
        high, low = np.where(left, b, high), np.where(left, low, a)
    temperatures = np.exp((low + high) / 2)
    mixed = (targets.min(0) == 0) & (targets.max(0) == 1)
    return np.where(mixed, temperatures, 1.0)


def fit_platt(logits: np.ndarray, targets: np.ndarray, steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Per label, (a, b) minimising the BCE of sigmoid(a z + b) plus a small ridge, by Newton's method; (1, 0) for a
    label whose rows are all one value or whose fitted a is not > 0 (a ranking it would reverse)."""
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    scale, shift = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    for label in range(logits.shape[1]):
        z, y = logits[:, label], targets[:, label]
        if y.min() == y.max():
            continue
        design = np.stack([z, np.ones_like(z)], axis=1)
        weights = np.array([1.0, 0.0])
        for _ in range(steps):
            p = 1 / (1 + np.exp(-np.clip(design @ weights, -50, 50)))
            gradient = design.T @ (p - y) / len(y) + _RIDGE * weights
            hessian = (design * (p * (1 - p))[:, None]).T @ design / len(y) + _RIDGE * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            weights = weights - step
            if float(np.abs(step).max()) < 1e-10:
                break
        if np.isfinite(weights).all() and weights[0] > 0:
            scale[label], shift[label] = np.clip(weights[0], *_SCALE_RANGE), weights[1]
    return scale, shift


def fit_calibration(logits: np.ndarray, targets: np.ndarray, method: str = DEFAULT_METHOD) -> tuple:
    """(scale, shift) per label of `method`, fitted on these (out-of-fold) logits."""
    if method == "temperature":
        temperatures = fit_temperatures(logits, targets)
        return 1 / temperatures, np.zeros_like(temperatures)
    if method == "platt":
        return fit_platt(logits, targets)
    raise ValueError(f"multi-label calibration must be one of {', '.join(METHODS)}, not {method!r}")


def apply(logits: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Calibrated probabilities sigmoid(scale * z + shift)."""
    return np.exp(-np.logaddexp(0, -(np.asarray(logits, np.float64) * scale + shift)))  # no overflow at large |z|


def fold(head: LinearHead, scale: np.ndarray, shift: np.ndarray) -> LinearHead:
    """A new head computing scale * head(x) + shift, label by label."""
    folded = LinearHead(head.in_features, head.out_features)
    scale_t, shift_t = torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(shift, dtype=torch.float32)
    with torch.no_grad():
        folded.weight.copy_(head.weight * scale_t[:, None])
        folded.bias.copy_(head.bias * scale_t + shift_t)
    return folded.eval()


def label_ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Mean over labels of the binned ECE of each label's probability against how often it is present."""
    scores, truth = torch.as_tensor(probabilities).double(), torch.as_tensor(targets).double()
    return float(np.mean([binned_reliability(scores[:, k], truth[:, k], bins).ece for k in range(truth.shape[1])]))


def record_problem(record: object, state_dict: dict, classes: int) -> str | None:
    """What is wrong with a multi-label head's calibration record (read as untrusted), or None."""
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("method") not in METHODS:
        return f"the calibration record is not one of {', '.join(METHODS)}"
    for key in ("scale", "shift"):
        values = record.get(key)
        if not isinstance(values, list) or len(values) != classes or not all(_finite(value) for value in values):
            return f"the calibration's {key} is not one finite number per class"
    if not all(value > 0 for value in record["scale"]):
        return "the calibration's scale is not > 0 for every class"
    uncalibrated = record.get("uncalibrated")
    shapes = {name: list(tensor.shape) for name, tensor in state_dict.items() if isinstance(tensor, torch.Tensor)}
    if (
        not isinstance(uncalibrated, dict)
        or {name: list(tensor.shape) for name, tensor in uncalibrated.items() if isinstance(tensor, torch.Tensor)}
        != shapes
    ):
        return "the calibration's uncalibrated head does not have the head's shapes"
    for key in ("val_ece_before", "val_ece_after"):
        if record.get(key) is not None and not _finite(record[key]):
            return f"the calibration's {key} {str(record[key])[:40]} is not a number"
    return None


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
