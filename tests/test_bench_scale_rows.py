"""bench/scale_rows.py: the generated cache holds the rows asked for, class by class, and `python -m bench.scale
--rows` writes the issue's shape {"rows": [..], "steps": {STEP: [{"rows", "seconds", "peak_rss_mib"}]}}."""

from __future__ import annotations

import json

import numpy as np

from bench import scale, scale_rows
from headstart.features.store import FeatureStore


def test_the_generated_cache_holds_the_rows_class_by_class(tmp_path):
    scale_rows.generate(tmp_path, 1000)
    with FeatureStore(tmp_path / "features.h5") as store:
        assert {split: store.count(split) for split in store.splits} == {"train": 800, "val": 100, "test": 100}
        assert store.width == scale_rows.WIDTH and store.header.weights.kind == "none"
        labels = store.labels("train")
        assert np.all(np.diff(labels) >= 0) and np.bincount(labels).tolist() == [80] * 10


def test_the_figures_have_the_issues_shape_and_leave_out_a_failed_step(tmp_path, monkeypatch):
    def fresh(args, timeout):
        if args[0] == "audit":
            return None  # failed or past the timeout: left out
        return {"seconds": 2.0, "peak_rss_mib": 100.0}

    monkeypatch.setattr(scale_rows, "_fresh", fresh)
    out = tmp_path / "scale_rows.json"
    scale.main(["--rows", "10,20", "--out", str(out)])
    figures = json.loads(out.read_text())
    assert figures["rows"] == [10, 20]
    assert sorted(figures["steps"]) == sorted(scale_rows.STEPS)
    assert figures["steps"]["train-head"] == [
        {"rows": 10, "seconds": 2.0, "peak_rss_mib": 100.0},
        {"rows": 20, "seconds": 2.0, "peak_rss_mib": 100.0},
    ]
    assert figures["steps"]["audit"] == []
