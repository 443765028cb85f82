"""The SGD recipe a multi-label head trains by when the user leaves --epochs and --lr alone.

train-head's defaults (TrainConfig: 5 epochs at lr 0.001) are tuned for a softmax over 512-d features; a head of
independent sigmoids trained by them is far from converged. bench/multilabel_recipe.py measured a grid of epochs x lr
against one logistic regression per label (docs/multi-label.md); EPOCHS and LR are its choice. Only the options the
user did not set are replaced: `--epochs 5` given on the command line trains 5 epochs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from headstart.heads.config import TrainConfig

EPOCHS = 30
LR = 0.1
RECIPE_OPTIONS = ("epochs", "lr")  # the options this recipe sets when the user left them at their defaults


def multilabel_config(config: TrainConfig, unset: Collection[str]) -> tuple[TrainConfig, str]:
    """The config a multi-label head trains by, and a line naming the recipe: EPOCHS and LR for those of epochs and
    lr that are in `unset` (the options the user left at their defaults)."""
    chosen = [key for key in RECIPE_OPTIONS if key in unset]
    config = replace(
        config, epochs=EPOCHS if "epochs" in chosen else config.epochs, lr=LR if "lr" in chosen else config.lr
    )
    if len(chosen) == len(RECIPE_OPTIONS):
        return config, f"the multi-label default recipe ({config.epochs} epochs, lr {config.lr})"
    if chosen:
        return config, f"{config.epochs} epochs, lr {config.lr} (the multi-label default for {', '.join(chosen)})"
    return config, f"{config.epochs} epochs, lr {config.lr} as given"


def planned_epochs(cache: Path, config: TrainConfig, unset: Collection[str], backbone: str | None = None) -> int:
    """The epochs train-head will run on the cache's features: the recipe's for multi-label ones (a progress bar's
    total); config.epochs when the features cannot be read (train-head then says why)."""
    from headstart.features import FeatureStore, StoreError
    from headstart.features.files.cachedir import chosen_features

    try:
        with FeatureStore(chosen_features(cache, backbone)) as store:
            multi_label = store.header.multi_label
    except (StoreError, OSError, ValueError):
        return config.epochs
    return multilabel_config(config, unset)[0].epochs if multi_label else config.epochs
