"""The trust part of a multi-label train-head: per-label calibration fitted on out-of-fold logits over train and
folded into the head, the out-of-fold probabilities thresholds are chosen on, the unknown-image model, and what
calibration.png shows (val's pooled per-label reliability, before and after the calibration)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.multilabel import calibration
from headstart.heads.multilabel.train import THRESHOLD_FOLDS, Rows, enough_rows, logits, out_of_fold_logits
from headstart.heads.multilabel.unknown import DEFAULT_FORM, fit_unknown_multilabel
from headstart.heads.trust.calibration import binned_reliability
from headstart.heads.trust.config import TrustConfig
from headstart.heads.trust.unknown import UnknownModel

TOO_FEW = f"fewer than {2 * THRESHOLD_FOLDS} train rows, too few for out-of-fold scores"


@dataclass(frozen=True)
class MultiLabelTrust:
    """The head to save (calibration folded in, or as trained), what head.pt and metrics.json record about trust,
    and train's out-of-fold probabilities in the saved head's units (None when not computed)."""

    head: LinearHead
    calibration: dict | None  # head.pt's record (heads/multilabel/calibration.py)
    unknown: UnknownModel | None
    metrics: dict  # metrics.json's "calibration" and "unknown"
    held_out: np.ndarray | None
    skipped: str | None = None
    plot: dict = field(default_factory=dict)  # calibration.png's data (heads/plots.py's "calibration" request)


def _ece(head: LinearHead, rows: Rows | None, scale: np.ndarray, shift: np.ndarray) -> float | None:
    if rows is None:
        return None
    return calibration.label_ece(calibration.apply(logits(head, rows[0]), scale, shift), rows[1].numpy())


def _calibrate(head: LinearHead, held: np.ndarray, train: Rows, val: Rows | None) -> tuple[LinearHead, dict, dict]:
    """The DEFAULT_METHOD fitted on out-of-fold logits: the folded head, head.pt's record, metrics.json's entry."""
    scale, shift = calibration.fit_calibration(held, train[1].numpy(), calibration.DEFAULT_METHOD)
    identity = np.ones_like(scale), np.zeros_like(shift)
    before, after = _ece(head, val, *identity), _ece(head, val, scale, shift)
    summary: dict[str, object] = {"method": calibration.DEFAULT_METHOD, "scale": [float(v) for v in scale]}
    summary |= {"shift": [float(v) for v in shift], "folds": THRESHOLD_FOLDS}
    summary |= {"val_ece_before": before, "val_ece_after": after}
    record = {**summary, "uncalibrated": {k: v.detach().clone() for k, v in head.state_dict().items()}}
    return calibration.fold(head, scale, shift), record, summary


def _pooled(head: LinearHead, val: Rows | None) -> dict | None:
    """Val's reliability pooled over labels: every (image, label) pair's probability against whether the image
    carries the label, in 15 bins; None without val rows."""
    if val is None:
        return None
    probabilities = torch.sigmoid(torch.as_tensor(logits(head, val[0]), dtype=torch.float64)).flatten()
    return asdict(binned_reliability(probabilities, val[1].double().flatten()))


def reliability_plot(trained: LinearHead, saved: LinearHead, val: Rows | None, summary: dict | None) -> dict:
    """What calibration.png shows for a multi-label head, as plain values: the pooled reliability of the head as
    trained and, when a calibration was folded in, of the saved head."""
    after = _pooled(saved, val) if summary is not None else None
    method = summary and {"temperature": "a temperature", "platt": "Platt scaling"}[summary["method"]]
    return {"before": _pooled(trained, val), "after": after, "temperature": None, "pooled": method or ""}


def fit_multilabel_trust(
    head: LinearHead, train: Rows, val: Rows | None, config: TrainConfig, trust: TrustConfig
) -> MultiLabelTrust:
    """Out-of-fold logits (when calibration or the thresholds need them), the calibration, the unknown model."""
    if not enough_rows(train):
        plot = reliability_plot(head, head, val, None)
        return MultiLabelTrust(head, None, None, {"calibration": None, "unknown": None}, None, TOO_FEW, plot)
    trained = head
    held = out_of_fold_logits(train, config) if trust.calibrate or config.threshold is None else None
    record = summary = None
    if trust.calibrate and held is not None:
        head, record, summary = _calibrate(head, held, train, val)
        held = calibration.apply(held, np.asarray(summary["scale"]), np.asarray(summary["shift"]))
    elif held is not None:
        held = calibration.apply(held, np.ones(held.shape[1]), np.zeros(held.shape[1]))
    form = "knn" if trust.unknown_method == "knn" else DEFAULT_FORM
    unknown = fit_unknown_multilabel(*train, form, trust.unknown_rate, THRESHOLD_FOLDS, config.seed)
    flagged = float(unknown.flag(val[0]).double().mean()) if val is not None else None
    unknown_summary = {"method": unknown.method, "form": form, "threshold": unknown.threshold}
    unknown_summary |= {"rate": unknown.rate, "val_flagged_rate": flagged}
    metrics = {"calibration": summary, "unknown": unknown_summary}
    return MultiLabelTrust(head, record, unknown, metrics, held, plot=reliability_plot(trained, head, val, summary))
