"""How unknown-image detection and calibration show in train-head, predict, evaluate and info."""

from __future__ import annotations

from .reporter import Reporter

NO_MODEL = ("carries no unknown model (a format 1 head file): no image is scored or flagged as unknown; "
            "re-run train-head to add one")


def calibration_line(calibration: dict | None) -> str:
    """metrics.json's `calibration` entry in words."""
    if calibration is None:
        return "calibration: none (--no-calibrate, or too few training rows)"
    line = f"calibration: temperature {calibration['temperature']:.3f} folded into the head"
    if calibration["val_ece_before"] is not None:
        line += f"; val ECE {calibration['val_ece_before']:.4f} -> {calibration['val_ece_after']:.4f} (15 bins)"
    return line


def unknown_line(unknown: dict | None) -> str:
    """metrics.json's `unknown` entry in words."""
    if unknown is None:
        return "unknown images: no model (too few training rows)"
    line = (f"unknown images: {unknown['method']} distance above {unknown['threshold']:.6g} is flagged "
            f"(set to flag {unknown['rate']:.1%} of images like the training set)")
    if unknown["val_flagged_rate"] is not None:
        line += f"; val flagged {unknown['val_flagged_rate']:.1%}"
    return line


def show_trust(report: Reporter, metrics: dict) -> None:
    """train-head and info: the temperature and val's ECE, the unknown-image threshold and val's flagged share."""
    if "unknown" not in metrics:  # a format 1 head
        report.note(f"the head {NO_MODEL}")
        return
    report.note(calibration_line(metrics["calibration"]))
    report.note(unknown_line(metrics["unknown"]))


def show_flagged(report: Reporter, flagged: int | None, images: int, rate: float | None, drift: str | None) -> None:
    """predict and evaluate: how many images look unlike the training set, and a drift warning when far too many."""
    if rate is None:
        report.warn(f"the head {NO_MODEL}")
        return
    report.note(f"{flagged} of {images} images flagged as unknown ({flagged / max(images, 1):.1%}; "
                f"{rate:.1%} expected of images like the training set)")
    if drift:
        report.warn(drift)
