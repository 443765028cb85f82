"""The streamed trust fit's sample: the unknown detector's and the calibration's figures against the sample's size.

    python -m bench.trust_sample [--rows 262144] [--sizes 16384,32768,65536,131072,262144] [--seeds 2]
                                 [--fold-steps sample|batches|epochs] [--out bench/results/trust_sample.json]

Generated 512-d feature rows (no images, no backbone: as from a randomly initialised one) of 12 overlapping
Gaussian classes: 10 known ones (train, val, test) and 2 held out, whose rows are the unknowns (the known answer).
The head is trained on every train row by the default recipe and the Mahalanobis model fitted on every train row,
as the streamed fit does; then for each size and sample seed, the threshold and the temperature are fitted on a
seeded stratified sample by heads/trust/streamed.py's own code, and scored: the shares of known test rows (the
target is --unknown-rate) and of unknown rows flagged at the threshold, and val's and test's ECE after the
temperature. The whole train split as the sample is the reference. The detector's AUROC does not depend on the
sample (the model is fitted on every row), so it is measured once.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench import measure_and_save

ROOT = Path(__file__).resolve().parents[1]
WIDTH, KNOWN, UNKNOWN = 512, 10, 2
SPREAD = 0.14  # the known centres' scale: about 4.5 noise units apart, so a line gets about nine rows in ten right
UNKNOWN_SPREAD = 0.35  # the unknown centres': about 8.5 units from a known one
OTHER_ROWS = {"val": 50_000, "test": 50_000, "unknown": 20_000}


def generate(rows: int, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (features, labels)}: `rows` train rows of the known classes, val and test likewise, and the
    unknown classes' rows (labelled with their own class numbers, past the known ones)."""
    rng = np.random.default_rng(seed)
    spread = np.repeat([SPREAD, UNKNOWN_SPREAD], [KNOWN, UNKNOWN])[:, None]
    centres = (rng.standard_normal((KNOWN + UNKNOWN, WIDTH)) * spread).astype(np.float32)
    splits = {}
    for split, count in {"train": rows, **OTHER_ROWS}.items():
        classes = np.arange(KNOWN, KNOWN + UNKNOWN) if split == "unknown" else np.arange(KNOWN)
        labels = classes[np.arange(count) % len(classes)]
        features = centres[labels] + rng.standard_normal((count, WIDTH), dtype=np.float32)
        splits[split] = (torch.from_numpy(features), torch.from_numpy(labels.astype(np.int64)))
    return splits


def _auroc(known: torch.Tensor, unknown: torch.Tensor) -> float:
    """P(an unknown row scores above a known one), ties counted half, from the ranks (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(torch.cat([known, unknown]).double().numpy())
    above = ranks[len(known) :].sum() - len(unknown) * (len(unknown) + 1) / 2
    return float(above / (len(known) * len(unknown)))


def _ece(head, split: tuple[torch.Tensor, torch.Tensor]) -> float:
    from headstart.heads.trust.calibration import reliability

    with torch.inference_mode():
        return reliability(torch.softmax(head(split[0]), 1), split[1]).ece


def _temperature(sample, train_config, config, rows: int, fold_steps: str) -> float:
    """The temperature as train-head fits it from the sample ("sample"), or with the fold heads given the saved
    head's steps: its batches an epoch, smaller ones ("batches"), or proportionally more epochs ("epochs")."""
    from headstart.heads.trust.calibration import fit_temperature, held_out_logits
    from headstart.heads.trust.fit import fold_trainer
    from headstart.heads.trust.streamed import sample_temperature

    if fold_steps == "batches":
        folds = min(config.folds, len(sample[1]))
        trainer = fold_trainer(train_config, KNOWN, rows)
        return fit_temperature(held_out_logits(*sample, trainer, folds, train_config.seed), sample[1])
    if fold_steps == "epochs":
        train_config = replace(train_config, epochs=round(train_config.epochs * rows / len(sample[1])))
    return sample_temperature(sample, KNOWN, train_config, config)


