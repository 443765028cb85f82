"""Trust in the head's answers: unknown-image detection and calibrated confidence. Names load on first use."""

from importlib import import_module

_PUBLIC = {
    "Calibration": "calibration", "calibrate": "calibration", "expected_calibration_error": "calibration",
    "fold_temperature": "calibration", "reliability": "calibration", "TrustConfig": "config",
    "Trust": "fit", "fit_trust": "fit", "plot_reliability": "plot", "METHODS": "unknown",
    "UnknownModel": "unknown", "drift_warning": "unknown", "fit_unknown": "unknown",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
