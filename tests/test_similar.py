"""similar: the nearest cached images of any image, by the features' own backbone; CSV, JSON Lines and a page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import write_features
from PIL import Image

from headstart.features.neighbours.config import SimilarConfig
from headstart.features.neighbours.space import ExactSearch
from headstart.features.neighbours.step import find_similar, searched_splits


def smooth_image(seed: int, size: int = 64) -> Image.Image:
    """A smooth colour field (4 x 4 random colours, bicubic): images a random-init backbone tells apart."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A small dataset of smooth images and its cache, extracted with random-init weights (--weights none)."""
    root = tmp_path_factory.mktemp("similar")
    seed = 0
    for split, count in (("train", 6), ("val", 3)):
        for name in ("ants", "bees"):
            for index in range(count):
                seed += 1
                path = root / "data" / split / name / f"{name}_{index}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                smooth_image(seed).save(path, quality=95)
    assert_ok(run("extract", "--data", root / "data", "--cache", root / "cache", "--weights", "none", "-q"))
    return root


def test_a_resized_re_encoded_copy_is_found_at_rank_1(extracted, tmp_path):
    original = extracted / "data" / "train" / "bees" / "bees_4.jpg"
    copy = tmp_path / "copy.jpg"
    Image.open(original).resize((48, 48), Image.BILINEAR).save(copy, quality=50)  # another size, another quality
    out = tmp_path / "similar.csv"
    result = run("similar", copy, "-k", 3, "--cache", extracted / "cache", "--out", out)
    assert_ok(result)
    rows = read_csv(out)
    assert [row["rank"] for row in rows] == ["1", "2", "3"] and {row["query"] for row in rows} == {str(copy)}
    assert (rows[0]["path"], rows[0]["split"], rows[0]["label"]) == ("train/bees/bees_4.jpg", "train", "bees")
    similarities = [float(row["similarity"]) for row in rows]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] > 0.95 > similarities[1]
    assert "1 queries (0 already cached)" in result.output


def test_a_cached_query_is_left_out_and_the_split_option_limits_the_search(extracted, tmp_path):
    query = extracted / "data" / "val" / "ants" / "ants_1.jpg"
    out = tmp_path / "similar.jsonl"
    result = run("similar", query, "--cache", extracted / "cache", "--format", "jsonl", "--out", out)
    assert_ok(result)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10 and [record["rank"] for record in records] == list(range(1, 11))
    assert "val/ants/ants_1.jpg" not in {record["path"] for record in records}
    assert set(records[0]) == {"query", "rank", "path", "split", "label", "similarity"}
    assert "1 queries (1 already cached)" in result.output and "searched 18 rows of train, val" in result.output
    result = run("similar", query, "--cache", extracted / "cache", "--split", "val", "--format", "jsonl", "--out", out)
    assert_ok(result)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and {record["split"] for record in records} == {"val"}  # 6 val rows, the query left out


def test_html_page_shows_each_query_beside_its_neighbours(extracted, tmp_path):
    query = extracted / "data" / "train" / "ants" / "ants_0.jpg"
    page = tmp_path / "page.html"
    table = tmp_path / "t.csv"
    assert_ok(run("similar", query, "-k", 4, "--cache", extracted / "cache", "--out", table, "--html", page))
    text = page.read_text()
    assert text.count('<img src="data:image/jpeg;base64,') == 5  # the query and its 4 neighbours
    assert "default-src 'none'" in text and "<script" not in text


def test_an_output_that_is_a_cache_file_or_an_unknown_split_is_one_line(extracted, tmp_path):
    query = extracted / "data" / "train" / "ants" / "ants_0.jpg"
    cache = extracted / "cache"
    before = (cache / "features.h5").read_bytes()
    assert_error(run("similar", query, "--cache", cache, "--html", cache / "features.h5"), "--html", "features.h5")
    assert (cache / "features.h5").read_bytes() == before
    assert_error(run("similar", query, "--cache", cache, "--split", "pool"), "--split pool", "no such split")


def test_exact_search_block_by_block_equals_one_sort_of_every_row():
    rng = np.random.default_rng(3)
    rows, queries = rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((4, 8)).astype(np.float32)
    search = ExactSearch(rows)
    search.block_rows = 7  # 8 blocks: the running top-k must merge them
    found, sims = search.nearest(queries, 5, [None, 3, None, None])
    unit = search.unit(rows)
    expected = search.unit(queries) @ unit.T
    expected[1, 3] = -np.inf
    assert np.array_equal(found, np.argsort(-expected, axis=1, kind="stable")[:, :5])
    assert np.allclose(sims, np.take_along_axis(expected, found, axis=1), atol=1e-6)
    assert 3 not in found[1]