def measure(rows: int, sizes: list[int], seeds: int, fold_steps: str = "sample", on_line=print) -> dict:
    """Every size's figures per sample seed (a size of `rows` or more: the whole train split, once). The fold heads'
    SGD steps per `fold_steps` (_temperature)."""
    from headstart.heads.config import TrainConfig
    from headstart.heads.train import _one_thread, train_sgd
    from headstart.heads.trust import mahalanobis
    from headstart.heads.trust.calibration import fold_temperature
    from headstart.heads.trust.config import TrustConfig
    from headstart.heads.trust.streamed import sample_rows, sample_threshold

    data = generate(rows)
    train_config, config = TrainConfig(), TrustConfig()
    with _one_thread():
        head = train_sgd(data["train"], None, KNOWN, train_config).head
        state = mahalanobis.fit(*data["train"])
        known_scores = mahalanobis.score(state, data["test"][0])
        unknown_scores = mahalanobis.score(state, data["unknown"][0])
    figures: dict = {
        "train_rows": rows,
        "width": WIDTH,
        "known_classes": KNOWN,
        "unknown_classes": UNKNOWN,
        **{f"{split}_rows": count for split, count in OTHER_ROWS.items()},
        "unknown_rate": config.unknown_rate,
        "fold_steps": fold_steps,
        "auroc": _auroc(known_scores, unknown_scores),
        "val_ece_before": _ece(head, data["val"]),
        "test_ece_before": _ece(head, data["test"]),
        "sizes": {},
    }
    on_line(f"{rows} train rows: AUROC {figures['auroc']:.4f}, ECE before: val {figures['val_ece_before']:.4f}")
    labels = data["train"][1].numpy()
    for size in sizes:
        runs = []
        for seed in range(1 if size >= rows else seeds):
            started = time.perf_counter()
            chosen = torch.from_numpy(sample_rows(labels, size, seed))
            sample = (data["train"][0][chosen], data["train"][1][chosen])
            with _one_thread():
                threshold, _ = sample_threshold(sample, config, train_config.seed)
                temperature = _temperature(sample, train_config, config, rows, fold_steps)
            folded = fold_temperature(head, temperature)
            run = {
                "seed": seed,
                "sample_rows": len(chosen),
                "threshold": threshold,
                "test_flagged": float((known_scores > threshold).double().mean()),
                "unknown_flagged": float((unknown_scores > threshold).double().mean()),
                "temperature": temperature,
                "val_ece_after": _ece(folded, data["val"]),
                "test_ece_after": _ece(folded, data["test"]),
                "seconds": time.perf_counter() - started,
            }
            runs.append(run)
            on_line(
                f"sample {len(chosen):>7} seed {seed}: flags test {run['test_flagged']:.4f} "
                f"unknown {run['unknown_flagged']:.4f}, T {temperature:.4f}, ECE after val "
                f"{run['val_ece_after']:.4f} test {run['test_ece_after']:.4f} ({run['seconds']:.0f} s)"
            )
        figures["sizes"]["whole" if size >= rows else str(size)] = runs
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trust_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=262_144, help="train rows generated")
    parser.add_argument(
        "--sizes",
        default="16384,32768,65536,131072,262144",
        help="sample sizes, comma-separated (--rows: the whole split)",
    )
    parser.add_argument("--seeds", type=int, default=2, help="sample seeds per size")
    parser.add_argument(
        "--fold-steps",
        choices=("sample", "batches", "epochs"),
        default="sample",
        help="the fold heads' SGD steps: the sample's own (what train-head does), or the saved head's, as its "
        "batches an epoch (smaller ones) or the sample's batches in proportionally more epochs",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trust_sample.json")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    measure_and_save("trust-sample-", args.out, lambda work: measure(args.rows, sizes, args.seeds, args.fold_steps))
    print(f"written to {args.out}", flush=True)


if __name__ == "__main__":
    main()
