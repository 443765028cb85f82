"""calibration.png: the reliability diagram of val, as trained and with the temperature folded in (a multi-label
head: every (image, label) pair pooled, as trained and with the per-label calibration folded in)."""

from __future__ import annotations

from headstart.heads.curves import png_bytes, pyplot
from headstart.heads.trust.bins import BINS, Reliability


def reliability_png(
    before: Reliability | None, after: Reliability | None, temperature: float | None, pooled: str | None = None
) -> bytes:
    """Val accuracy against mean confidence per bin, before and after, over the diagonal of perfect calibration.
    `pooled` (a multi-label head: its calibration in words, "" for none; None for a single-label head): the bins pool
    every (image, label) pair, a label's probability against whether the image carries it.

    One axes (not a panel each): a second panel doubled the drawing time, most of train-head's.
    """
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(5.5, 5), dpi=100)
    axis.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    curves = [(before, "as trained", "o-")]
    if after is not None:
        folded = f"{pooled} per label folded in" if pooled else f"temperature {temperature:.2f} folded in"
        curves.append((after, folded, "s--"))
    for bins, name, style in curves:
        if bins is not None:
            filled = [i for i, n in enumerate(bins.counts) if n]
            axis.plot(
                [bins.confidence[i] for i in filled],
                [bins.accuracy[i] for i in filled],
                style,
                label=f"{name}: {'pooled ' if pooled is not None else ''}ECE {bins.ece:.3f}",
            )
    title = "reliability on val" if before is not None else "reliability: no val split"
    axis.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel=f"mean {'label probability' if pooled is not None else 'confidence'} ({BINS} bins)",
        ylabel="val: fraction carrying the label" if pooled is not None else "val accuracy",
        title=f"{title}, every label pooled" if pooled is not None else title,
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize=8)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.93)
    return png_bytes(figure)
