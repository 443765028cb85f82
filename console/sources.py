"""extract's options for the data's shape: how a folder of class folders without train/ is split, and whether an
image may carry several labels."""

from __future__ import annotations

import click

from headstart.features.config import ExtractConfig


def split_options(command):
    """--val-fraction, --test-fraction, --split-seed: the content split of a folder without train/; --multi-label.
    Passed on by their ExtractConfig names."""
    for option in reversed(
        (
            click.option(
                "--val-fraction",
                type=click.FloatRange(0, 1, max_open=True),
                default=None,
                help="A folder without train/: the share of each class drawn into val, by content  [default: 0.2]",
            ),
            click.option(
                "--test-fraction",
                type=click.FloatRange(0, 1, max_open=True),
                default=None,
                help="A folder without train/: the share of each class drawn into test, reported apart and never "
                "used to choose  [default: 0]",
            ),
            click.option(
                "--split-seed",
                type=int,
                default=ExtractConfig().split_seed,
                show_default=True,
                help="A folder without train/: the seed of the content split; the same seed keeps every image in "
                "its split.",
            ),
            click.option(
                "--multi-label",
                is_flag=True,
                help="Images may carry several labels: the same file content in several class folders is one image "
                "with each of their labels; train-head then trains one sigmoid per label.",
            ),
        )
    ):
        command = option(command)
    return command
