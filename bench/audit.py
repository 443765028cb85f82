"""The audit measured on data with known answers: planted label faults and copies, the near-duplicate threshold,
and the duplicate search on 100,000 rows.

    python -m bench.audit [--seeds 5] [--rows 100000] [--out bench/results/audit.json]

1. Planted faults (tests/planted.py, the tests' sizes): per seed, recall of the moved images among the first k
   and 2k rows of label_issues.csv (k = images moved), copies found as train/val pairs, false near pairs,
   audit time; and cleanlab's find_label_issues on the same out-of-fold probabilities, when it is installed.
2. Threshold: cosine similarity of re-encoded copies against their original, and of every pair of distinct
   images, on the hymenoptera photos (copies at 1/2 and 3/4 size as JPEG q70, PNG, a 5% crop) and on generated
   images (copies at 4/3 and 3/4 size), in centred and in whitened spaces (16-128 dims): copy recall at one
   false pair per 10,000, and for the default space copy recall and false pairs at fixed thresholds.
3. Scale: find_duplicates on N random 512-d rows (non-negative, as after a ReLU) with planted near copies, in a
   fresh process: seconds and peak resident memory above the loaded rows.
Features come from a seeded random-weights ResNet18 (no pretrained weights offline): the thresholds hold for
this backbone; re-run with --weights imagenet where the weights are available.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import measure_and_save
from headstart.features.files.cachedir import FEATURES_FILE

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
PLANTED = dict(classes=4, train_per_class=40, val_per_class=8, exact_copies=2, resized_copies=2)  # the tests' sizes


def seeded_weights(folder: Path) -> str:
    """A ResNet18 state_dict from seed 1234: the tests' weights file."""
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(1234)
    path = folder / "resnet18-seed1234.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    return str(path)


def _extract(data: Path, cache: Path, weights: str) -> None:
    from headstart.features import ExtractConfig, extract_features

    extract_features(ExtractConfig(data=data, cache=cache, weights=weights))


def planted_run(seed: int, weights: str, work: Path) -> dict:
    """One planted dataset: extract, audit, and how much of what was planted the audit found."""
    import csv

    from headstart.heads.audit import AuditConfig, audit_cache
    from tests.planted import make_planted_dataset

    planted = make_planted_dataset(work / f"planted-{seed}", seed=seed, **PLANTED)
    cache = work / f"cache-{seed}"
    _extract(planted.root, cache, weights)
    result = audit_cache(AuditConfig(cache=cache))
    with open(cache / "audit" / "label_issues.csv", newline="", encoding="utf-8") as handle:
        ranked = [row["path"] for row in csv.DictReader(handle)]
    with open(cache / "audit" / "duplicates.csv", newline="", encoding="utf-8") as handle:
        pairs = list(csv.DictReader(handle))
    found = {(row["path_a"], row["path_b"]) for row in pairs if row["split_a"] == "train" and row["split_b"] == "val"}
    copies = set(planted.copies.items())
    k = len(planted.moved)
    record = {
        "seed": seed,
        "moved": k,
        "flagged": len(ranked),
        "recall_at_k": len(set(ranked[:k]) & set(planted.moved)) / k,
        "recall_at_2k": len(set(ranked[: 2 * k]) & set(planted.moved)) / k,
        "recall_flagged": len(set(ranked) & set(planted.moved)) / k,
        "copies": len(copies),
        "copies_found": len(copies & found),
        "other_pairs": len(pairs) - len(copies & found),
        "audit_seconds": round(result.seconds, 2),
        "still_improving": result.record["learning_curve"]["still_improving"],
    }
    record |= _cleanlab_agreement(cache, planted)
    return record


def _cleanlab_agreement(cache: Path, planted) -> dict:
    """cleanlab's confident-learning filter on our out-of-fold probabilities: same flags, same recall?"""
    try:
        started = time.perf_counter()
        from cleanlab.filter import find_label_issues as cleanlab_find

        import_seconds = time.perf_counter() - started
    except ImportError:
        return {"cleanlab": "not installed"}
    from headstart.heads.audit.config import AuditConfig
    from headstart.heads.audit.label_issues import class_thresholds, find_label_issues
    from headstart.heads.audit.probabilities import out_of_fold_probabilities
    from headstart.heads.audit.rows import load_rows

    rows = load_rows(cache / FEATURES_FILE)
    train = rows.where("train")
    config = AuditConfig()
    probabilities = out_of_fold_probabilities(
        rows.features[train], rows.labels[train], len(rows.classes), config.train, config.folds
    )
    labels = rows.labels[train]
    ours = find_label_issues(probabilities, labels, class_thresholds(probabilities, labels)).rows
    theirs = cleanlab_find(
        labels, probabilities, filter_by="confident_learning", return_indices_ranked_by="self_confidence"
    )
    moved = {i for i, row in enumerate(train) if rows.paths[row] in planted.moved}
    k = len(moved)
    return {
        "cleanlab": {
            "import_seconds": round(import_seconds, 2),
            "ours_flagged": len(ours),
            "cleanlab_flagged": len(theirs),
            "common": len(set(ours) & set(theirs)),
            "cleanlab_recall_at_2k": len(set(theirs[: 2 * k]) & moved) / k,
            "ours_recall_at_2k_train_only": len(set(ours[: 2 * k]) & moved) / k,
        }
    }


