"""Measure unknown-image detection and calibration on data whose unknowns are known by construction.

    python -m bench.trust [--data DIR] [--weights none] [--out bench/results/trust.json]

Two experiments, each scored with every unknown-image method (so the default is chosen by these figures):
- generated: five classes of generated images (a colour and a texture each, varied per image); each class
  in turn is held out of training, and its images are the unknowns.
- hymenoptera: the ants/bees head; generated images of all five kinds are the unknowns.
For each: AUROC of ood_score (in-distribution val against the unknowns), the flag rates of val and of the
unknowns at the threshold (--unknown-rate 0.05), and val's ECE before and after the temperature.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench import measure_and_save

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
SIZE = (96, 72)
KINDS = ("red_fields", "green_stripes", "blue_checks", "gray_rings", "yellow_dots")


def _kind_pixels(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One image of a kind: its own colour and texture, with a random scale, phase, shade and noise."""
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    period = rng.uniform(6, 16)
    shade = rng.uniform(0.7, 1.0)
    if kind == "red_fields":
        coarse = rng.uniform(0, 1, (4, 5))
        field = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(SIZE, Image.BILINEAR)) / 255
        pattern, colour = 0.4 + 0.6 * field, (1.0, 0.25, 0.2)
    elif kind == "green_stripes":
        angle = rng.uniform(0, np.pi)
        pattern = 0.5 + 0.5 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
        colour = (0.2, 0.9, 0.3)
    elif kind == "blue_checks":
        offset = rng.uniform(0, period, 2)
        pattern = ((((x + offset[0]) // period) + ((y + offset[1]) // period)) % 2) * 0.8 + 0.2
        colour = (0.2, 0.35, 1.0)
    elif kind == "gray_rings":
        centre = rng.uniform(0, 1, 2) * (width, height)
        pattern = 0.5 + 0.5 * np.sin(np.hypot(x - centre[0], y - centre[1]) * 2 * np.pi / period)
        colour = (0.8, 0.8, 0.8)
    else:  # yellow_dots
        pattern = np.full((height, width), 0.25)
        for cx, cy in rng.uniform(0, 1, (int(rng.integers(8, 20)), 2)) * (width, height):
            pattern[np.hypot(x - cx, y - cy) < period / 3] = 1.0
        colour = (1.0, 0.85, 0.1)
    pixels = pattern[..., None] * np.asarray(colour) * shade * 255 + rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate_kind(folder: Path, kind: str, count: int, seed: int) -> Path:
    """count JPEGs of one kind in folder (created), reproducible from seed."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(_kind_pixels(kind, rng)).save(folder / f"{kind}_{index:04d}.jpg", quality=90)
    return folder


def generate_classes(root: Path, kinds: tuple[str, ...], per_split: dict[str, int], seed: int = 0) -> Path:
    """root/<split>/<kind>/*.jpg, an ImageFolder dataset of generated kinds."""
    for offset, (split, count) in enumerate(per_split.items()):
        for kind in kinds:
            generate_kind(root / split / kind, kind, count, seed + offset)
    return root


def _split_tensors(data: Path, cache: Path, weights: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Extract a dataset and return {split: (features, labels)}."""
    from headstart.features import ExtractConfig, FeatureStore, extract_features
    from headstart.features.files.cachedir import FEATURES_FILE

    extract_features(ExtractConfig(data=data, cache=cache, weights=weights))
    with FeatureStore(cache / FEATURES_FILE) as store:
        rows = {split: store.read(split) for split in store.splits}
    return {split: (torch.from_numpy(r.features), torch.from_numpy(r.labels)) for split, r in rows.items()}


def _auroc(in_distribution: torch.Tensor, unknown: torch.Tensor) -> float:
    """P(an unknown image scores above an in-distribution one), ties counted half (Mann-Whitney U)."""
    a, b = in_distribution.double()[:, None], unknown.double()[None, :]
    return float(((b > a).double() + 0.5 * (b == a).double()).mean())


def _recipes() -> dict:
    from headstart.heads.config import TrainConfig

    return {
        "sgd, 5 epochs (default)": TrainConfig(),
        "sgd, 50 epochs": TrainConfig(epochs=50),
        "logreg": TrainConfig(head="logreg"),
    }


def score_case(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    unknown: torch.Tensor,
    rate: float,
    seed: int = 0,
) -> dict:
    """Every method's AUROC and flag rates, the head's own confidence as a baseline, and ECE per recipe."""
    from headstart.heads.logreg import train_logreg
    from headstart.heads.train import train_sgd
    from headstart.heads.trust import METHODS, fit_trust, fit_unknown

    figures: dict = {
        "train_rows": len(train[1]),
        "val_rows": len(val[1]),
        "unknown_rows": len(unknown),
        "methods": {},
        "calibration": {},
    }
    for method in METHODS:
        model = fit_unknown(*train, method=method, rate=rate, seed=seed)
        val_scores, unknown_scores = model.score(val[0]), model.score(unknown)
        figures["methods"][method] = {
            "auroc": _auroc(val_scores, unknown_scores),
            "val_flagged": float((val_scores > model.threshold).double().mean()),
            "unknown_flagged": float((unknown_scores > model.threshold).double().mean()),
        }
    for name, config in _recipes().items():
        fit = train_logreg if config.head == "logreg" else train_sgd
        head = fit(train, None, int(train[1].max()) + 1, config).head
        calibration = fit_trust(head, train, val, config).calibration
        with torch.inference_mode():
            confidence = [torch.softmax(calibration.head(x), 1).max(1).values for x in (val[0], unknown)]
        figures["calibration"][name] = {
            "temperature": calibration.temperature,
            "val_ece_before": calibration.val_ece_before,
            "val_ece_after": calibration.val_ece_after,
            # The baseline a head offers alone: low confidence as the unknown score.
            "auroc_of_1_minus_confidence": _auroc(-confidence[0], -confidence[1]),
        }
    return figures


def _without_class(split: tuple[torch.Tensor, torch.Tensor], held: int) -> tuple[torch.Tensor, torch.Tensor]:
    features, labels = split
    keep = labels != held
    return features[keep], labels[keep] - (labels[keep] > held).long()


def run(
    data: Path = REAL_DATA,
    weights: str = "none",
    work: Path | None = None,
    rate: float = 0.05,
    per_kind: dict[str, int] | None = None,
    on_line=print,
) -> dict:
    """Both experiments; returns the figures (and reports each line through on_line)."""
    per_kind = per_kind or {"train": 40, "val": 20}
    work = work or Path(tempfile.mkdtemp(prefix="headstart-trust-"))
    figures: dict = {"weights": weights, "unknown_rate": rate, "generated": {}, "hymenoptera": {}}
    generated = _split_tensors(generate_classes(work / "generated", KINDS, per_kind), work / "cache-gen", weights)
    for held, kind in enumerate(KINDS):
        unknown = torch.cat([generated[split][0][generated[split][1] == held] for split in generated])
        case = score_case(
            _without_class(generated["train"], held), _without_class(generated["val"], held), unknown, rate
        )
        figures["generated"][f"held out {kind}"] = case
        on_line(f"generated, held out {kind}: " + _summary(case))
    real = _split_tensors(data, work / "cache-real", weights)
    others = _split_tensors(
        generate_classes(work / "others", KINDS, {"train": 20}, seed=7), work / "cache-others", weights
    )
    figures["hymenoptera"] = score_case(real["train"], real["val"], others["train"][0], rate)
    on_line("hymenoptera vs generated: " + _summary(figures["hymenoptera"]))
    figures["generated_mean"] = _mean_case(list(figures["generated"].values()))
    on_line("generated, mean over the held-out classes: " + _summary(figures["generated_mean"]))
    return figures


def _mean_case(cases: list[dict]) -> dict:
    """The figures of several cases averaged, entry by entry."""
    if isinstance(cases[0], dict):
        return {key: _mean_case([case[key] for case in cases]) for key in cases[0]}
    return float(np.mean(cases))


def _summary(case: dict) -> str:
    methods = ", ".join(
        f"{name} AUROC {m['auroc']:.3f} flags val {m['val_flagged']:.3f} unknown {m['unknown_flagged']:.3f}"
        for name, m in case["methods"].items()
    )
    calibration = "; ".join(
        f"{name}: T {c['temperature']:.2f} ECE {c['val_ece_before']:.3f} -> "
        f"{c['val_ece_after']:.3f}, 1-confidence AUROC {c['auroc_of_1_minus_confidence']:.3f}"
        for name, c in case["calibration"].items()
    )
    return f"{methods} | {calibration}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trust", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="ImageFolder dataset (default: %(default)s)")
    parser.add_argument("--weights", default="none", help="imagenet, none or a ResNet18 state_dict file")
    parser.add_argument("--unknown-rate", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trust.json")
    args = parser.parse_args(argv)
    measure_and_save("headstart-trust-", args.out, lambda work: run(args.data, args.weights, work, args.unknown_rate))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
