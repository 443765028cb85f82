"""suggest's table (`suggestions.csv`). This docstring is its schema.

One record per suggested image, the one to label first first:

    rank        1, 2, ... up to -n
    path        the image: its path relative to the features' data_root for a pool row (as features.h5 stores it),
                or the file as found under the folders given
    sha256      the file's content hash (the features' key): what a decisions file carries to tell a stale row
    score       the strategy's score (higher: label it sooner), six decimals; 0 for the random strategy
    suggested   the class the head gives it (its top probability)
    confidence  that top probability, six decimals
    why         one sentence: why the strategy chose it

Written by the one CSV writer (features/files/csvfile.py: a path starting with = + - @ becomes ./<path>, other such
text cells get a leading apostrophe), the header first, so `csv.reader` and `pandas.read_csv` read it with their
defaults. The table's version is the format_version of features.h5 and head.pt it was ranked from; the columns
above are version 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from headstart.features.files.csvfile import CsvWriter, safe_path
from headstart.features.files.outputs import text_output

COLUMNS = ["rank", "path", "sha256", "score", "suggested", "confidence", "why"]


class SuggestError(ValueError):
    """A suggestion that cannot be made as asked; the message names the file or option and the fix."""


@dataclass(frozen=True)
class Suggestion:
    """One record of the table: an image to label next."""

    rank: int
    path: str
    sha256: str
    score: float
    suggested: str
    confidence: float
    why: str


def write_suggestions(out: str | os.PathLike, records: Iterable[Suggestion]) -> int:
    """Write the records as CSV into out ('-': stdout), whole or not at all; the count written."""
    written = 0
    with text_output(out) as handle:
        writer = CsvWriter(handle, COLUMNS)
        for record in records:
            writer.writerow(
                [
                    record.rank,
                    safe_path(record.path),
                    record.sha256,
                    f"{record.score:.6f}",
                    record.suggested,
                    f"{record.confidence:.6f}",
                    record.why,
                ]
            )
            written += 1
    return written
