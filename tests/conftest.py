"""Shared fixtures: images and datasets made on the spot, a ResNet18 weights file, the real dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera_data"
ROOT = Path(__file__).resolve().parents[1]


def make_image(path: Path, size=(40, 30), seed: int = 0, mode: str = "RGB", fmt: str | None = None) -> Path:
    """A small random-noise image; different seeds give different pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, format=fmt)
    return path


def make_dataset(root: Path, classes=("ants", "bees"), per_class: dict | None = None, first_seed: int = 0) -> Path:
    """root/{train,val}/<class>/*.jpg with a few noise images each. Features are keyed by content: images meant to be
    new to a cache that holds another make_dataset's need another first_seed."""
    per_class = per_class or {"train": 4, "val": 2}
    seed = first_seed
    for split, count in per_class.items():
        for name in classes:
            for index in range(count):
                seed += 1
                make_image(root / split / name / f"{name}_{index}.jpg", seed=seed)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """A ResNet18 state_dict saved the way users save one (with its fc), from a fixed seed."""
    from torchvision.models import resnet18

    torch.manual_seed(1234)
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared hymenoptera dataset: its absence fails the tests that need it, never skips them."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"the shared dataset is missing at {REAL_DATA} (tests expect ../shared beside the project)")
    return REAL_DATA


def traced_peak(call) -> int:
    """Bytes allocated at the peak of call() (numpy's and h5py's arrays included), above what was held before."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def generated_header(classes):
    """The features header of a file written as extract would write it from a random-init resnet18, for tests."""
    from headstart.features.provenance import PREPROCESSINGS, WeightsIdentity
    from headstart.features.store import FeaturesHeader

    return FeaturesHeader(
        producer="headstart test",
        created="2026-01-02T03:04:05+00:00",
        classes=list(classes),
        backbone="resnet18",
        weights=WeightsIdentity("none", "random init, seed 0", ""),
        preprocessing=PREPROCESSINGS["imagenet"],
        precision="fp32",
        data_root="/data",
        torch_version="2",
        torchvision_version="0",
    )


def write_features(cache: Path, splits: dict, classes=("ants", "bees"), skipped: dict | None = None) -> Path:
    """cache/features.h5 holding splits {name: (features, labels)}, as extract would write it, without the backbone."""
    from headstart.features.files.cachedir import FEATURES_FILE
    from headstart.features.store import Rows, StoreWriter

    header = generated_header(classes)
    cache.mkdir(parents=True, exist_ok=True)
    with StoreWriter(cache / FEATURES_FILE, header, dim=next(iter(splits.values()))[0].shape[1]) as writer:
        for split, (features, labels) in splits.items():
            count = len(labels)
            writer.begin_split(split)
            writer.append(
                Rows(
                    features.astype(np.float32),
                    labels.astype(np.int64),
                    [f"{split}/{classes[label]}/{row}.jpg" for row, label in enumerate(labels)],
                    np.ones(count, np.int64),
                    np.ones(count, np.int64),
                    ["0" * 64] * count,
                )
            )
            writer.end_split((skipped or {}).get(split, []))
        writer.commit()
    return cache / FEATURES_FILE


def separable(rows: int, seed: int = 0, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of features a linear head separates perfectly: class 1 is shifted by +4 on every dimension."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 2
    return rng.standard_normal((rows, dim)) + 4 * labels[:, None], labels
