"""bench.backbones: its label table names the hymenoptera images where they are, spread over train and val; on one
small backbone it reports the width, the batch size, each engine's speed and its features' distance from the eager
forward's."""

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
    names, options = backbones.parse_options(
        ["--backbones", "mobilenet_v3_large", "--images", "8", "--batch-size", "2", "--rounds", "1", "--repeats", "1"]
        + ["--no-onnx", "--data", str(real_data)]
    )
    work = tmp_path / "work"
    work.mkdir()
    figures = backbones.run(names, options, work)
    assert figures["images"] == 8
    (record,) = figures["records"]
    assert record["backbone"] == "mobilenet_v3_large" and record["width"] == 1280 and record["batch_size"] == 2
    assert record["eager_img_s"] > 0 and record["headstart_img_s"] > 0 and record["extract_img_s"] > 0
    assert record["headstart_max_diff"] <= 1e-4 and "onnxruntime_img_s" not in record
    assert ("bf16_extract_img_s" in record) == options.bf16 and figures["bf16"] == options.bf16_note
