"""torch.compile for large folders: one graph for one batch shape, so a short last batch does not recompile.

torch keeps the compiled kernels in its on-disk caches (the FX graph and AOT caches, under
/tmp/torchinductor_$USER or $TORCHINDUCTOR_CACHE_DIR), so a second run compiles in seconds, not tens of seconds.
"""

from __future__ import annotations

import torch
from torch import nn


def first_line(message: str, limit: int = 200) -> str:
    """The first non-empty line of a long message (compiler errors run to pages), cut to limit characters."""
    line = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class CompiledForward:
    """model compiled on its first call; later, shorter batches are padded to that batch's size (rows are
    independent in an eval-mode network) and the padding's rows dropped."""

    def __init__(self, model: nn.Module):
        self._compiled = torch.compile(model, dynamic=False)
        self._rows: int | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        rows = len(batch)
        self._rows = self._rows or rows
        if rows < self._rows:
            padding = batch.new_zeros((self._rows - rows, *batch.shape[1:]))
            batch = torch.cat([batch, padding]).contiguous(memory_format=torch.channels_last)
        return self._compiled(batch)[:rows]
