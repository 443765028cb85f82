"""Model selection over the cache: k-fold cross-validation of a grid of head settings, many heads trained at once."""

from headstart.heads.sweep.grid import default_grid, read_grid
from headstart.heads.sweep.runner import CrossValidation, SettingScores, cross_validate
from headstart.heads.sweep.stacked import train_stacked
from headstart.heads.sweep.step import SweepSummary, sweep_heads
from headstart.heads.sweep.table import write_sweep_csv

__all__ = [
    "CrossValidation",
    "SettingScores",
    "SweepSummary",
    "cross_validate",
    "default_grid",
    "read_grid",
    "sweep_heads",
    "train_stacked",
    "write_sweep_csv",
]
