"""Plot loss and accuracy per epoch, train vs val, as the tutorial notebook did."""

from __future__ import annotations

import os

from features.atomic import atomic_write


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display): what every plot of headstart draws with."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_curves(history: list[dict], path: str | os.PathLike) -> None:
    """Write a PNG with two panels (loss, accuracy) over epochs; written whole or not at all."""
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
    # Fixed margins and light PNG compression: tight_layout and zlib's default level were most of train-head's time.
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)
    try:
        with atomic_write(path) as out:
            figure.savefig(out, format="png", pil_kwargs={"compress_level": 1})
    finally:
        plt.close(figure)
