"""Trust for multi-label heads: per-label calibration (a temperature per label against Platt scaling per label) by
held-out ECE, and the unknown-image score's form by AUROC of held-out unknown rows.

    python -m bench.multilabel_trust [--seeds 3] [--out bench/results/multilabel_trust.json]

The data are generated FEATURES, not images (the ImageNet weights are not available here, and random-init features
carry no planted pattern): as bench/multilabel_recipe.py, LABELS planted directions with their own prevalences (two
rare), a row `scale * (noise + its labels' directions)`, at widths 32 and 512. "Unknown" rows are drawn the same way
but carry NOVEL other planted directions instead of the labels' (a kind of image the head never saw), half of
them also a label's direction (an unseen thing beside a known one). Per (width, seed): TRAIN rows fit the head by
the multi-label default recipe (heads/multilabel/recipe.py); its 5-fold out-of-fold logits over train fit each
calibration and choose the thresholds; TEST known rows and UNKNOWN rows score them. Reported, means over seeds:
- calibration: mean per-label ECE (15 bins) on test, uncalibrated / temperature per label / Platt per label, and
  micro and macro F1 at thresholds chosen on each one's calibrated out-of-fold probabilities;
- unknown images: AUROC (unknown rows against test rows, higher = better) and the share of test rows and of unknown
  rows flagged at --unknown-rate 0.05, for each form in heads/multilabel/unknown.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from bench import measure_and_save
from headstart.heads.config import TrainConfig
from headstart.heads.multilabel import calibration, unknown
from headstart.heads.multilabel.metrics import best_thresholds, multilabel_summary
from headstart.heads.multilabel.recipe import EPOCHS, LR
from headstart.heads.multilabel.train import logits, out_of_fold_logits, train_multilabel

ROOT = Path(__file__).resolve().parents[1]
PREVALENCE = (0.4, 0.3, 0.25, 0.06, 0.03)
STRENGTH = 2.5
NOVEL = 3  # directions unknown rows carry, none of them a label's
TRAIN, TEST, UNKNOWN = 600, 2000, 500
WIDTHS = (32, 512)
SCALE = 1.0
RATE = 0.05


def make_rows(seed: int, rows: int, width: int, novel: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Features and 0/1 label sets; with `novel` > 0, rows carry one of NOVEL other directions, `novel` times a label
    direction's length (and half of them their labels' directions too)."""
    labels = len(PREVALENCE)
    directions = np.random.default_rng([seed, width]).standard_normal((labels + NOVEL, width))
    directions *= STRENGTH / np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, width, rows, int(novel)])
    targets = (rng.random((rows, labels)) < np.asarray(PREVALENCE)).astype(np.uint8)
    signal = targets @ directions[:labels]
    if novel:
        kept = rng.random(rows) < 0.5
        targets = targets * kept[:, None]
        signal = targets @ directions[:labels] + novel * directions[labels + rng.integers(0, NOVEL, rows)]
    return (SCALE * (rng.standard_normal((rows, width)) + signal)).astype(np.float32), targets


def auroc(known: np.ndarray, novel: np.ndarray) -> float:
    """P(an unknown row scores above a known row), ties half (scikit-learn's roc_auc_score)."""
    return float(roc_auc_score(np.r_[np.zeros(len(known)), np.ones(len(novel))], np.r_[known, novel]))


def one_case(seed: int, width: int, novel: float) -> dict:
    """The figures of one (width, seed)."""
    features, targets = make_rows(seed, TRAIN, width)
    test_features, test_targets = make_rows(seed, TEST, width)
    novel_features, _ = make_rows(seed, UNKNOWN, width, novel)
    config = TrainConfig(epochs=EPOCHS, lr=LR, seed=seed)
    train = torch.from_numpy(features), torch.from_numpy(targets.astype(np.float32))
    head = train_multilabel(train, None, config).head
    held, test_logits = out_of_fold_logits(train, config), logits(head, torch.from_numpy(test_features))
    names = [f"label{k}" for k in range(len(PREVALENCE))]
    calibrations = {"uncalibrated": (np.ones(len(names)), np.zeros(len(names)))}
    calibrations |= {method: calibration.fit_calibration(held, targets, method) for method in calibration.METHODS}
    calibrated = {}
    for name, (scale, shift) in calibrations.items():
        oof, probabilities = calibration.apply(held, scale, shift), calibration.apply(test_logits, scale, shift)
        summary = multilabel_summary(test_targets, probabilities, best_thresholds(targets, oof), names)
        calibrated[name] = {
            "test_ece": calibration.label_ece(probabilities, test_targets),
            "micro_f1": summary["micro_f1"],
            "macro_f1": summary["macro_f1"],
        }
    forms = {}
    for form in unknown.FORMS:
        model = unknown.fit_unknown_multilabel(*train, form, RATE, 5, seed)
        known, unseen = (
            model.score(torch.from_numpy(rows)).double().numpy() for rows in (test_features, novel_features)
        )
        forms[form] = {
            "auroc": auroc(known, unseen),
            "test_flagged": float(np.mean(known > model.threshold)),
            "unknown_flagged": float(np.mean(unseen > model.threshold)),
        }
    return {"width": width, "seed": seed, "calibration": calibrated, "unknown": forms}


def _mean(cases: list) -> object:
    if isinstance(cases[0], dict):
        return {key: _mean([case[key] for case in cases]) for key in cases[0]}
    return round(float(np.mean(cases)), 4)


def run(seeds: int, novel: float, on_line=print) -> dict:
    cases = []
    for width in WIDTHS:
        for seed in range(seeds):
            cases.append(one_case(seed, width, novel))
            on_line(f"width {width} seed {seed} done")
    means = {
        str(width): _mean(
            [{k: case[k] for k in ("calibration", "unknown")} for case in cases if case["width"] == width]
        )
        for width in WIDTHS
    }
    return {
        "bench": "multilabel_trust",
        "data": {"prevalence": PREVALENCE, "train": TRAIN, "test": TEST, "unknown": UNKNOWN, "widths": WIDTHS},
        "recipe": {"epochs": EPOCHS, "lr": LR},
        "unknown_rate": RATE,
        "novel_strength": novel,
        "seeds": seeds,
        "mean_by_width": means,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.multilabel_trust", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--novel-strength", type=float, default=1.0, help="unknown rows' directions / a label's")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "multilabel_trust.json")
    args = parser.parse_args(argv)
    novel = args.novel_strength
    figures = measure_and_save("headstart-multilabel-trust-", args.out, lambda work: run(args.seeds, novel))
    for width, entry in figures["mean_by_width"].items():
        for name, scores in entry["calibration"].items():
            print(
                f"width {width} {name}: test ECE {scores['test_ece']:.4f}, micro F1 {scores['micro_f1']:.3f}, "
                f"macro F1 {scores['macro_f1']:.3f}"
            )
        for name, scores in entry["unknown"].items():
            print(
                f"width {width} unknown {name}: AUROC {scores['auroc']:.3f}, flags test {scores['test_flagged']:.3f}"
                f", unknown {scores['unknown_flagged']:.3f}"
            )
    print(f"written to {args.out}")
    return figures


if __name__ == "__main__":
    main()
