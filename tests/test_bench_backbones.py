"""bench.backbones: its label table names the hymenoptera images where they are, spread over train and val; on one
small backbone it reports the width, the batch size and a features file of the rows extracted."""

from __future__ import annotations

import csv

import pytest

from bench import backbones


def test_the_table_names_images_in_place_spread_over_both_splits(real_data, tmp_path):
    table = tmp_path / "labels.csv"
    assert backbones.write_table(real_data, table, 397) == 397  # every image: the dataset holds 397
    assert backbones.write_table(real_data, table, 20) == 20
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["split"] for row in rows} == {"train", "val"} and {row["label"] for row in rows} == {"ants", "bees"}
    assert all((real_data / row["path"]).is_file() for row in rows)
    assert not list(tmp_path.rglob("*.jpg"))  # nothing copied


@pytest.mark.long
def test_one_backbone_is_measured(real_data, tmp_path):
    figures = backbones.run(["mobilenet_v3_large"], 16, 1, False, tmp_path / "work", real_data)
    (record,) = figures["records"]
    assert record["backbone"] == "mobilenet_v3_large" and record["width"] == 1280 and record["images"] == 16
    assert record["batch_size"] >= 1 and record["forward_img_s"] > 0 and "onnxruntime_img_s" not in record
