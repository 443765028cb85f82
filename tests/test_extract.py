"""features/extract.py: the features file per split, skipped images, and the incremental cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset, make_image

import headstart.features.backbone as backbone_module
import headstart.features.engines.local as local_engine
import headstart.features.reuse as reuse_module
from headstart.features.backbone import Backbone, load_backbone
from headstart.features.config import ExtractConfig
from headstart.features.extract import extract_features
from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.images import build_transform, decode_image, read_file
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.features.store import FeatureStore, partial_files

CPU = torch.device("cpu")


@pytest.fixture
def small_inputs(monkeypatch):
    """32-pixel inputs: the caching logic is unchanged and the forward pass is ~50x cheaper on a small CPU.
    Each preprocessing keeps its name and its own statistics, so a switch between them still shows."""
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))
    monkeypatch.setitem(PREPROCESSINGS, "notebook", Preprocessing("notebook", (32, 32), None, (0.5,) * 3, (0.5,) * 3))


def run(data: Path, cache: Path, **options):
    settings = {"weights": "none", "device": "cpu", "workers": 0, "batch_size": 4, **options}
    return extract_features(ExtractConfig(data=data, cache=cache, **settings))


def read_store(cache: Path) -> dict:
    with FeatureStore(cache / FEATURES_FILE) as store:
        return {
            "header": store.header.to_dict(),
            **{split: store.read(split) for split in store.splits},
            "skipped": {split: store.skipped(split) for split in store.splits},
        }


def by_path(rows) -> dict[str, np.ndarray]:
    return dict(zip(rows.paths, rows.features))


def counts(summary) -> dict[str, tuple[int, int, int]]:
    """split -> (extracted, reused, skipped)"""
    return {s.split: (s.extracted, s.reused, len(s.skipped)) for s in summary.splits}


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name not in (FEATURES_FILE, ".lock"))


# --- one run ------------------------------------------------------------------------------------------------------


def test_extract_writes_rows_per_split(tiny_dataset, tmp_path, weights_file, small_inputs):
    cache = tmp_path / "cache"
    summary = run(tiny_dataset, cache, weights=str(weights_file))

    assert summary.path == cache / FEATURES_FILE
    assert summary.classes == ["ants", "bees"]
    assert summary.rebuild_reason is None
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 0)}
    assert [(s.found, s.found - len(s.skipped)) for s in summary.splits] == [(8, 8), (4, 4)]

    store = read_store(cache)
    train, val = store["train"], store["val"]
    assert train.features.shape == (8, 512) and val.features.shape == (4, 512)
    assert train.features.dtype == np.float32
    assert np.isfinite(train.features).all() and np.abs(train.features).sum() > 0
    assert train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert val.labels.tolist() == [0, 0, 1, 1]
    assert train.paths[:2] == ["train/ants/ants_0.jpg", "train/ants/ants_1.jpg"]
    assert val.paths == ["val/ants/ants_0.jpg", "val/ants/ants_1.jpg", "val/bees/bees_0.jpg", "val/bees/bees_1.jpg"]
    for rows in (train, val):
        for name, size, mtime_ns, sha256 in zip(rows.paths, rows.sizes, rows.mtimes_ns, rows.sha256):
            file = tiny_dataset / name
            assert size == file.stat().st_size and mtime_ns == file.stat().st_mtime_ns
            assert sha256 == hashlib.sha256(file.read_bytes()).hexdigest()

    header = store["header"]
    assert header["classes"] == ["ants", "bees"]
    assert header["weights"] == {
        "kind": "file",
        "name": str(weights_file.resolve()),
        "sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest(),
    }
    assert header["preprocessing"] == PREPROCESSINGS["imagenet"].describe()
    assert header["precision"] == "fp32"
    assert header["data_root"] == str(tiny_dataset.resolve())
    assert leftovers(cache) == []

    # each row holds the features of its own file
    backbone = load_backbone(str(weights_file), CPU)
    transform = build_transform(PREPROCESSINGS["imagenet"])
    picks = [train.paths.index("train/bees/bees_2.jpg"), 0]
    batch = torch.stack([transform(decode_image(read_file(tiny_dataset / train.paths[i])[0])) for i in picks])
    np.testing.assert_allclose(train.features[picks], backbone.features(batch).numpy(), rtol=0, atol=1e-4)


def one_batch_per_group(monkeypatch) -> None:
    """The CPU engine decodes, runs and yields one forward pass's images at a time."""
    monkeypatch.setattr(local_engine, "DECODE_GROUP", 1)
    monkeypatch.setattr(local_engine, "PASSES_PER_TURN", 1)


