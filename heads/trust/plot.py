"""calibration.png: the reliability diagram of val, as trained and with the temperature folded in."""

from __future__ import annotations

import os

from features.atomic import atomic_write

from .calibration import BINS, Reliability


def plot_reliability(before: Reliability | None, after: Reliability | None, temperature: float | None,
                     path: str | os.PathLike) -> None:
    """Accuracy against confidence per bin (bars) over the diagonal of perfect calibration; whole or not at all."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = [(before, "as trained")] + ([(after, f"temperature {temperature:.2f} folded in")] if after else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), dpi=100, squeeze=False)
    width = 1 / BINS
    for axis, (bins, title) in zip(axes[0], panels):
        axis.plot([0, 1], [0, 1], "k:", label="perfect calibration")
        if bins is None:
            axis.text(0.5, 0.5, "no val split", ha="center")
        else:
            filled = [i for i, n in enumerate(bins.counts) if n]
            axis.bar([(i + 0.5) * width for i in filled], [bins.accuracy[i] for i in filled], width=width * 0.9,
                     alpha=0.7, label="val accuracy")
            axis.plot([bins.confidence[i] for i in filled], [bins.accuracy[i] for i in filled], "o", ms=3,
                      color="C1", label="mean confidence of the bin")
            title += f": ECE {bins.ece:.3f}"
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9, wspace=0.25)
    try:
        with atomic_write(path) as out:
            figure.savefig(out, format="png", pil_kwargs={"compress_level": 1})
    finally:
        plt.close(figure)
