"""bench.tables on a few hundred rows: the table and the folder resolve to the same splits, plan nothing to compute,
and relabelling 10% of the table's rows extracts nothing and relabels exactly those rows."""

from __future__ import annotations

from bench import tables


def test_relabelling_a_tenth_of_the_table_computes_no_features(tmp_path):
    figures = tables.run(rows=200, repeats=1, work=tmp_path)
    assert figures["splits"] == {"train": 160, "val": 40}
    assert figures["plan_todo"] == {"folder": 0, "table": 0}
    assert figures["relabel"] == figures["relabel"] | {
        "rows_relabelled_in_table": 20,
        "extracted": 0,
        "reused": 200,
        "relabelled": 20,
    }
