"""Model selection over the cache: k-fold cross-validation of a grid of head settings, many heads trained at once."""

from .grid import default_grid, read_grid
from .runner import CrossValidation, SettingScores, cross_validate
from .stacked import train_stacked
from .step import SweepSummary, sweep_heads
from .table import SWEEP_FILE, write_sweep_csv

__all__ = ["CrossValidation", "SWEEP_FILE", "SettingScores", "SweepSummary", "cross_validate", "default_grid",
           "read_grid", "sweep_heads", "train_stacked", "write_sweep_csv"]
