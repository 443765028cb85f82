"""Unknown-image detection and calibration in the CLI: their options, and how they show in each command."""

from __future__ import annotations

import functools

import click

from headstart.console.reporter import Reporter
from headstart.heads.trust.config import UNKNOWN_METHODS, TrustConfig

_TRUST_OPTIONS = (
    click.option(
        "--unknown-rate",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=TrustConfig().unknown_rate,
        show_default=True,
        help="Share of images like the training set that predict may flag as unknown (sets the threshold).",
    ),
    click.option(
        "--unknown-method",
        type=click.Choice(UNKNOWN_METHODS),
        default=TrustConfig().unknown_method,
        show_default=True,
        help="mahalanobis: distance to the nearest class mean (shared covariance); "
        "knn: cosine distance to the nearest training image.",
    ),
    click.option("--no-calibrate", is_flag=True, help="Keep the head as trained: no temperature folded in."),
)


def trust_options(command):
    """train-head's --unknown-rate, --unknown-method and --no-calibrate, handed to the command as one `trust`."""

    @functools.wraps(command)
    def with_trust(*args, unknown_rate: float, unknown_method: str, no_calibrate: bool, **kwargs):
        trust = TrustConfig(unknown_rate=unknown_rate, unknown_method=unknown_method, calibrate=not no_calibrate)
        return command(*args, trust=trust, **kwargs)

    for option in reversed(_TRUST_OPTIONS):
        with_trust = option(with_trust)
    return with_trust


NO_MODEL = (
    "carries no unknown model (a format 1 head file): no image is scored or flagged as unknown; "
    "re-run train-head to add one"
)


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
    line = (
        f"unknown images: {unknown['method']} distance above {unknown['threshold']:.6g} is flagged "
        f"(set to flag {unknown['rate']:.1%} of images like the training set)"
    )
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


def show_flagged(
    report: Reporter, flagged: int | None, images: int, rate: float | None, drift: str | None, no_unknown: str
) -> None:
    """predict and evaluate: how many images look unlike the training set, and a drift warning when far too many;
    `no_unknown`: why the head has no unknown-image model, when it has none."""
    if rate is None or flagged is None:  # both are None for a head without an unknown-image model
        report.warn(f"the head carries no unknown model ({no_unknown}): no image is scored or flagged as unknown")
        return
    report.note(
        f"{flagged} of {images} images flagged as unknown ({flagged / max(images, 1):.1%}; "
        f"{rate:.1%} expected of images like the training set)"
    )
    if drift:
        report.warn(drift)


def show_prediction(report: Reporter, summary) -> None:
    """predict: how many images were labelled and failed, how many were flagged as unknown, and drift."""
    if summary.resumed:
        report.note(f"resumed: {summary.resumed} predictions an interrupted run had finished were reused")
    skipped = f", {len(summary.skipped)} other file(s) skipped" if summary.skipped else ""
    report.note(f"{summary.predicted} images labelled, {summary.failed} could not be read{skipped} -> {summary.out}")
    if summary.not_read:
        report.note("not read, by kind: " + ", ".join(f"{count} {kind}" for kind, count in summary.not_read.items()))
    for name, reason in summary.skipped:
        report.warn(f"skipped {name}: {reason}")
    show_flagged(report, summary.flagged, summary.predicted, summary.unknown_rate, summary.drift, summary.no_unknown)
