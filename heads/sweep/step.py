"""The sweep step: cross-validate a grid on the cached train rows, then refit the winner through the train-head step.

The choice is made inside heads.fit.fit_head, from the train rows alone, before val is read; the winner
is then trained on the whole train split and scored on val exactly as train-head trains and scores, and
saved by the same code (head.pt, metrics.json with a "sweep" record, curves.png), with sweep.csv
replaced together with them. The head the cache held before (train-head's, or an earlier sweep's) is kept as
head.previous.pt, in the same commit: one generation, recoverable by copying it back over head.pt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from headstart.features import __version__
from headstart.features.files.cachedir import HEAD_FILE, PREVIOUS_HEAD_FILE, SWEEP_FILE
from headstart.features.files.regular import open_regular
from headstart.heads.config import SweepConfig, TrainConfig
from headstart.heads.fit import Choice, FitSummary, fit_head
from headstart.heads.kfold import check_folds
from headstart.heads.sweep.grid import default_grid, read_grid
from headstart.heads.sweep.runner import CrossValidation, cross_validate
from headstart.heads.sweep.table import SWEEP_FORMAT_VERSION, write_sweep_csv

SEED_MAX = 2**32 - 1  # numpy's, scikit-learn's and torch's seeds all take it (console/options.py's SEED_MAX)


@dataclass
class SweepSummary:
    cross_validation: CrossValidation
    fit: FitSummary
    sweep_path: Path
    previous_head: Path | None = None  # the head this sweep replaced, kept under its one previous name


def sweep_record(result: CrossValidation, grid: str) -> dict:
    """What metrics.json and head.pt keep of the sweep: how the winner was chosen and its cross-validated scores."""
    winner, metric = result.winner, result.metric  # metric: acc, or map on multi-label features
    return {
        "grid": grid,
        "settings": len(result.scores),
        "folds": result.folds,
        "seed": result.seed,
        "heads": result.heads,
        "seconds": result.seconds,
        "head_seconds": result.head_seconds,
        "chosen": winner.setting.to_dict(),
        f"cv_{metric}_mean": winner.acc_mean,
        f"cv_{metric}_std": winner.acc_std,
        "cv_loss_mean": winner.loss_mean,
        "cv_loss_std": winner.loss_std,
        "table": SWEEP_FILE,
        "table_format": SWEEP_FORMAT_VERSION,
        "producer": f"headstart {__version__}",
    }


class _Chooser:
    """fit_head's `choose`: cross-validates the grid on the train rows it is given and keeps the result."""

    def __init__(
        self,
        cache: Path,
        settings: list[TrainConfig],
        config: SweepConfig,
        on_progress: Callable[[int, int], None] | None,
    ):
        self.cache, self.settings, self.config, self.on_progress = cache, settings, config, on_progress
        self.result: CrossValidation | None = None
        self.previous_head: Path | None = None

    def __call__(self, train: tuple[torch.Tensor, torch.Tensor], classes: list[str], streamed: bool = False) -> Choice:
        """`streamed`: train is a sample of a cache above the in-memory limit, where only SGD heads train."""
        record: dict = {}
        if train[1].ndim == 2:  # label sets (N, C): multi-label features, chosen by cross-validated mAP
            result, record["logreg_left_out"] = self._multilabel(train)
        else:
            settings = self.settings
            if streamed:  # logreg holds every row: above the limit the grid's SGD settings only
                settings = [setting for setting in self.settings if setting.head == "sgd"]
                if not settings:
                    raise ValueError(
                        "above the in-memory limit the sweep tries only the grid's [sgd] settings (logreg holds "
                        "every row): add an [sgd] section"
                    )
                record["logreg_left_out"] = len(self.settings) - len(settings)
            check_folds(train[1].numpy(), self.config.folds, classes)
            result = cross_validate(
                *train, len(classes), settings, self.config.folds, self.config.seed, self.on_progress
            )
        self.result = result
        outputs = {SWEEP_FILE: lambda path: write_sweep_csv(path, result)}
        if (self.cache / HEAD_FILE).exists():  # called under the cache's lock: the head cannot change until saved
            outputs[PREVIOUS_HEAD_FILE] = self._keep_previous
            self.previous_head = self.cache / PREVIOUS_HEAD_FILE
        record = sweep_record(result, self.config.grid or "default") | record
        return Choice(result.winner.setting, {"sweep": record}, outputs)

    def _multilabel(self, train: tuple[torch.Tensor, torch.Tensor]) -> tuple[CrossValidation, int]:
        from headstart.heads.sweep.multilabel import check_multilabel_folds, cross_validate_multilabel, sgd_settings

        check_multilabel_folds(train[1], self.config.folds)
        settings, left_out = sgd_settings(self.settings)
        folds, seed = self.config.folds, self.config.seed
        return cross_validate_multilabel(*train, settings, folds, seed, self.on_progress), left_out

    def _keep_previous(self, path: Path) -> None:
        """The current head's bytes into path, renamed over head.previous.pt just before the new head is renamed."""
        with os.fdopen(open_regular(self.cache / HEAD_FILE, fix="remove it and run sweep again"), "rb") as head:
            with open(path, "wb") as out:
                shutil.copyfileobj(head, out)


def sweep_heads(
    cache: str | Path,
    config: SweepConfig = SweepConfig(),
    on_progress: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> SweepSummary:
    """Choose a head setting by k-fold cross-validation on the train split, refit it, score it on val once, save it."""
    if not 0 <= config.seed <= SEED_MAX:
        raise ValueError(f"--seed {config.seed} is out of range: give a seed from 0 to {SEED_MAX}")
    settings = read_grid(config.grid, config.seed) if config.grid else default_grid(config.seed)
    chooser = _Chooser(Path(cache), settings, config, on_progress)
    fit = fit_head(cache, on_epoch=on_epoch, choose=chooser, command="sweep", backbone=config.backbone)
    if chooser.result is None:  # fit_head calls choose before it fits, or fails
        raise RuntimeError("the sweep's cross-validation did not run")
    return SweepSummary(chooser.result, fit, Path(cache) / SWEEP_FILE, chooser.previous_head)
