"""Parquet label tables (features/sources/tables.py's rules), read a record batch at a time through pyarrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from headstart.features.folder import text_path
from headstart.features.sources.tables import TableColumns, TableError, TableRow, cell, flagged

INSTALL_HINT = "pip install 'headstart[parquet]' (or pip install pyarrow)"
BATCH_ROWS = 65536  # rows decoded at a time: memory bounded whatever the table's length


def parquet_rows(table: Path, columns: TableColumns) -> Iterator[TableRow]:
    """The rows of a Parquet table, numbered from 1; without pyarrow, one line saying how to install it."""
    try:
        import pyarrow.parquet
    except ImportError:
        raise TableError(
            f"{text_path(table)} is a Parquet table, which needs pyarrow: {INSTALL_HINT}; or save it as CSV"
        ) from None
    try:
        file = pyarrow.parquet.ParquetFile(table)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise TableError(f"{text_path(table)} is not a readable Parquet file ({error}): save it again") from None
    return _batches(file, table, columns)


def _batches(file, table: Path, columns: TableColumns) -> Iterator[TableRow]:
    with file:
        path, label, split, flags = columns.pick_form(table, list(file.schema_arrow.names))
        wanted = [path, *([label] if label else flags)] + ([split] if split else [])
        count = 1 if label else len(flags)
        number = 0
        try:
            for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
                values = [batch.column(name).to_pylist() for name in wanted]
                splits = values[1 + count] if split else [""] * batch.num_rows
                for row, (path_value, split_value) in enumerate(zip(values[0], splits)):
                    number += 1
                    cells = [column[row] for column in values[1 : 1 + count]]
                    text = cell(cells[0]) if label else flagged(table, number, flags, cells, columns.label)
                    yield TableRow(number, cell(path_value), text, cell(split_value))
        except TableError:
            raise
        except (OSError, ValueError) as error:
            raise TableError(
                f"{text_path(table)}: the rows after row {number} cannot be read ({error}): save the file again"
            ) from None
