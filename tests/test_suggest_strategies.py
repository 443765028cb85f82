"""The suggest strategies on tiny hand-made pools whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.heads.suggest.strategies import PoolView, StrategyError, choose, entropy, margin_uncertainty, rank


def test_margin_and_entropy_rank_the_tie_first():
    probabilities = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
    assert margin_uncertainty(probabilities).tolist() == pytest.approx([0.2, 1.0, 0.6])
    assert entropy(probabilities)[1] == pytest.approx(1.0)
    view = PoolView(probabilities, np.eye(3, 4, dtype=np.float32), np.zeros((1, 4), np.float32))
    assert choose("margin", view, 2)[0].tolist() == [1, 2]


def test_diversity_never_picks_a_near_copy_of_an_earlier_pick():
    labelled = np.array([[1, 0, 0]], np.float32)
    pool = np.array([[0, 1, 0], [0, 1, 0.01], [0, 0, 1], [0.99, 0.01, 0]], np.float32)
    view = PoolView(np.full((4, 2), 0.5), pool, labelled)
    rows, _ = choose("diversity", view, 2)
    assert sorted(rows.tolist()) in ([0, 2], [1, 2])


def test_unknown_without_a_model_is_a_one_line_error_and_why_names_the_classes():
    view = PoolView(np.array([[0.5, 0.3, 0.2]]), np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32))
    with pytest.raises(StrategyError, match="no unknown-image model"):
        choose("unknown", view, 1)
    assert rank("margin", view, 1, ["ants", "bees", "wasps"]).why == ["the head is torn between ants and bees"]
