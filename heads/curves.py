"""Plot loss and accuracy per epoch, train vs val, as the tutorial notebook did; PNG bytes for the caller to write."""

from __future__ import annotations

import io


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display): what every plot of headstart draws with."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def png_bytes(figure) -> bytes:
    """The figure as PNG, then closed. Light compression: zlib's default level was most of train-head's time."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    finally:
        pyplot().close(figure)
    return buffer.getvalue()


def curves_png(history: list[dict]) -> bytes:
    """Two panels (loss, accuracy) over epochs, train and val."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [entry["epoch"] for entry in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for axis, metric in zip(axes, ("loss", "acc")):
        for split, style in (("train", "o-"), ("val", "s--")):
            key = f"{split}_{metric}"
            if all(key in entry for entry in history):
                axis.plot(epochs, [entry[key] for entry in history], style, label=split)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        axis.set_title("accuracy" if metric == "acc" else "loss")
        axis.grid(alpha=0.3)
        axis.legend()
    # Fixed margins: tight_layout was most of the drawing time.
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)
    return png_bytes(figure)
