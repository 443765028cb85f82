"""extract's options for the data's shape: the content split of a folder without train/, a label table, pools,
--multi-label; and evaluate's label table.

`source_options` adds extract's and hands the command one `sources` dict of ExtractConfig's fields;
`evaluate_table_options` hands evaluate one EvaluateTable (or None)."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from click.core import ParameterSource

from headstart.features.config import ExtractConfig
from headstart.heads.config import EvaluateTable

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
    "multi_label",
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
            "--multi-label",
            is_flag=True,
            help="Images may carry several labels: the same file content in several class folders is one image "
            "with each of their labels (a table: `a|b` in one cell, a row per label, or one 0/1 column per label "
            "when it has no label column); "
            "train-head then trains one sigmoid per label.",
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


_EVALUATE_TABLE_OPTIONS = (
    click.option(
        "--labels",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Score the images a label table names (path,label; CSV, TSV, JSON Lines or Parquet, as extract reads; "
        "a multi-label head: its label sets, in any multi-label form), its paths relative to FOLDER  "
        "[default: FOLDER's class folders]",
    ),
    click.option(
        "--path-column", default=EvaluateTable.path_column, show_default=True, help="The table's path column."
    ),
    click.option(
        "--label-column", default=EvaluateTable.label_column, show_default=True, help="The table's label column."
    ),
    click.option(
        "--strict",
        is_flag=True,
        help="A table row naming a missing or unreadable file stops evaluate (default: skipped and listed).",
    ),
)


def evaluate_table_options(command):
    """evaluate's --labels and its columns and --strict, handed to the command as one `table` (None: no --labels)."""

    @functools.wraps(command)
    def collect(*args, labels: Path | None, path_column: str, label_column: str, strict: bool, **kwargs):
        table = None
        if labels is not None:
            table = EvaluateTable(path=labels, path_column=path_column, label_column=label_column, strict=strict)
        return command(*args, table=table, **kwargs)

    for option in reversed(_EVALUATE_TABLE_OPTIONS):
        collect = option(collect)
    return collect