def test_progress_reaches_the_number_of_images(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    def progress(cache: str) -> list:
        calls = []
        extract_features(
            ExtractConfig(
                data=tiny_dataset, cache=tmp_path / cache, weights="none", device="cpu", workers=0, batch_size=5
            ),
            on_progress=lambda done, total: calls.append((done, total)),
        )
        return calls

    assert progress("grouped") == [(12, 12)]  # one report per decoding group (32 images on a CPU)
    one_batch_per_group(monkeypatch)
    assert progress("batched") == [(5, 12), (10, 12), (12, 12)]


def test_broken_images_are_skipped_counted_and_named(tiny_dataset, tmp_path, small_inputs):
    (tiny_dataset / "train" / "ants" / "broken_a.jpg").write_text("not a picture")
    (tiny_dataset / "train" / "ants" / "broken_b.jpg").write_bytes(b"")
    (tiny_dataset / "val" / "bees" / "bees_9.png").write_bytes(os.urandom(300))
    cache = tmp_path / "cache"
    summary = run(tiny_dataset, cache, batch_size=2)  # broken_a and broken_b make one batch on their own

    train, val = summary.splits
    assert [name for name, _ in train.skipped] == ["train/ants/broken_a.jpg", "train/ants/broken_b.jpg"]
    assert "not an image" in train.skipped[0][1] and "empty" in train.skipped[1][1]
    assert [name for name, _ in val.skipped] == ["val/bees/bees_9.png"]
    assert (train.found, len(train.skipped), train.extracted) == (10, 2, 8)
    assert (val.found, len(val.skipped), val.extracted) == (5, 1, 4)

    store = read_store(cache)
    assert not [p for p in store["train"].paths + store["val"].paths if "broken" in p or "bees_9" in p]
    assert len(store["train"].paths) == 8 and store["train"].features.shape == (8, 512)
    assert store["skipped"]["train"] == train.skipped
    assert store["skipped"]["val"] == val.skipped

    again = run(tiny_dataset, cache, batch_size=2)  # still broken: tried again, skipped again, nothing else redone
    assert counts(again) == {"train": (0, 8, 2), "val": (0, 4, 1)}


def test_undecodable_file_name_is_stored_as_text_and_reused(tiny_dataset, tmp_path, small_inputs):
    make_image(Path(os.fsdecode(os.fsencode(tiny_dataset / "train" / "bees") + b"/bad\xff.jpg")), seed=99)
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    assert "train/bees/bad\\xff.jpg" in read_store(cache)["train"].paths
    assert counts(run(tiny_dataset, cache))["train"] == (0, 9, 0)


def test_workers_give_the_same_rows_as_the_main_process(tiny_dataset, tmp_path, small_inputs):
    (tiny_dataset / "val" / "ants" / "broken.jpg").write_text("x")
    run(tiny_dataset, tmp_path / "inline", workers=0)
    summary = run(tiny_dataset, tmp_path / "workers", workers=2)
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 1)}
    inline, workers = read_store(tmp_path / "inline"), read_store(tmp_path / "workers")
    for split in ("train", "val"):
        assert workers[split].paths == inline[split].paths
        np.testing.assert_array_equal(workers[split].features, inline[split].features)


# --- the incremental cache ----------------------------------------------------------------------------------------


