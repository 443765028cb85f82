"""Trust in the head's answers: unknown-image detection (unknown.py) and calibrated confidence (calibration.py)."""

from .calibration import Calibration, calibrate, expected_calibration_error, fold_temperature, reliability
from .unknown import DEFAULT_METHOD, DEFAULT_RATE, METHODS, UnknownModel, fit_unknown

__all__ = ["Calibration", "calibrate", "expected_calibration_error", "fold_temperature", "reliability",
           "DEFAULT_METHOD", "DEFAULT_RATE", "METHODS", "UnknownModel", "fit_unknown"]
