"""The npy writer: the array streamed chunk by chunk after its header, the table and record beside it
(features/vectors/formats.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from headstart.features.vectors.formats import MULTI_LABEL_VERSION, Chunk, SidecarTable, write_record


def write_npy(
    paths: tuple[str | os.PathLike, str | os.PathLike, str | os.PathLike],
    chunks: Iterable[Chunk],
    shape: tuple[int, int],
    record: dict,
    on_chunk: Callable[[int], None],
) -> None:
    """Write OUT.npy, OUT.csv and OUT.json into the given (temporary) paths; the caller renames them together."""
    array_path, table_path, record_path = paths
    table = SidecarTable(table_path, multi_label=record["format_version"] == MULTI_LABEL_VERSION)
    written = 0
    try:
        with open(array_path, "wb") as handle:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_2_0(handle, header)
            for chunk in chunks:
                handle.write(np.ascontiguousarray(chunk.features, dtype="<f4").tobytes())
                table.write(chunk)
                written += len(chunk.paths)
                on_chunk(len(chunk.paths))
    finally:
        table.close()
    if written != shape[0]:  # the header promised shape[0] rows: a file that changed underneath is not written
        raise ValueError(f"{written} rows read where the features file counted {shape[0]}: run again")
    write_record(record_path, record)
