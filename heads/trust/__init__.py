"""Trust in the head's answers: unknown-image detection and calibrated confidence. Names load on first use."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "Calibration": "calibration",
    "calibrate": "calibration",
    "expected_calibration_error": "calibration",
    "fold_temperature": "calibration",
    "reliability": "calibration",
    "TrustConfig": "config",
    "Trust": "fit",
    "fit_trust": "fit",
    "reliability_png": "plot",
    "Reliability": "bins",
    "METHODS": "unknown",
    "UnknownModel": "unknown",
    "drift_warning": "unknown",
    "fit_unknown": "unknown",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
