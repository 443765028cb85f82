"""extract's options for the data's shape: the content split of a folder without train/, a label table, pools.

`source_options` adds them all and hands the command one `sources` dict of ExtractConfig's fields."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from click.core import ParameterSource

from headstart.features.config import ExtractConfig

SOURCE_FIELDS = (
    "val_fraction",
    "test_fraction",
    "split_seed",
    "labels",
    "path_column",
    "label_column",
    "split_column",
    "strict",
    "pool",
    "exclude",
)


def _split_options() -> tuple:
    return (
        click.option(
            "--val-fraction",
            type=click.FloatRange(0, 1, max_open=True),
            default=None,
            help="A folder without train/ (or table rows without a split): the share of each class drawn into val, "
            "by content  [default: 0.2]",
        ),
        click.option(
            "--test-fraction",
            type=click.FloatRange(0, 1, max_open=True),
            default=None,
            help="A folder without train/ (or table rows without a split): the share of each class drawn into test, "
            "reported apart and never used to choose  [default: 0]",
        ),
        click.option(
            "--split-seed",
            type=int,
            default=ExtractConfig().split_seed,
            show_default=True,
            help="The seed of the content split; the same seed keeps every image in its split.",
        ),
    )


def _table_options() -> tuple:
    defaults = ExtractConfig()
    return (
        click.option(
            "--labels",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="A label table (path,label[,split]): CSV (`,` or `;`, Excel's UTF-8 too), TSV, JSON Lines or "
            "Parquet. Its paths are relative to --data, or to the table's folder when --data is not given  "
            "[default: the class folders under --data]",
        ),
        click.option("--path-column", default=defaults.path_column, show_default=True, help="The table's path column."),
        click.option(
            "--label-column", default=defaults.label_column, show_default=True, help="The table's label column."
        ),
        click.option(
            "--split-column",
            default=None,
            help="The table's split column (train, val, test; empty: split by content)  [default: split, if present]",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="A table row naming a missing or unreadable file stops extract (default: skipped and listed).",
        ),
        click.option(
            "--pool",
            type=click.Path(file_okay=False, path_type=Path),
            multiple=True,
            help="A folder of unlabeled images inside --data, cached in the `pool` split (never trained on); "
            "repeatable  [default: no pool]",
        ),
        click.option(
            "--exclude",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="A file listing images to leave out (one path relative to --data a line, or a CSV with a path "
            "column), without moving them  [default: none]",
        ),
    )


def source_options(command):
    """The split, table and pool options; the command receives them as one `sources` dict of ExtractConfig fields,
    and --data defaults to the table's folder when --labels is given without it."""

    @functools.wraps(command)
    def collect(*args, **kwargs):
        sources = {name: kwargs.pop(name) for name in SOURCE_FIELDS}
        sources["pool"] = tuple(sources["pool"])
        context = click.get_current_context()
        if sources["labels"] is not None and context.get_parameter_source("data") is ParameterSource.DEFAULT:
            kwargs["data"] = sources["labels"].parent
        return command(*args, sources=sources, **kwargs)

    for option in reversed((*_split_options(), *_table_options())):
        collect = option(collect)
    return collect
