"""heads/folds.py: stratified, disjoint, covering folds; out-of-fold scores never come from a head that saw the row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.heads.kfold import out_of_fold, stratified_folds


def test_folds_are_disjoint_cover_every_row_and_keep_class_shares():
    labels = np.array([0] * 124 + [1] * 121)
    folds = stratified_folds(labels, 5, seed=3)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    for fold in folds:
        counts = np.bincount(labels[fold], minlength=2)
        assert counts[0] in (24, 25) and counts[1] in (24, 25)


def test_same_seed_same_folds_other_seed_other_folds():
    labels = np.arange(60) % 3
    first, again, other = (stratified_folds(labels, 4, seed) for seed in (0, 0, 1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("folds, rows", [(1, 10), (5, 4)])
def test_impossible_splits_are_clear_errors(folds, rows):
    with pytest.raises(ValueError, match="folds"):
        stratified_folds(np.zeros(rows), folds)


def test_out_of_fold_scores_each_row_with_a_model_that_did_not_see_it():
    features = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    labels = torch.zeros(20, dtype=torch.long)
    folds = stratified_folds(labels.numpy(), 4)

    def seen_rows_sum(train_x, train_y, held_x):  # a "model" that remembers which rows it was fitted on
        return torch.full((len(held_x),), float(train_x.sum()))

    scores = out_of_fold(features, labels, folds, seen_rows_sum)
    for fold in folds:
        expected = float(features.sum() - features[fold].sum())
        assert torch.all(scores[torch.from_numpy(fold)] == expected)
