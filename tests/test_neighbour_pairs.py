"""audit's near duplicates through the approximate index (features/neighbours/pairs.py) agree with exact pairs."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.heads.audit.duplicates import find_duplicates, near_pairs
from headstart.heads.audit.space import whiten

pytest.importorskip("faiss")


def planted(rows: int = 3000, copies: int = 12, dim: int = 48, seed: int = 0):
    """Rows around 30 centres, `copies` of them near copies of others: (features, the planted pairs a < b)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim)) * 2
    features = (centres[rng.integers(0, 30, rows)] + rng.standard_normal((rows, dim))).astype(np.float32)
    chosen = rng.choice(rows, 2 * copies, replace=False)
    features[chosen[copies:]] = features[chosen[:copies]] + rng.normal(0, 0.02, (copies, dim)).astype(np.float32)
    return features, {(min(a, b), max(a, b)) for a, b in zip(chosen[:copies].tolist(), chosen[copies:].tolist())}


def as_set(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(a.tolist(), b.tolist()))


def test_the_index_finds_the_planted_copies_and_only_pairs_above_the_threshold():
    from headstart.features.neighbours.pairs import indexed_pairs

    features, copies = planted()
    unit = whiten(features, features[:2400])
    a, b, s, dropped = indexed_pairs(unit, 0.8)
    exact = as_set(*near_pairs(unit, 0.8)[:2])
    found = as_set(a, b)
    assert copies <= found and found <= exact and dropped == 0
    assert bool(np.all(a < b)) and len(found) == len(a)  # each pair once, never a row with itself
    assert len(found) >= 0.95 * len(exact)
    assert np.allclose(s, np.einsum("ij,ij->i", unit[a], unit[b]), atol=1e-5)


def test_scanning_every_list_the_index_finds_every_pair_and_keeps_the_most_similar():
    from headstart.features.neighbours.pairs import indexed_pairs

    features, _ = planted(rows=1500)
    unit = whiten(features, features)
    exact_a, exact_b, exact_s, _ = near_pairs(unit, 0.5, max_pairs=10**9)
    a, b, s, dropped = indexed_pairs(unit, 0.5, max_pairs=10**9, probes=10**6)
    assert as_set(a, b) == as_set(exact_a, exact_b)  # every list scanned: exact
    kept_a, kept_b, kept_s, left_out = indexed_pairs(unit, 0.5, max_pairs=200, probes=10**6)
    assert len(kept_s) == 200 and left_out == len(exact_s) - 200
    assert kept_s.min() >= np.sort(exact_s)[-200] - 1e-6  # the 200 most similar


def test_find_duplicates_goes_through_the_index_from_its_size_and_agrees_with_exact(monkeypatch):
    import headstart.features.neighbours.pairs as pairs

    calls = []
    real = pairs.indexed_pairs
    monkeypatch.setattr(pairs, "indexed_pairs", lambda *args, **kw: calls.append(len(args[0])) or real(*args, **kw))
    features, copies = planted()
    split = np.where(np.arange(3000) < 2400, "train", "val")
    sha256 = [f"{row:064x}" for row in range(3000)]
    indexed = find_duplicates(features, sha256, split, 2400, 0.8, index_min_rows=2000)
    assert calls == [3000]
    exact = find_duplicates(features, sha256, split, 2400, 0.8, index_min_rows=3001)
    assert calls == [3000]  # below the size: every pair compared
    assert copies <= as_set(indexed.a, indexed.b) <= as_set(exact.a, exact.b)
    leaks = {pair for pair in copies if (pair[0] < 2400) != (pair[1] < 2400)}
    assert as_set(indexed.a[indexed.leakage], indexed.b[indexed.leakage]) >= leaks


def test_without_faiss_the_duplicates_are_exact_whatever_the_size(monkeypatch):
    import headstart.features.neighbours.index as index

    monkeypatch.setattr(index, "faiss_module", lambda: None)
    features, copies = planted(rows=800, copies=5)
    pairs = find_duplicates(features, [""] * 800, np.array(["train"] * 800), 800, 0.8, index_min_rows=1)
    assert copies <= as_set(pairs.a, pairs.b)


def test_the_audit_passes_its_index_size_to_the_duplicate_step(tmp_path, monkeypatch):
    from conftest import write_features

    import headstart.heads.audit.run as run
    from headstart.heads.audit.config import AuditConfig

    seen = []

    def stop(*args, **kwargs):
        seen.append(kwargs["index_min_rows"])
        raise RuntimeError("stopped after the duplicate step's call")

    monkeypatch.setattr(run, "find_duplicates", stop)
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    write_features(tmp_path / "cache", {"train": (rng.standard_normal((60, 8)) + labels[:, None], labels)})
    with pytest.raises(RuntimeError, match="stopped"):
        run.audit_cache(AuditConfig(cache=tmp_path / "cache", folds=2, index_min_rows=123))
    assert seen == [123]


def test_the_lists_keep_their_size_as_the_rows_grow_so_each_row_is_compared_with_a_fixed_number():
    from headstart.features.neighbours.pairs import assign_lists

    for rows in (2000, 4000):
        features, _ = planted(rows=rows)
        lists = assign_lists(whiten(features, features), list_rows=100, probes=4)
        sizes = np.bincount(lists[:, 0])
        assert lists.shape == (rows, 4) and lists.max() + 1 == rows // 100  # 20 lists, then 40: 100 rows each
        assert sizes.sum() == rows and sizes.mean() == 100
        assert all(len(set(row)) == 4 for row in lists.tolist())  # four different lists per row, its own first


def test_with_the_centres_grouped_every_pair_found_is_real_once_and_the_copies_are_found(monkeypatch):
    import headstart.features.neighbours.pairs as pairs

    monkeypatch.setattr(pairs, "GROUPED_FROM", 8)  # 60 lists: grouped, 7 groups of centres
    monkeypatch.setattr(pairs, "GROUP_PROBES", 2)  # each row compares the centres of 2 groups only
    features, copies = planted()
    unit = whiten(features, features[:2400])
    a, b, s, dropped = pairs.indexed_pairs(unit, 0.8, list_rows=50)
    exact = as_set(*near_pairs(unit, 0.8)[:2])
    found = as_set(a, b)
    assert copies <= found <= exact and dropped == 0 and len(found) == len(a) and bool(np.all(a < b))
    assert len(found) >= 0.9 * len(exact)
    assert float(s.min()) >= 0.8 and np.allclose(s, np.einsum("ij,ij->i", unit[a], unit[b]), atol=1e-5)


def test_the_whitening_is_fitted_on_a_seeded_sample_above_its_size_and_on_every_row_below():
    from headstart.heads.audit.space import fit_whitening

    features, copies = planted(rows=3000)
    full = fit_whitening(features, sample_rows=3000)
    assert np.array_equal(full.projection, fit_whitening(features, sample_rows=5000).projection)  # every row
    sampled = fit_whitening(features, sample_rows=1000, seed=3)
    assert np.array_equal(sampled.projection, fit_whitening(features, sample_rows=1000, seed=3).projection)
    chosen = np.sort(np.random.default_rng(3).choice(3000, 1000, replace=False))
    assert np.array_equal(sampled.centre, features[chosen].mean(axis=0, dtype=np.float64))  # those rows only
    assert not np.array_equal(sampled.centre, full.centre)
    unit = sampled.transform(features)
    assert unit.shape == (3000, 32) and np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)
    assert copies <= as_set(*near_pairs(unit, 0.8)[:2])  # the planted copies survive the sample's fit