def test_second_run_reuses_everything_without_building_the_network(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    first = read_store(cache)

    def no_network(*args, **kwargs):
        raise AssertionError("the backbone was built although every row was cached")

    monkeypatch.setattr(backbone_module, "build_network", no_network)
    summary = run(tiny_dataset, cache)
    assert summary.rebuild_reason is None
    assert counts(summary) == {"train": (0, 8, 0), "val": (0, 4, 0)}
    second = read_store(cache)
    for split in ("train", "val"):
        assert second[split].paths == first[split].paths
        np.testing.assert_array_equal(second[split].features, first[split].features)
        np.testing.assert_array_equal(second[split].mtimes_ns, first[split].mtimes_ns)
    assert leftovers(cache) == []


def test_an_added_file_is_the_only_one_extracted(tiny_dataset, tmp_path, small_inputs):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    before = by_path(read_store(cache)["train"])
    make_image(tiny_dataset / "train" / "bees" / "bees_1b.jpg", seed=77)

    summary = run(tiny_dataset, cache)
    assert counts(summary) == {"train": (1, 8, 0), "val": (0, 4, 0)}
    train = read_store(cache)["train"]
    assert train.paths[6] == "train/bees/bees_1b.jpg"  # in ImageFolder order, not appended at the end
    assert train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    after = by_path(train)
    for name, feature in before.items():
        np.testing.assert_array_equal(after[name], feature)
    assert not any(np.array_equal(after["train/bees/bees_1b.jpg"], f) for f in before.values())


def _rewrite(path: Path, same_size: bool) -> None:
    """New pixels in the file; with same_size, the byte count stays (uncompressed BMP) and only content shows it."""
    old_size = path.stat().st_size
    make_image(path, seed=1234, fmt="BMP" if same_size else None)
    if same_size:
        assert path.stat().st_size == old_size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))


@pytest.mark.parametrize("same_size", [False, True], ids=["new-size", "same-size"])
def test_a_changed_file_is_the_only_one_extracted(tiny_dataset, tmp_path, small_inputs, same_size):
    target = tiny_dataset / "val" / "bees" / "bees_0.jpg"
    if same_size:
        make_image(target, seed=5, fmt="BMP")  # BMP content under a .jpg name: decoders go by content
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    before = by_path(read_store(cache)["val"])
    _rewrite(target, same_size)

    summary = run(tiny_dataset, cache)
    assert counts(summary) == {"train": (0, 8, 0), "val": (1, 3, 0)}
    val = read_store(cache)["val"]
    after = by_path(val)
    assert not np.array_equal(after["val/bees/bees_0.jpg"], before["val/bees/bees_0.jpg"])
    row = val.paths.index("val/bees/bees_0.jpg")
    assert val.sha256[row] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert val.mtimes_ns[row] == target.stat().st_mtime_ns
    for name in set(before) - {"val/bees/bees_0.jpg"}:
        np.testing.assert_array_equal(after[name], before[name])


def test_a_touched_file_is_reused_and_its_new_time_recorded(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    target = tiny_dataset / "train" / "ants" / "ants_2.jpg"
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    before = by_path(read_store(cache)["train"])
    new_mtime = target.stat().st_mtime_ns + 60 * 10**9
    os.utime(target, ns=(new_mtime, new_mtime))

    summary = run(tiny_dataset, cache)
    assert counts(summary) == {"train": (0, 8, 0), "val": (0, 4, 0)}
    train = read_store(cache)["train"]
    row = train.paths.index("train/ants/ants_2.jpg")
    assert train.mtimes_ns[row] == new_mtime
    np.testing.assert_array_equal(train.features[row], before["train/ants/ants_2.jpg"])

    hashed = []
    real_sha256 = reuse_module._sha256
    monkeypatch.setattr(reuse_module, "_sha256", lambda path: hashed.append(path) or real_sha256(path))
    assert counts(run(tiny_dataset, cache))["train"] == (0, 8, 0)
    assert hashed == []  # the recorded time matches now: no file is read again


def test_a_deleted_file_loses_its_row(tiny_dataset, tmp_path, small_inputs):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    (tiny_dataset / "train" / "bees" / "bees_3.jpg").unlink()
    summary = run(tiny_dataset, cache)
    assert counts(summary) == {"train": (0, 7, 0), "val": (0, 4, 0)}
    train = read_store(cache)["train"]
    assert "train/bees/bees_3.jpg" not in train.paths
    assert len(train.paths) == 7 and train.features.shape == (7, 512)


def test_a_new_class_relabels_reused_rows(tiny_dataset, tmp_path, small_inputs):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    make_dataset(tiny_dataset, classes=("aardvarks",), per_class={"train": 2, "val": 1}, first_seed=1000)
    summary = run(tiny_dataset, cache)
    assert summary.classes == ["aardvarks", "ants", "bees"]
    assert counts(summary) == {"train": (2, 8, 0), "val": (1, 4, 0)}
    store = read_store(cache)
    assert store["header"]["classes"] == ["aardvarks", "ants", "bees"]
    assert store["train"].labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


def test_changed_weights_rebuild_everything(tiny_dataset, tmp_path, small_inputs, weights_file):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    random_features = read_store(cache)["train"].features

    summary = run(tiny_dataset, cache, weights=str(weights_file))
    assert "weights" in summary.rebuild_reason and "random init" in summary.rebuild_reason
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 0)}
    store = read_store(cache)
    assert store["header"]["weights"]["kind"] == "file"
    assert not np.allclose(store["train"].features, random_features)

    moved = tmp_path / "elsewhere" / "same-weights.pth"
    moved.parent.mkdir()
    shutil.copy(weights_file, moved)
    summary = run(tiny_dataset, cache, weights=str(moved))  # the same parameters under another path
    assert summary.rebuild_reason is None
    assert counts(summary) == {"train": (0, 8, 0), "val": (0, 4, 0)}