def test_the_pool_is_searched_only_when_asked_for(tmp_path):
    available = ["train", "val", "pool"]
    assert searched_splits(available, SimilarConfig(queries=())) == ["train", "val"]
    assert searched_splits(available, SimilarConfig(queries=(), pool=True)) == ["train", "val", "pool"]
    assert searched_splits(available, SimilarConfig(queries=(), splits=("val",), pool=True)) == ["val", "pool"]
    assert searched_splits(["train"], SimilarConfig(queries=(), pool=True)) == ["train"]  # none yet: nothing to add


def test_no_images_in_the_queries_is_one_clean_error(tmp_path):
    rng = np.random.default_rng(0)
    write_features(tmp_path / "cache", {"train": (rng.standard_normal((4, 8)), np.array([0, 1, 0, 1]))})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        find_similar(SimilarConfig(queries=(tmp_path / "empty",), cache=tmp_path / "cache"))


def clustered(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Rows around 20 random centres: what an index's lists are made for."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)) * 3
    return (centres[rng.integers(0, 20, rows)] + rng.standard_normal((rows, dim))).astype(np.float32)


def test_above_the_size_the_cached_index_answers_as_exact_search_does(tmp_path):
    pytest.importorskip("faiss")
    from headstart.features.neighbours.space import IndexedSearch, read_rows
    from headstart.features.neighbours.step import searcher
    from headstart.features.store import FeatureStore

    features = write_features(tmp_path / "cache", {"train": (clustered(2000), np.arange(2000) % 2)})
    config = SimilarConfig(queries=(), cache=tmp_path / "cache", index_min_rows=1000)
    with FeatureStore(features) as store:
        rows, header = read_rows(store, ["train"]), store.header
    search = searcher(rows, config, features, header)
    assert isinstance(search, IndexedSearch) and (tmp_path / "cache" / "index" / "features.h5.centred.faiss").is_file()
    queries = rows.features[:50] + 0.1
    found, _ = search.nearest(queries, 10, [None] * 50)
    exact, _ = ExactSearch(rows.features).nearest(queries, 10, [None] * 50)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert recall >= 0.95
    assert not isinstance(
        searcher(rows, SimilarConfig(queries=(), cache=tmp_path / "cache"), features, header), IndexedSearch
    )  # below the default size: exact


def test_the_index_file_is_reused_rebuilt_when_its_features_change_and_never_trusted(tmp_path):
    pytest.importorskip("faiss")
    import os

    from headstart.features.neighbours.index import IndexKey, cached_index, read_index

    features = write_features(tmp_path / "cache", {"train": (clustered(800), np.arange(800) % 2)})
    unit = ExactSearch(clustered(800)).unit(clustered(800))
    key = IndexKey.of(features, "resnet18", "centred", unit, ["train"])
    _, built = cached_index(tmp_path / "cache", key, unit)
    assert built and not cached_index(tmp_path / "cache", key, unit)[1]  # the second time: read back
    path = tmp_path / "cache" / "index" / "features.h5.centred.faiss"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one byte of the faiss payload
    path.write_bytes(bytes(data))
    assert read_index(path, key) is None  # its digest no longer matches: never deserialised
    assert cached_index(tmp_path / "cache", key, unit)[1] and read_index(path, key) is not None  # rebuilt
    path.write_bytes(b"not an index at all")
    assert cached_index(tmp_path / "cache", key, unit)[1]
    os.utime(features, ns=(1, 1))  # the features file changed: its key with it
    changed = IndexKey.of(features, "resnet18", "centred", unit, ["train"])
    assert read_index(path, changed) is None and cached_index(tmp_path / "cache", changed, unit)[1]


def test_similar_reuses_its_index_until_the_features_are_extracted_again_then_rebuilds_it(tmp_path):
    pytest.importorskip("faiss")
    from headstart.features.neighbours.space import read_rows
    from headstart.features.neighbours.step import searcher
    from headstart.features.store import FeatureStore

    def search(features):
        with FeatureStore(features) as store:
            rows, header = read_rows(store, ["train"]), store.header
        config = SimilarConfig(queries=(), cache=tmp_path / "cache", index_min_rows=1000)
        return rows, searcher(rows, config, features, header)

    features = write_features(tmp_path / "cache", {"train": (clustered(1500), np.arange(1500) % 2)})
    index = tmp_path / "cache" / "index" / "features.h5.centred.faiss"
    search(features)
    first = (index.stat().st_mtime_ns, index.stat().st_ino, index.read_bytes())
    search(features)
    assert (index.stat().st_mtime_ns, index.stat().st_ino, index.read_bytes()) == first  # unchanged: read back
    features = write_features(tmp_path / "cache", {"train": (clustered(1500, seed=7), np.arange(1500) % 2)})
    rows, searched = search(features)  # extracted again: other rows, the same size
    assert index.read_bytes() != first[2]  # rebuilt from the new rows
    found, _ = searched.nearest(rows.features[:20], 1, [None] * 20)
    assert found[:, 0].tolist() == list(range(20))  # each new row finds itself: the index holds the new rows
