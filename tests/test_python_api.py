"""docs/python-api.md runs as written, and the API's inputs and errors behave as that page says."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from conftest import ROOT, make_dataset

PAGE = ROOT / "docs" / "python-api.md"


def page_code() -> str:
    """The page's python blocks, in order; the first block's "imagenet" weights become "none" (no download here)."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 5
    first = 'weights = "imagenet"'
    assert first in blocks[0]
    blocks[0] = blocks[0].replace(first, 'weights = "none"')
    return "\n".join(blocks)


def test_the_python_api_page_runs_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    make_dataset(tmp_path / "hymenoptera_data", per_class={"train": 6, "val": 3})
    monkeypatch.chdir(tmp_path)
    exec(compile(page_code(), str(PAGE), "exec"), {"__name__": "python_api_page"})
    printed = capsys.readouterr()
    assert "does not exist" in printed.out  # the DatasetError the page catches
    assert "<image 1>" in printed.out and "<image 2>" in printed.out
    assert printed.err == ""  # nothing prints unless asked
    assert (tmp_path / "cache" / "head.pt").is_file() and (tmp_path / "mistakes.csv").is_file()


def test_import_headstart_is_light_and_is_one_package(tmp_path):
    import subprocess

    code = "import sys, headstart; print('torch' in sys.modules, headstart.__version__, headstart.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    torch_loaded, version, where = done.stdout.split()
    assert torch_loaded == "False" and version == "0.1.0"
    assert os.path.samefile(where, ROOT / "__init__.py")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    import headstart

    root = tmp_path_factory.mktemp("api")
    data = make_dataset(root / "data", per_class={"train": 5, "val": 2})
    headstart.extract(data, cache=root / "cache", weights="none")
    headstart.train_head(root / "cache", epochs=2)
    return headstart.Classifier.load(root / "cache" / "head.pt"), data


def test_a_pil_image_an_array_and_its_file_agree(classifier):
    from PIL import Image

    model, data = classifier
    path = sorted((data / "val").rglob("*.jpg"))[0]
    pil = Image.open(path)
    by_path, by_pil, by_array = model.predict([path, pil, np.asarray(pil)])
    assert by_path.source == str(path) and by_pil.source == "<image 1>" and by_array.source == "<image 2>"
    assert by_pil.probabilities == by_array.probabilities
    # The same pixels: a small noise JPEG is decoded alike with or without draft mode.
    assert max(abs(by_path.probabilities[c] - by_pil.probabilities[c]) for c in model.classes) < 1e-5
    assert sum(by_path.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_an_unreadable_file_is_a_result_with_its_error(classifier, tmp_path):
    model, _ = classifier
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    (result,) = model.predict(broken)
    assert result.label is None and result.confidence is None and "not an image" in result.error


@pytest.mark.parametrize(
    "bad, message",
    [(np.zeros((4, 4, 3), dtype=np.float32), "float32 array"), (np.zeros((4, 4, 2), dtype=np.uint8), "(4, 4, 2)")],
)
def test_an_array_that_is_not_an_image_is_refused(classifier, bad, message):
    model, _ = classifier
    with pytest.raises(ValueError, match=re.escape(message)):
        model.predict(bad)


def test_an_unknown_option_names_the_choices(tmp_path):
    import headstart

    with pytest.raises(TypeError, match=r"unknown option\(s\) epoch; TrainConfig takes .*epochs"):
        headstart.train_head(tmp_path, epoch=3)