@pytest.mark.parametrize(
    ("option", "value", "reason"), [("preprocess", "notebook", "preprocessing"), ("precision", "bf16", "precision")]
)
def test_changed_preprocessing_or_precision_rebuilds_everything(
    tiny_dataset, tmp_path, small_inputs, option, value, reason
):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    summary = run(tiny_dataset, cache, **{option: value})
    assert reason in summary.rebuild_reason
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 0)}
    header = read_store(cache)["header"]
    assert (header["preprocessing"]["name"], header["precision"]) == (
        value if option == "preprocess" else "imagenet",
        value if option == "precision" else "fp32",
    )


def test_an_unreadable_previous_file_is_rebuilt(tiny_dataset, tmp_path, small_inputs):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FEATURES_FILE).write_bytes(b"garbage, not HDF5" * 50)
    summary = run(tiny_dataset, cache)
    assert "unreadable" in summary.rebuild_reason
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 0)}
    assert len(read_store(cache)["train"].paths) == 8


# --- failures and interruptions -----------------------------------------------------------------------------------


def _fail_on_call(monkeypatch, number: int, error: BaseException) -> None:
    """Backbone.features raises on its number-th call, after earlier batches went through.
    Use it on a monkeypatch.context(), so undoing it keeps small_inputs."""
    real = Backbone.features
    calls = []

    def features(self, batch):
        calls.append(len(batch))
        if len(calls) == number:
            raise error
        return real(self, batch)

    monkeypatch.setattr(Backbone, "features", features)


def test_a_failure_mid_run_keeps_the_previous_file_and_leaves_no_partial(
    tiny_dataset, tmp_path, small_inputs, monkeypatch, weights_file
):
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    previous = (cache / FEATURES_FILE).read_bytes()

    with monkeypatch.context() as patch:
        _fail_on_call(patch, 2, RuntimeError("CUDA error: an illegal memory access was encountered"))
        with pytest.raises(RuntimeError, match="illegal memory access"):
            run(tiny_dataset, cache, weights=str(weights_file))
    assert (cache / FEATURES_FILE).read_bytes() == previous
    assert leftovers(cache) == [] and partial_files(cache / FEATURES_FILE) == []

    assert counts(run(tiny_dataset, cache)) == {"train": (0, 8, 0), "val": (0, 4, 0)}  # the lock was released


