"""The benchmark: `python -m bench` prints figures and ratios measured in one run, and writes them as JSON."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def measure_and_save(prefix: str, out: Path, measure: Callable[[Path], dict]) -> dict:
    """measure(scratch folder), the folder removed afterwards whatever happens; the figures written to `out` as JSON."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        figures = measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures
