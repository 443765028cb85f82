"""heads/sweep/grid.py: the default grid, TOML and JSON files expanded to settings, every bad value one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headstart.heads.config import TrainConfig
from headstart.heads.sweep.grid import default_grid, read_grid

TOML = """
format_version = 1
[sgd]
lr = [0.001, 0.01]
epochs = 5
momentum = [0, 0.9]
class_weight = ["none", "balanced"]
[logreg]
c = [0.1, 1]
"""


def test_default_grid_has_about_a_hundred_distinct_settings_of_every_kind():
    grid = default_grid(seed=3)
    assert 90 <= len(grid) <= 110 and len(set(grid)) == len(grid)
    assert {setting.head for setting in grid} == {"sgd", "logreg"}
    assert {setting.class_weight for setting in grid} == {"none", "balanced"}
    assert all(setting.seed == 3 for setting in grid)
    assert TrainConfig(seed=3) in grid  # the tutorial's recipe is one of them
    for key in ("lr", "epochs", "momentum", "weight_decay", "batch_size"):
        assert len({getattr(s, key) for s in grid if s.head == "sgd"}) > 1, key
    assert len({s.c for s in grid if s.head == "logreg"}) > 1


def test_toml_and_json_give_the_same_settings(tmp_path: Path):
    toml_file = tmp_path / "grid.toml"
    toml_file.write_text(TOML)
    json_file = tmp_path / "grid.json"
    json_file.write_text(
        json.dumps(
            {
                "sgd": {"lr": [0.001, 0.01], "epochs": 5, "momentum": [0, 0.9], "class_weight": ["none", "balanced"]},
                "logreg": {"c": [0.1, 1]},
            }
        )
    )
    settings = read_grid(toml_file)
    assert settings == read_grid(json_file)
    assert len(settings) == 2 * 2 * 2 + 2
    assert TrainConfig(lr=0.01, momentum=0.9, class_weight="balanced") in settings  # the rest: defaults
    assert TrainConfig(head="logreg", c=0.1) in settings


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[sgd]\nlr = [0.001, -1]", "sgd.lr = -1 is not a number > 0"),
        ("[sgd]\nlr = 'fast'", "sgd.lr = 'fast' is not a number > 0"),
        ("[sgd]\nepochs = 2.5", "sgd.epochs = 2.5 is not an integer from 1 to"),
        ("[sgd]\nbatch_size = 0", "sgd.batch_size = 0 is not an integer from 1 to"),
        ("[sgd]\nmomentum = 1.5", "sgd.momentum = 1.5 is not a number from 0 to 1"),
        ("[sgd]\nweight_decay = true", "sgd.weight_decay = True is not a number >= 0"),
        ("[sgd]\nclass_weight = 'auto'", 'sgd.class_weight = \'auto\' is not "none" or "balanced"'),
        ("[sgd]\nlr = []", "sgd.lr is an empty list"),
        ("[sgd]\nlearning_rate = 0.1", "sgd.learning_rate is not a setting"),
        ("[logreg]\nlr = 0.1", "logreg.lr is not a setting; logreg takes c, class_weight"),
        ("[logreg]\nc = nan", "logreg.c = nan is not a number > 0"),
        ("[mlp]\nlr = 0.1", "unknown section 'mlp'"),
        ("format_version = 2\n[sgd]", "format_version 2 is not 1"),
        ("", "no settings"),
        ("[sgd\nlr = 1", "is not valid TOML"),
    ],
)
def test_a_bad_grid_file_is_one_error_naming_the_file_and_the_key(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        read_grid(path)
    message = str(caught.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_unreadable_or_unknown_kinds_of_file_are_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="cannot read the grid file .*missing.toml"):
        read_grid(tmp_path / "missing.toml")
    (tmp_path / "grid.yaml").write_text("sgd: {}")
    with pytest.raises(ValueError, match=r"grid.yaml: a grid file is .toml or .json"):
        read_grid(tmp_path / "grid.yaml")
    (tmp_path / "grid.json").write_text("{not json")
    with pytest.raises(ValueError, match="grid.json is not valid JSON"):
        read_grid(tmp_path / "grid.json")


def test_a_fifo_grid_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "grid.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="grid.json"):
        read_grid(fifo)


def test_duplicate_keys_and_deep_nesting_are_one_line(tmp_path):
    duplicate = tmp_path / "dup.json"
    duplicate.write_text('{"lr": [0.1], "lr": [0.2]}')
    with pytest.raises(ValueError, match="key 'lr' is given more than once"):
        read_grid(duplicate)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_grid(deep)


def test_a_grid_of_1e20_settings_is_counted_not_expanded(tmp_path):
    values = list(range(1, 10_001))
    grid = {"sgd": {key: values for key in ("lr", "epochs", "weight_decay", "batch_size")}}
    grid["sgd"]["momentum"] = [value / 10_000 for value in values]
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(grid))
    with pytest.raises(ValueError) as caught:
        read_grid(path)
    message = str(caught.value)
    assert f"{path} declares 100,000,000,000,000,000,000 settings, more than the 10,000" in message
    assert "\n" not in message


def test_values_too_large_to_train_with_are_refused(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text("[sgd]\nepochs = 100000000000000000000")
    with pytest.raises(ValueError, match=r"sgd.epochs = 100000000000000000000 is not an integer from 1 to 1000000"):
        read_grid(path)
