"""sweep.csv, format 2: every setting's cross-validated scores, best first, as the sweep ranked them.

A CSV header, then one row per setting, written by the one CSV writer (features/files/csvfile.py), so csv.reader and
pandas.read_csv read it with their default options. Its format version, producer, folds and seed are in
metrics.json's (and head.pt's) "sweep" record: "table": "sweep.csv", "table_format": 2, "producer",
"folds", "seed" (heads/sweep/step.py). Format 1 began with a "# headstart sweep.csv format 1; ..." comment line,
which pandas.read_csv read as data without comment="#".

    rank            1 = the winner, the setting refit on the whole train split and scored on val
    head            "sgd" | "logreg"
    lr, epochs, momentum, weight_decay, batch_size      SGD settings (empty for logreg)
    c               logreg's C (empty for sgd)
    class_weight    "none" | "balanced"
    acc_mean, acc_std, loss_mean, loss_std              over the folds (population std); loss is the mean
                    cross-entropy on the held-out rows, "inf" where a head's outputs were not finite
    acc_fold<k>, loss_fold<k>                           each fold's held-out scores, k = 1..folds

On multi-label features (heads/sweep/multilabel.py) the score columns are map_mean, map_std, map_fold<k> (each
fold's mean average precision) in place of the acc_ ones, and loss is the mean binary cross-entropy; the rest is
the same. A single-label sweep's table is unchanged.
"""

from __future__ import annotations

import os

from headstart.features.files.csvfile import CsvWriter
from headstart.heads.sweep.runner import CrossValidation

SWEEP_FORMAT_VERSION = 2
_SGD = ("lr", "epochs", "momentum", "weight_decay", "batch_size")


def header(folds: int, metric: str = "acc") -> list[str]:
    return [
        "rank",
        "head",
        *_SGD,
        "c",
        "class_weight",
        f"{metric}_mean",
        f"{metric}_std",
        "loss_mean",
        "loss_std",
        *[f"{metric}_fold{k}" for k in range(1, folds + 1)],
        *[f"loss_fold{k}" for k in range(1, folds + 1)],
    ]


def write_sweep_csv(path: str | os.PathLike, result: CrossValidation) -> None:
    """Write the ranked table (the sweep step writes it to a temporary file replaced together with the head)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = CsvWriter(handle, header(result.folds, result.metric))
        for rank, scores in enumerate(result.ranked(), 1):
            setting = scores.setting
            sgd = setting.head == "sgd"
            writer.writerow(
                [
                    rank,
                    setting.head,
                    *[getattr(setting, key) if sgd else "" for key in _SGD],
                    "" if sgd else setting.c,
                    setting.class_weight,
                    *[
                        f"{value:.6f}"
                        for value in (
                            scores.acc_mean,
                            scores.acc_std,
                            scores.loss_mean,
                            scores.loss_std,
                            *scores.fold_acc,
                            *scores.fold_loss,
                        )
                    ],
                ]
            )