def _copy_variants(root: Path) -> dict[str, str]:
    """Copies of every 4th val photo into train: kind -> copy path relative to root, for each original."""
    from PIL import Image

    made = {}
    for number, path in enumerate(sorted((root / "val").rglob("*.jpg"))[::4]):
        image = Image.open(path).convert("RGB")
        target = root / "train" / path.parent.name
        scale = 0.5 if number % 2 else 0.75
        width, height = image.size
        variants = {
            "jpeg_smaller": lambda t: image.resize((int(width * scale), int(height * scale))).save(t, quality=70),
            "png": lambda t: image.save(t),
            "crop_5pct": lambda t: image.crop(
                (width // 20, height // 20, width - width // 20, height - height // 20)
            ).save(t, quality=90),
        }
        for kind, save in variants.items():
            copy = target / f"copy-{kind}-{path.stem}.{'png' if kind == 'png' else 'jpg'}"
            save(copy)
            made[copy.relative_to(root).as_posix()] = (kind, path.relative_to(root).as_posix())
    return made


def _threshold_rows(cache: Path, copies: dict[str, tuple[str, str]]) -> dict:
    """Per space (centred; whitened to 16-128 dims): the threshold letting 1 distinct pair in 10,000 through and
    the copies found there; for the default space, copy recall and false pairs at fixed thresholds."""
    from headstart.heads.audit.rows import load_rows
    from headstart.heads.audit.space import WHITEN_DIMS, unit_rows, whiten

    rows = load_rows(cache / FEATURES_FILE)
    train = rows.features[rows.where("train")]
    index = {path: i for i, path in enumerate(rows.paths)}
    distinct = np.array([path not in copies for path in rows.paths])
    spaces = {
        "centred": unit_rows(rows.features, train.mean(axis=0)),
        **{f"whitened_{dims}": whiten(rows.features, train, dims) for dims in (16, 32, 64, 128)},
    }
    measured = {"images": len(rows), "distinct_pairs": int(distinct.sum() * (distinct.sum() - 1) // 2)}
    for name, unit in spaces.items():
        similarity = unit[distinct] @ unit[distinct].T
        upper = similarity[np.triu_indices(int(distinct.sum()), 1)]
        kinds: dict[str, list[float]] = {}
        for copy, (kind, original) in copies.items():
            kinds.setdefault(kind, []).append(float(unit[index[copy]] @ unit[index[original]]))
        at_one = float(np.quantile(upper, 1 - 1e-4))
        measured[name] = {
            "threshold_1_per_10k": round(at_one, 4),
            **{f"recall_{kind}": round(float(np.mean(np.array(v) > at_one)), 3) for kind, v in kinds.items()},
        }
        if name == f"whitened_{WHITEN_DIMS}":
            measured["by_threshold"] = {
                str(t): {
                    "false_pairs_per_10k": round(float((upper >= t).mean() * 1e4), 2),
                    **{f"recall_{kind}": round(float(np.mean(np.array(v) >= t)), 3) for kind, v in kinds.items()},
                }
                for t in THRESHOLDS
            }
    return measured


def threshold_measurement(weights: str, work: Path) -> dict:
    """Copy and distinct-pair similarities on real photos and on generated images."""
    from PIL import Image

    from tests.planted import make_planted_dataset

    photos = work / "hymenoptera"
    shutil.copytree(REAL_DATA, photos)
    photo_copies = _copy_variants(photos)
    _extract(photos, work / "cache-photos", weights)
    generated = make_planted_dataset(
        work / "generated",
        classes=4,
        train_per_class=30,
        val_per_class=12,
        moved_fraction=0,
        exact_copies=0,
        resized_copies=0,
        seed=100,
    )
    generated_copies = {}
    for number, path in enumerate(sorted((generated.root / "val").rglob("*.jpg"))):
        image = Image.open(path)
        kind, scale = ("jpeg_4/3", 4 / 3) if number % 2 else ("jpeg_3/4", 3 / 4)
        copy = generated.root / "train" / path.parent.name / f"copy-{number}.jpg"
        image.resize((round(image.width * scale), round(image.height * scale))).save(copy, quality=85)
        original = path.relative_to(generated.root).as_posix()
        generated_copies[copy.relative_to(generated.root).as_posix()] = (kind, original)
    _extract(generated.root, work / "cache-generated", weights)
    return {
        "hymenoptera": _threshold_rows(work / "cache-photos", photo_copies),
        "generated": _threshold_rows(work / "cache-generated", generated_copies),
    }


def scale_measurement(rows: int) -> dict:
    """find_duplicates on `rows` random rows in a fresh process (its peak memory is this step's alone)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.audit_scale", str(rows)], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output)


def run(seeds: int = 5, rows: int = 100_000, out: Path = ROOT / "bench" / "results" / "audit.json") -> dict:
    """Every measurement above, as one dict (also written to `out`)."""
    return measure_and_save("headstart-bench-audit-", out, lambda work: _measure(work, seeds, rows))


def _measure(work: Path, seeds: int, rows: int) -> dict:
    weights = seeded_weights(work)
    planted = [planted_run(seed, weights, work) for seed in range(seeds)]
    return {
        "planted": planted,
        "planted_min": {key: min(run[key] for run in planted) for key in ("recall_at_k", "recall_at_2k")},
        "planted_mean": {
            key: round(float(np.mean([run[key] for run in planted])), 3)
            for key in ("recall_at_k", "recall_at_2k", "audit_seconds")
        },
        "threshold": threshold_measurement(weights, work),
        "scale": scale_measurement(rows),
    }


def main(argv: list[str] | None = None) -> None:
    """The command line: run() and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="planted datasets (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the scale run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit.json")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.seeds, args.rows, args.out), indent=2))


if __name__ == "__main__":
    main()