def test_an_interrupted_run_is_resumed(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    one_batch_per_group(monkeypatch)  # each batch written as it is computed, not a group at a time
    cache = tmp_path / "cache"
    with monkeypatch.context() as patch:
        _fail_on_call(patch, 3, KeyboardInterrupt())  # batches: train ants, train bees, val
        with pytest.raises(KeyboardInterrupt):
            run(tiny_dataset, cache)
    assert not (cache / FEATURES_FILE).exists()
    partials = partial_files(cache / FEATURES_FILE)
    assert len(partials) == 1

    summary = run(tiny_dataset, cache)
    assert summary.resumed == 8  # rows reused from the partial file: train's, written before the interruption
    assert counts(summary) == {"train": (0, 8, 0), "val": (4, 0, 0)}
    assert partial_files(cache / FEATURES_FILE) == [] and leftovers(cache) == []

    fresh = tmp_path / "fresh"
    run(tiny_dataset, fresh)
    resumed, clean = read_store(cache), read_store(fresh)
    for split in ("train", "val"):
        assert resumed[split].paths == clean[split].paths
        np.testing.assert_array_equal(resumed[split].features, clean[split].features)


def test_no_partial_file_remains_after_a_successful_run(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    """Partials that cannot be resumed from (unreadable, or from other settings) must not pile up forever."""
    cache = tmp_path / "cache"
    with monkeypatch.context() as patch:
        _fail_on_call(patch, 2, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            run(tiny_dataset, cache, preprocess="notebook")  # leaves a partial made under other settings
    (cache / f"{FEATURES_FILE}.partial-1-1").write_bytes(b"killed while writing")
    assert len(partial_files(cache / FEATURES_FILE)) == 2

    run(tiny_dataset, cache)
    assert partial_files(cache / FEATURES_FILE) == []
    assert leftovers(cache) == []


def _drop_dataset(path: Path, split: str, name: str) -> None:
    import h5py

    with h5py.File(path, "r+") as raw:
        del raw[split][name]


def test_a_previous_file_with_a_damaged_split_is_rebuilt(tiny_dataset, tmp_path, small_inputs):
    """It opens, but its rows cannot be read: re-running extract (what the error says to do) must repair it."""
    cache = tmp_path / "cache"
    run(tiny_dataset, cache)
    _drop_dataset(cache / FEATURES_FILE, "val", "sha256")

    summary = run(tiny_dataset, cache)
    assert summary.rebuild_reason
    assert counts(summary)["val"] == (4, 0, 0)
    assert len(read_store(cache)["val"].paths) == 4


def test_a_damaged_partial_does_not_stop_extract(tiny_dataset, tmp_path, small_inputs, monkeypatch):
    cache = tmp_path / "cache"
    with monkeypatch.context() as patch:
        _fail_on_call(patch, 3, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            run(tiny_dataset, cache)
    [partial] = partial_files(cache / FEATURES_FILE)
    _drop_dataset(partial, "train", "mtimes_ns")  # as a process killed while writing might leave it

    summary = run(tiny_dataset, cache)
    assert counts(summary) == {"train": (8, 0, 0), "val": (4, 0, 0)}
    assert len(read_store(cache)["train"].paths) == 8


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


def test_every_file_is_extracted_or_skipped_counted_by_kind_in_the_summary_file_and_info(
    tiny_dataset, tmp_path, small_inputs
):
    from headstart.features.folder import count_kinds
    from headstart.heads.info import describe_cache

    ants = tiny_dataset / "train" / "ants"
    make_image(ants / "anim.gif", fmt="GIF")
    (ants / "photo.heic").write_bytes(HEIC)
    (ants / "disguised.jpg").write_bytes(HEIC)  # a HEIC photo under a .jpg name: its bytes say what it is
    (ants / "notes.txt").write_text("not an image")
    summary = run(tiny_dataset, tmp_path / "cache")

    train = summary.splits[0]
    assert (train.found, train.extracted, len(train.skipped)) == (12, 8, 4)
    kinds = {"not an image": 1, "not an ImageFolder image": 2, "needs a plugin": 1}
    assert count_kinds(train.skipped) == kinds
    reasons = dict(train.skipped)
    assert "pip install pillow-heif" in reasons["train/ants/disguised.jpg"]
    assert "pillow-heif" in reasons["train/ants/photo.heic"]
    assert read_store(tmp_path / "cache")["skipped"]["train"] == train.skipped
    described = describe_cache(tmp_path / "cache")["features"]["splits"]
    assert described["train"]["skipped"] == 4 and described["train"]["skipped_by_kind"] == kinds
    assert described["val"]["skipped_by_kind"] == {}
