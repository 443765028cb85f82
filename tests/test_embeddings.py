"""embeddings: every cached row out as Parquet (read back by pandas and DuckDB) or .npy with its table and record."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import separable, write_features

from headstart.features.files.outputs import OutputError
from headstart.features.store import FeatureStore
from headstart.features.vectors import EmbeddingsConfig, write_embeddings
from headstart.features.vectors.formats import FORMAT_VERSION, METADATA_KEY


@pytest.fixture
def cache(tmp_path):
    train, val = separable(11, dim=8), separable(6, seed=1, dim=8)
    write_features(tmp_path / "cache", {"train": train, "val": val})
    return tmp_path / "cache"


def stored(cache):
    """Every row of features.h5 as (paths, splits, label names, features), in file order."""
    with FeatureStore(cache / "features.h5") as store:
        parts = [(split, store.read(split)) for split in store.splits]
        classes = store.header.classes
    paths = [path for _, rows in parts for path in rows.paths]
    splits = [split for split, rows in parts for _ in rows.paths]
    labels = [classes[label] for _, rows in parts for label in rows.labels]
    return paths, splits, labels, np.concatenate([rows.features for _, rows in parts])


def test_parquet_read_back_by_pandas_equals_the_features_file_with_its_header(cache, tmp_path):
    # the test extra carries pandas, pyarrow and duckdb: a skip here would hide issue 25's done-when
    import pandas
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out.parquet"
    seen = []
    summary = write_embeddings(EmbeddingsConfig(out=out, cache=cache, chunk_rows=4), lambda *n: seen.append(n))
    assert summary.rows == {"train": 11, "val": 6} and summary.dim == 8 and seen[-1] == (17, 17)
    assert pq.ParquetFile(out).metadata.num_row_groups == 5  # 11 train rows in 4s, 6 val rows in 4s: chunk by chunk
    table = pandas.read_parquet(out)
    paths, splits, labels, features = stored(cache)
    assert list(table["path"]) == paths and list(table["split"]) == splits and list(table["label"]) == labels
    vectors = np.stack(table["embedding"])
    assert vectors.dtype == np.float32 and np.array_equal(vectors, features)
    schema = pq.read_schema(out)
    kind = schema.field("embedding").type  # a vector column as LanceDB and DuckDB take it: fixed size, float32
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 8 and kind.value_type == pa.float32()
    record = json.loads(schema.metadata[METADATA_KEY.encode()])
    assert record["format_version"] == FORMAT_VERSION and record["dim"] == 8
    assert record["header"]["backbone"] == "resnet18" and record["header"]["weights"]["kind"] == "none"
    assert record["header"]["preprocessing"]["resize"] == 256


def test_duckdb_reads_the_parquet_file_as_it_is(cache, tmp_path):
    import duckdb

    out = tmp_path / "out.parquet"
    write_embeddings(EmbeddingsConfig(out=out, cache=cache))
    rows = duckdb.sql(f"SELECT path, split, label, embedding FROM read_parquet('{out}')").fetchall()
    paths, splits, labels, features = stored(cache)
    assert [row[:3] for row in rows] == list(zip(paths, splits, labels))
    assert np.array_equal(np.array([row[3] for row in rows], np.float32), features)


def test_npy_with_its_table_and_record(cache, tmp_path):
    out = tmp_path / "vectors.npy"
    summary = write_embeddings(EmbeddingsConfig(out=out, cache=cache, format="npy", chunk_rows=5))
    assert summary.files == [str(out), str(tmp_path / "vectors.csv"), str(tmp_path / "vectors.json")]
    paths, splits, labels, features = stored(cache)
    assert np.array_equal(np.load(out), features)
    table = read_csv(tmp_path / "vectors.csv")
    assert [row["row"] for row in table] == [str(i) for i in range(17)]
    assert [(row["path"], row["split"], row["label"]) for row in table] == list(zip(paths, splits, labels))
    record = json.loads((tmp_path / "vectors.json").read_text())
    assert record["rows"] == {"train": 11, "val": 6} and record["header"]["classes"] == ["ants", "bees"]


def test_npy_cells_are_formula_safe(tmp_path):
    from headstart.features.store import FeaturesHeader, Rows, StoreWriter

    with FeatureStore(write_features(tmp_path / "a", {"train": separable(2, dim=4)})) as store:
        header = store.header
    assert isinstance(header, FeaturesHeader)
    cache = tmp_path / "cache"
    cache.mkdir()
    with StoreWriter(cache / "features.h5", header, dim=4) as writer:
        writer.begin_split("test")
        ones = np.ones(2, np.int64)
        writer.append(
            Rows(np.ones((2, 4), np.float32), np.array([0, 1]), ["=cmd.jpg", "b.jpg"], ones, ones, ["0" * 64, "1" * 64])
        )
        writer.end_split([])
        writer.commit()
    write_embeddings(EmbeddingsConfig(out=tmp_path / "v.npy", cache=cache, format="npy"))
    table = read_csv(tmp_path / "v.csv")
    assert [(row["path"], row["label"]) for row in table] == [("./=cmd.jpg", "ants"), ("b.jpg", "bees")]


def test_the_cli_writes_parquet_and_refuses_cache_files_and_bad_npy_names(cache, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "e.parquet"
    result = run("embeddings", "--cache", cache, "--out", out)
    assert_ok(result)
    assert "17 rows (train 11, val 6), 8 values each" in result.output and out.is_file()
    before = (cache / "features.h5").read_bytes()
    assert_error(run("embeddings", "--cache", cache, "--out", cache / "features.h5"), "features.h5", code=1)
    assert (cache / "features.h5").read_bytes() == before
    assert_error(run("embeddings", "--cache", cache, "--format", "npy", "--out", tmp_path / "v.bin"), "ends in .npy")
    assert not (tmp_path / "v.bin").exists()


def test_the_library_refuses_a_sidecar_over_a_cache_file(cache):
    with pytest.raises(OutputError, match="metrics.json"):
        write_embeddings(EmbeddingsConfig(out=cache / "metrics.npy", cache=cache, format="npy"))


def test_without_pyarrow_one_line_says_how_to_install_it(cache, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    error = assert_error(run("embeddings", "--cache", cache, "--out", tmp_path / "e.parquet"), "pip install")
    assert "headstart[embeddings]" in error and not (tmp_path / "e.parquet").exists()


def test_a_missing_cache_is_one_line(tmp_path):
    assert_error(
        run("embeddings", "--cache", tmp_path / "none", "--format", "npy", "--out", tmp_path / "v.npy"), "extract"
    )


def test_headstart_embeddings_stays_the_function_once_its_room_is_imported():
    import headstart
    import headstart.features.vectors.step  # noqa: F401  (a room named `embeddings` would replace the function here)

    assert callable(headstart.embeddings) and headstart.embeddings.__module__ == "headstart.api"
