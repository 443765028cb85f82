"""The grid of head settings a sweep cross-validates: the default one, or a TOML / JSON file, every value checked.

Grid file, format 1 (TOML shown; JSON is the same structure as one object):

    format_version = 1          # optional; another number is refused
    [sgd]                       # the tutorial's SGD head (heads.train.train_sgd)
    lr = [0.001, 0.01]          # > 0
    epochs = [5, 20]            # integer >= 1
    momentum = [0.0, 0.9]       # 0 <= m <= 1
    weight_decay = [0, 1e-3]    # >= 0
    batch_size = [32]           # integer >= 1
    class_weight = ["none", "balanced"]
    [logreg]                    # scikit-learn's LogisticRegression (heads.logreg)
    c = [0.1, 1.0]              # > 0 (scikit-learn's C)
    class_weight = ["none"]

Each section is the cartesian product of its lists (a single value is a list of one; a key left out takes
TrainConfig's default); at least one section; settings repeated across the product are kept once. The seed
is the sweep's own (--seed), the same for every setting and fold. The settings are counted before the product
is expanded: a grid of more than MAX_SETTINGS is refused with its count. Epochs and batch sizes have upper
bounds (MAX_EPOCHS, MAX_BATCH_SIZE) so that no value is too large to train with.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tomllib
from pathlib import Path

from headstart.features.files.regular import open_regular
from headstart.heads.config import CLASS_WEIGHTS, TrainConfig

GRID_FORMAT_VERSION = 1
MAX_SETTINGS = 10_000  # the default grid is 99; each setting is trained once per fold
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 2**31 - 1  # a batch larger than the train split is the whole split


def _number(low: float, low_open: bool, high: float | None = None, integer: bool = False):
    """A checker: the value as int/float when it is a number in range, else None."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            return None
        if (
            not math.isfinite(value)
            or value < low
            or (low_open and value == low)
            or (high is not None and value > high)
        ):
            return None
        return int(value) if integer else float(value)

    return check


def _choice(value):
    return value if value in CLASS_WEIGHTS else None


_KEYS = {  # key -> (checker, what a valid value is)
    "lr": (_number(0, True), "a number > 0"),
    "epochs": (_number(1, False, MAX_EPOCHS, integer=True), f"an integer from 1 to {MAX_EPOCHS}"),
    "momentum": (_number(0, False, 1), "a number from 0 to 1"),
    "weight_decay": (_number(0, False), "a number >= 0"),
    "batch_size": (_number(1, False, MAX_BATCH_SIZE, integer=True), f"an integer from 1 to {MAX_BATCH_SIZE}"),
    "class_weight": (_choice, " or ".join(f'"{kind}"' for kind in CLASS_WEIGHTS)),
    "c": (_number(0, True), "a number > 0"),
}
SECTIONS = {
    "sgd": ("lr", "epochs", "momentum", "weight_decay", "batch_size", "class_weight"),
    "logreg": ("c", "class_weight"),
}

DEFAULT_GRID = {
    "sgd": {
        "lr": [0.001, 0.003, 0.01],
        "epochs": [5, 20],
        "momentum": [0.0, 0.9],
        "weight_decay": [0.0, 0.001],
        "batch_size": [16, 32],
        "class_weight": ["none", "balanced"],
    },
    # lbfgs takes 10-100x an SGD head's time here (more as C grows: 195 rows in 512 dimensions are separable).
    "logreg": {"c": [0.01, 0.1, 1.0]},
}


def _section_values(head: str, section: object, source: str) -> dict[str, list]:
    """One section's keys and their checked values (each a list), before any product is taken."""
    if not isinstance(section, dict):
        raise ValueError(f"{source}: {head} must be a table of keys ({', '.join(SECTIONS[head])})")
    values = {}
    for key, given in section.items():
        if key not in SECTIONS[head]:
            raise ValueError(f"{source}: {head}.{key} is not a setting; {head} takes {', '.join(SECTIONS[head])}")
        given = given if isinstance(given, list) else [given]
        if not given:
            raise ValueError(f"{source}: {head}.{key} is an empty list")
        check, wanted = _KEYS[key]
        for value in given:
            if check(value) is None:
                raise ValueError(f"{source}: {head}.{key} = {value!r} is not {wanted}")
        values[key] = [check(value) for value in given]
    return values


def count_settings(sections: dict[str, dict[str, list]]) -> int:
    """How many settings the sections' products hold (repeats counted), computed without expanding them."""
    return sum(math.prod(len(values) for values in section.values()) for section in sections.values())


def expand_grid(grid: dict, seed: int = 0, source: str = "the grid") -> list[TrainConfig]:
    """Every setting of a grid (a dict as the file holds it); a ValueError naming `source` and the key otherwise."""
    if not isinstance(grid, dict):
        raise ValueError(f"{source}: expected a table of sections ({', '.join(SECTIONS)})")
    grid = dict(grid)
    version = grid.pop("format_version", GRID_FORMAT_VERSION)
    if version != GRID_FORMAT_VERSION:
        raise ValueError(
            f"{source}: format_version {version!r} is not {GRID_FORMAT_VERSION}, the one this headstart reads"
        )
    unknown = sorted(set(grid) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{source}: unknown section {unknown[0]!r}; sections are {', '.join(SECTIONS)}")
    if not grid:
        raise ValueError(f"{source}: no settings; give a [sgd] or [logreg] section")
    sections = {head: _section_values(head, section, source) for head, section in grid.items()}
    count = count_settings(sections)
    if count > MAX_SETTINGS:
        raise ValueError(
            f"{source} declares {count:,} settings, more than the {MAX_SETTINGS:,} a sweep takes: "
            "give fewer values per key"
        )
    settings: list[TrainConfig] = []
    for head, values in sections.items():
        for combination in itertools.product(*values.values()):
            settings.append(TrainConfig(head=head, seed=seed, **dict(zip(values, combination))))
    return list(dict.fromkeys(settings))  # frozen dataclasses hash by value: repeats are kept once, in order


def _unique_keys(path: Path, pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"{path}: key {repeated[0]!r} is given more than once: keep one")
    return dict(pairs)


def read_grid(path: str | Path, seed: int = 0) -> list[TrainConfig]:
    """The settings of a .toml or .json grid file; any problem is one ValueError naming the file (and the key)."""
    path = Path(path)
    try:
        with os.fdopen(open_regular(path), "rb") as handle:  # a FIFO or device is refused, never waited on
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the grid file {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        if path.suffix.lower() == ".toml":
            grid = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            grid = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(path, pairs))
        else:
            raise ValueError(f"{path}: a grid file is .toml or .json, not {path.suffix or 'a file without suffix'!r}")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid {path.suffix[1:].upper()}: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a grid: a grid is one table of lists") from None
    return expand_grid(grid, seed, str(path))


def default_grid(seed: int = 0) -> list[TrainConfig]:
    """96 SGD settings around the tutorial's recipe and 3 logreg ones."""
    return expand_grid(DEFAULT_GRID, seed, "the default grid")


def describe_setting(setting: TrainConfig) -> str:
    """The head and the settings a grid gives it, e.g. "sgd lr=0.001 epochs=5 ... class_weight=none"."""
    return " ".join(
        [
            setting.head,
            *[
                f"{key}={getattr(setting, key):g}" if key != "class_weight" else f"{key}={setting.class_weight}"
                for key in SECTIONS[setting.head]
            ],
        ]
    )
