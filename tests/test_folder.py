"""features/folder.py: ImageFolder-compatible dataset scans, unlabeled image lists, path text."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import make_dataset, make_image
from torchvision.datasets import ImageFolder

from headstart.features.folder import (
    NOT_AN_IMAGE,
    NOT_IMAGEFOLDER,
    UNLABELED,
    DatasetError,
    count_kinds,
    find_dataset,
    find_images,
    find_labeled_images,
    scan_images,
    skip_kind,
    text_path,
)


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: a scan that loops forever is a test failure, not a stuck suite."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _nested_dataset(root: Path) -> Path:
    """Class folders with sub-folders, upper-case extensions and names whose sort order is easy to get wrong."""
    make_dataset(root, per_class={"train": 2, "val": 1})
    for split in ("train", "val"):
        make_image(root / split / "ants" / "sub" / "deep" / "Z.JPG")
        make_image(root / split / "ants" / "sub" / "b.PNG", fmt="PNG")
        make_image(root / split / "ants" / "sub-x" / "a.jpeg", fmt="JPEG")
        make_image(root / split / "ants" / "Sub" / "c.Jpeg", fmt="JPEG")
        make_image(root / split / "bees" / "UPPER.TIFF", fmt="TIFF")
        make_image(root / split / "bees" / "x.webp", fmt="WEBP")
        make_image(root / split / "bees" / "b.bmp", fmt="BMP")
        make_image(root / split / "bees" / "anim.gif", fmt="GIF")
        (root / split / "bees" / "notes.txt").write_text("not an image")
        (root / split / "bees" / "noext").write_bytes(b"\xff\xd8")
    return root


def test_order_and_classes_match_torchvision_imagefolder(tmp_path):
    root = _nested_dataset(tmp_path / "data")
    dataset = find_dataset(root)
    assert list(dataset.splits) == ["train", "val"]
    for split in ("train", "val"):
        reference = ImageFolder(str(root / split))
        assert dataset.classes == reference.classes == ["ants", "bees"]
        ours = [(str(entry.path), entry.label) for entry in dataset.splits[split]]
        assert ours == reference.samples
        assert len(ours) == {"train": 11, "val": 9}[split]


def test_names_are_relative_to_the_root_and_labels_index_classes(tmp_path):
    root = _nested_dataset(tmp_path / "data")
    entries = find_dataset(root).splits["train"]
    assert [e.name for e in entries[:6]] == [
        "train/ants/ants_0.jpg",
        "train/ants/ants_1.jpg",
        "train/ants/Sub/c.Jpeg",
        "train/ants/sub/b.PNG",
        "train/ants/sub-x/a.jpeg",
        "train/ants/sub/deep/Z.JPG",
    ]
    assert {e.label for e in entries if e.name.startswith("train/ants/")} == {0}
    assert {e.label for e in entries if e.name.startswith("train/bees/")} == {1}
    assert all(e.path == root / e.name for e in entries)


def test_gif_and_txt_are_not_images(tmp_path):
    root = _nested_dataset(tmp_path / "data")
    names = [e.name for e in find_dataset(root).splits["train"]]
    assert not [n for n in names if n.endswith((".gif", ".txt")) or n.endswith("noext")]
    assert "train/bees/UPPER.TIFF" in names and "train/bees/x.webp" in names


def test_test_split_is_scanned_when_present(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 2, "val": 1, "test": 3})
    dataset = find_dataset(root)
    assert {split: len(entries) for split, entries in dataset.splits.items()} == {"train": 4, "val": 2, "test": 6}


def test_val_with_other_classes_is_refused_naming_the_folder(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 2})
    make_dataset(root, classes=("ants", "wasps"), per_class={"val": 1})
    with pytest.raises(DatasetError) as caught:
        find_dataset(root)
    message = str(caught.value)
    assert str(root / "val") in message
    assert "wasps" in message and "bees" in message


def test_one_class_is_refused(tmp_path):
    root = make_dataset(tmp_path / "data", classes=("ants",), per_class={"train": 2, "val": 1})
    with pytest.raises(DatasetError, match="at least 2") as caught:
        find_dataset(root)
    assert str(root / "train") in str(caught.value)


def test_class_folder_without_images_is_refused(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 2})
    (root / "train" / "cats").mkdir()
    (root / "train" / "cats" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="cats"):
        find_dataset(root)


@pytest.mark.parametrize("missing", ["", "train"])
def test_missing_folder_is_refused_with_its_path(tmp_path, missing):
    root = tmp_path / "data"
    if missing:
        root.mkdir()
    with pytest.raises(DatasetError, match="does not exist") as caught:
        find_dataset(root)
    assert str(root / missing if missing else root) in str(caught.value)


def test_a_file_instead_of_a_folder_is_refused_with_its_path(tmp_path):
    root = tmp_path / "data.zip"
    root.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(DatasetError, match="is a file") as caught:
        find_dataset(root)
    assert str(root) in str(caught.value)

    data = make_dataset(tmp_path / "data2", per_class={"train": 2})
    (data / "val").write_text("a file where the val folder should be")
    with pytest.raises(DatasetError, match="is a file") as caught:
        find_dataset(data)
    assert str(data / "val") in str(caught.value)


def test_symlink_loop_does_not_hang_and_files_are_found_once(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 2, "val": 1})
    ants = root / "train" / "ants"
    make_image(ants / "inner" / "deep.jpg")
    (ants / "inner" / "loop").symlink_to(ants, target_is_directory=True)
    (ants / "self").symlink_to(".", target_is_directory=True)
    with deadline(20):
        dataset = find_dataset(root)
        images = find_images([ants])
    names = [e.name for e in dataset.splits["train"] if e.label == 0]
    assert sorted(names) == ["train/ants/ants_0.jpg", "train/ants/ants_1.jpg", "train/ants/inner/deep.jpg"]
    assert len(images) == 3
    assert len({os.path.realpath(e.path) for e in images}) == 3


def test_symlinked_class_folder_is_followed(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 2, "val": 1})
    elsewhere = tmp_path / "elsewhere"
    make_image(elsewhere / "far.jpg")
    (root / "train" / "bees" / "linked").symlink_to(elsewhere, target_is_directory=True)
    names = [e.name for e in find_dataset(root).splits["train"]]
    assert "train/bees/linked/far.jpg" in names


def test_find_images_takes_files_and_folders_recursively_sorted_and_once(tmp_path):
    folder = tmp_path / "imgs"
    b = make_image(folder / "b.jpg")
    make_image(folder / "nested" / "a.PNG", fmt="PNG")
    make_image(folder / "nested" / "anim.gif", fmt="GIF")  # predict reads a GIF's first frame
    (folder / "notes.txt").write_text("x")
    single = make_image(tmp_path / "single.jpg")
    odd = tmp_path / "explicit.gif"
    make_image(odd, fmt="GIF")

    entries = find_images([single, folder, b, folder, odd])
    names = [e.name for e in entries]
    assert names == sorted(names)
    assert names == [
        str(odd),
        str(folder / "b.jpg"),
        str(folder / "nested" / "a.PNG"),
        str(folder / "nested" / "anim.gif"),
        str(single),
    ]
    assert all(e.label == UNLABELED for e in entries)
    assert all(e.path.is_file() for e in entries)


def test_find_images_counts_one_file_given_under_two_spellings_once(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    make_image(folder / "a.jpg")
    monkeypatch.chdir(tmp_path)
    entries = find_images([folder, Path("imgs") / "a.jpg", "imgs/../imgs/a.jpg"])
    assert len(entries) == 1


def test_find_images_missing_path_is_refused(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(DatasetError, match="does not exist") as caught:
        find_images([make_image(tmp_path / "ok.jpg"), missing])
    assert str(missing) in str(caught.value)


def test_find_images_empty_folder_gives_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert find_images([tmp_path / "empty"]) == []


def test_find_labeled_images_labels_by_the_given_class_list(tmp_path):
    folder = tmp_path / "new"
    make_image(folder / "bees" / "b1.jpg")
    make_image(folder / "bees" / "deeper" / "b2.PNG", fmt="PNG")
    make_image(folder / "ants" / "a1.jpg")
    (folder / "ants" / "note.txt").write_text("x")
    entries = find_labeled_images(folder, ["wasps", "ants", "bees"])
    assert [(e.name, e.label) for e in entries] == [
        (str(folder / "ants" / "a1.jpg"), 1),
        (str(folder / "bees" / "b1.jpg"), 2),
        (str(folder / "bees" / "deeper" / "b2.PNG"), 2),
    ]


def test_find_labeled_images_refuses_unknown_classes_and_class_less_folders(tmp_path):
    folder = tmp_path / "new"
    make_image(folder / "ants" / "a.jpg")
    make_image(folder / "hornets" / "h.jpg")
    with pytest.raises(DatasetError, match="hornets") as caught:
        find_labeled_images(folder, ["ants", "bees"])
    assert str(folder) in str(caught.value)

    flat = tmp_path / "flat"
    make_image(flat / "a.jpg")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        find_labeled_images(flat, ["ants", "bees"])
    with pytest.raises(DatasetError, match="does not exist"):
        find_labeled_images(tmp_path / "missing", ["ants", "bees"])


def test_text_path_escapes_bytes_that_are_not_utf8():
    name = os.fsdecode(b"bad\xff.jpg")
    text = text_path(name)
    assert text == "bad\\xff.jpg"
    assert text.encode("utf-8") == b"bad\\xff.jpg"
    assert text_path(Path("fourmi_\u00e9/\u8702.jpg")) == "fourmi_\u00e9/\u8702.jpg"


def test_undecodable_file_name_in_a_dataset_becomes_valid_utf8(tmp_path):
    root = make_dataset(tmp_path / "data", per_class={"train": 1, "val": 1})
    raw = os.fsencode(root / "train" / "ants") + b"/bad\xff.jpg"
    make_image(Path(os.fsdecode(raw)))
    entries = find_dataset(root).splits["train"]
    odd = [e for e in entries if "bad" in e.name]
    assert [e.name for e in odd] == ["train/ants/bad\\xff.jpg"]
    odd[0].name.encode("utf-8")
    assert odd[0].path.is_file()  # the path still opens the real file


def test_real_dataset(real_data):
    dataset = find_dataset(real_data)
    assert dataset.classes == ["ants", "bees"]
    assert len(dataset.splits["train"]) == 244
    assert len(dataset.splits["val"]) == 153
    assert not any(e.name.endswith(".gif") for e in dataset.splits["train"])
    reference = ImageFolder(str(real_data / "train"))
    assert [(str(e.path), e.label) for e in dataset.splits["train"]] == reference.samples


def test_every_file_of_a_labelled_folder_is_read_or_skipped_with_its_reason(tmp_path):
    root = _nested_dataset(tmp_path / "data")
    make_image(root / "train" / "ants" / "photo.heic", fmt="PNG")  # the name is what the scan judges
    dataset = find_dataset(root)
    files = {str(path.relative_to(root)) for path in (root / "train").rglob("*") if path.is_file()}
    read = {entry.name for entry in dataset.splits["train"]}
    skipped = dict(dataset.skipped["train"])
    assert read | set(skipped) == files and not read & set(skipped)
    assert sorted(skipped) == [
        "train/ants/photo.heic",
        "train/bees/anim.gif",
        "train/bees/noext",
        "train/bees/notes.txt",
    ]
    assert skip_kind(skipped["train/bees/anim.gif"]) == NOT_IMAGEFOLDER
    assert "ImageFolder" in skipped["train/bees/anim.gif"]
    assert "pillow-heif" in skipped["train/ants/photo.heic"]
    assert count_kinds(dataset.skipped["train"]) == {NOT_AN_IMAGE: 2, NOT_IMAGEFOLDER: 2}


def test_scan_images_reads_gifs_and_lists_what_it_does_not_read(tmp_path):
    folder = tmp_path / "imgs"
    make_image(folder / "a.gif", fmt="GIF")
    make_image(folder / "b.avif", fmt="PNG")
    (folder / "c.heic").write_bytes(b"x")
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_bytes(b"x")
    entries, skipped = scan_images([folder])
    assert [entry.path.name for entry in entries] == ["a.gif", "b.avif", "c.heic"]
    assert [(Path(name).name, skip_kind(reason)) for name, reason in skipped] == [
        (".DS_Store", NOT_AN_IMAGE),
        ("notes.txt", NOT_AN_IMAGE),
    ]
    assert ".txt extension" in skipped[1][1]


def test_the_real_datasets_gif_is_listed_with_its_reason(real_data):
    skipped = find_dataset(real_data).skipped
    assert skipped["val"] == []
    assert [(name, skip_kind(reason)) for name, reason in skipped["train"]] == [
        ("train/ants/imageNotFound.gif", NOT_IMAGEFOLDER)
    ]
