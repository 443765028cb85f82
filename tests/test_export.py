"""heads/export: each format round-trips to predict's probabilities, runs without headstart, and fails cleanly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_error, assert_ok, run
from conftest import ROOT, make_dataset, make_image
from test_faults import command, private_mounts, run_on_tmpfs  # noqa: F401 -- private_mounts is a fixture

from headstart.features.files.cachedir import HEAD_FILE
from headstart.features.files.outputs import OutputError
from headstart.features.folder import ImageEntry
from headstart.heads import PredictConfig, Predictor
from headstart.heads.export import ExportConfig, ExportError, export_head
from headstart.heads.export.examples import caller_example

HEADSTART_MODULES = {"torchvision", "features", "heads", "cli"}


@dataclass
class Cache:
    cache: Path
    data: Path
    photo: Path  # a large JPEG: decoded at reduced scale, resized off-square, cropped


def _trained_cache(root: Path, weights_file: Path, *options) -> Cache:
    data = make_dataset(root / "data", classes=("ants", "bees", "wasps"))
    photo = make_image(data / "val" / "bees" / "photo.jpg", size=(600, 450), seed=99)
    cache = root / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", weights_file, "--workers", 0, *options))
    assert_ok(run("train-head", "--cache", cache, "--epochs", 3))
    return Cache(cache, data, photo)


@pytest.fixture(scope="module")
def trained(weights_file, tmp_path_factory) -> Cache:
    return _trained_cache(tmp_path_factory.mktemp("export"), weights_file)


@pytest.fixture(scope="module")
def predictor(trained) -> Predictor:
    return Predictor.load(trained.cache / HEAD_FILE, PredictConfig(device="cpu", workers=0))


def _predicted(predictor: Predictor, *paths: Path) -> np.ndarray:
    return np.stack([row.probabilities for row in predictor.predict([ImageEntry(p, str(p)) for p in paths])])


def _run_example(export_format: str, model: Path, image: Path, workdir: Path) -> dict[str, float]:
    """docs/export.md's caller script in a fresh interpreter outside the project; it must not import headstart."""
    script = workdir / "classify.py"
    script.write_text(caller_example(export_format))
    check = (
        f"import runpy, sys; sys.argv = ['classify.py', {str(model)!r}, {str(image)!r}]; "
        "runpy.run_path('classify.py', run_name='__main__'); "
        "print(sorted({name.split('.')[0] for name in sys.modules} & %r))" % HEADSTART_MODULES
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    probabilities, imported = result.stdout.strip().splitlines()
    return ast.literal_eval(probabilities), ast.literal_eval(imported)


def test_torchscript_round_trip_runs_with_torch_alone(trained, predictor, tmp_path):
    out = tmp_path / "classifier.pt"
    summary = export_head(ExportConfig(out=out, format="torchscript", cache=trained.cache))
    assert summary.paths == [out] and summary.sizes == [out.stat().st_size]
    assert summary.images == 7 and summary.difference <= 1e-4

    extra = {"headstart.json": ""}
    model = torch.jit.load(str(out), _extra_files=extra)
    metadata = json.loads(extra["headstart.json"])
    assert metadata["classes"] == ["ants", "bees", "wasps"] and metadata["format_version"] == 1
    assert metadata["input"]["shape"] == [None, 3, 224, 224] and metadata["normalized_inside"]
    assert metadata["weights"]["sha256"] and metadata["producer"].startswith("headstart ")

    probabilities, imported = _run_example("torchscript", out, trained.photo, tmp_path)
    assert imported == []  # torch and Pillow only: no torchvision, no headstart
    assert list(probabilities) == ["ants", "bees", "wasps"]
    np.testing.assert_allclose(list(probabilities.values()), _predicted(predictor, trained.photo)[0], atol=1e-4)
    del model


def test_onnx_round_trip_in_onnxruntime_with_any_batch(trained, predictor, tmp_path):
    import onnx
    import onnxruntime

    out = tmp_path / "classifier.onnx"
    summary = export_head(ExportConfig(out=out, format="onnx", cache=trained.cache))
    assert summary.difference <= 1e-4 and summary.metadata.onnx_opset == 18
    assert [opset.version for opset in onnx.load(str(out)).opset_import if opset.domain == ""] == [18]

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["headstart"])
    assert metadata["onnx_opset"] == 18 and metadata["classes"] == ["ants", "bees", "wasps"]
    images = sorted((trained.data / "val").rglob("*.jpg"))
    assert len(images) == 7
    expected = _predicted(predictor, *images)
    from headstart.heads.export.verify import model_inputs

    _, inputs = model_inputs([ImageEntry(p, str(p)) for p in images], predictor.preprocessing)
    for batch in (1, 7):
        got = session.run(None, {"images": inputs[:batch]})[0]
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected[:batch], atol=1e-4)

    probabilities, _ = _run_example("onnx", out, trained.photo, tmp_path)
    np.testing.assert_allclose(list(probabilities.values()), expected[images.index(trained.photo)], atol=1e-4)


def test_torchvision_state_dict_loads_strict(trained, predictor, tmp_path, weights_file):
    from torchvision.models import resnet18

    out = tmp_path / "classifier.pth"
    result = run("export", "--cache", trained.cache, "--format", "torchvision", "--out", out)
    assert_ok(result)
    assert "equal to predict on 7 images within" in result.output
    model = resnet18(num_classes=3)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    torch.testing.assert_close(model.fc.weight, predictor.checkpoint.head.weight)
    metadata = json.loads((tmp_path / "classifier.pth.json").read_text())
    assert metadata["classes"] == ["ants", "bees", "wasps"] and not metadata["normalized_inside"]
    assert metadata["weights"]["name"] == weights_file.name  # the file's bare name: no path of this machine
    assert str(weights_file.parent) not in (tmp_path / "classifier.pth.json").read_text()

    probabilities, _ = _run_example("torchvision", out, trained.photo, tmp_path)
    np.testing.assert_allclose(list(probabilities.values()), _predicted(predictor, trained.photo)[0], atol=1e-4)


def test_notebook_bf16_head_exports_its_own_mean_std_and_precision(weights_file, tmp_path):
    # One cache for both (extracting is the slow part): the notebook's mean and std, and a bf16 backbone.
    trained = _trained_cache(tmp_path, weights_file, "--preprocess", "notebook", "--precision", "bf16")
    out = tmp_path / "notebook.pt"
    summary = export_head(ExportConfig(out=out, format="torchscript", cache=trained.cache))
    assert summary.tolerance == 1e-3
    assert summary.difference <= 1e-4  # the bf16 autocast is in the file: it computes as predict does
    extra = {"headstart.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    metadata = json.loads(extra["headstart.json"])
    preprocessing = metadata["preprocessing"]
    assert preprocessing["name"] == "notebook" and preprocessing["mean"] == preprocessing["std"] == [0.5] * 3
    assert preprocessing["resize"] == [224, 224] and preprocessing["crop"] is None
    assert metadata["head_precision"] == metadata["compute_precision"] == "bf16"


def test_a_mismatching_export_is_not_written(trained, tmp_path, monkeypatch):
    from headstart.heads.export import runner
    from headstart.heads.export.classifier import build_classifier

    def nudged(predictor, bf16, plain):
        classifier = build_classifier(predictor, bf16, plain)
        classifier.head = torch.nn.Linear(512, 3)  # another head: the probabilities differ
        return classifier

    monkeypatch.setattr(runner, "build_classifier", nudged)
    out = tmp_path / "classifier.pth"
    out.write_bytes(b"previous export")
    expected = r"differs from predict by \d.* \(over 7 images; tolerance 0.0001\): .* was not written"
    with pytest.raises(ExportError, match=expected):
        export_head(ExportConfig(out=out, format="torchvision", cache=trained.cache))
    assert out.read_bytes() == b"previous export"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["classifier.pth"]


@pytest.mark.parametrize(
    "name, export_format", [("head.pt", "torchscript"), ("features.h5", "onnx"), ("metrics", "torchvision")]
)
def test_refuses_to_overwrite_the_caches_own_files(trained, name, export_format):
    before = {path.name: path.read_bytes() for path in trained.cache.iterdir() if path.is_file()}
    with pytest.raises(OutputError, match="one of headstart's own files"):
        export_head(ExportConfig(out=trained.cache / name, format=export_format, cache=trained.cache))
    assert {path.name: path.read_bytes() for path in trained.cache.iterdir() if path.is_file()} == before


def test_missing_extra_is_one_clear_error(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails as if not installed
    monkeypatch.delitem(sys.modules, "headstart.heads.export.to_onnx", raising=False)
    result = run("export", "--cache", trained.cache, "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert_error(result, "--format onnx needs onnx, onnxscript and onnxruntime", "pip install -e '.[export]'")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_head_is_one_clear_error(tmp_path):
    result = run("export", "--cache", tmp_path / "empty", "--out", tmp_path / "x.pt")
    assert_error(result, "head.pt does not exist", "train-head")


@pytest.mark.parametrize(
    "args, fragment",
    [(("--format", "keras", "--out", "x"), "'keras' is not one of"), (("--format", "onnx"), "Missing option '--out'")],
)
def test_usage_errors(args, fragment):
    result = run("export", *args)
    assert result.exit_code == 2 and fragment in result.output


def test_example_prints_the_callers_script():
    result = run("export", "--example", "--format", "onnx")
    assert_ok(result)
    assert result.output == caller_example("onnx")


def test_readme_shows_the_tested_torchscript_script():
    assert textwrap.indent(caller_example("torchscript"), "    ") in (ROOT / "docs" / "export.md").read_text()


def test_no_images_to_verify_on(trained, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no images to verify the export on in .*empty: pass a folder of images"):
        export_head(ExportConfig(out=tmp_path / "x.pt", cache=trained.cache, images=tmp_path / "empty"))
    assert not (tmp_path / "x.pt").exists()


BYPASS_ROOM_CHECK = (
    "import sys; import headstart.heads.export.runner as runner; runner.ensure_room = lambda *args: None; "
    "from headstart.cli import main; sys.argv = ['headstart', *sys.argv[1:]]; main()"
)


@pytest.mark.usefixtures("private_mounts")
@pytest.mark.parametrize(
    "export_format, checked",
    [
        ("torchscript", True),
        ("torchscript", False),
        ("onnx", True),
        pytest.param("onnx", False, marks=pytest.mark.long),  # onnx.save writes from Python: an OSError already
    ],
    ids=["torchscript-checked", "torchscript-write-fails", "onnx-checked", "onnx-write-fails"],
)
def test_a_full_disk_is_one_line_and_leaves_no_file(trained, tmp_path, export_format, checked):
    """On a 4 MiB tmpfs (the model is tens of MB): refused before writing; and were the check wrong, the failed
    write is still one line, exit 1, the temporary file removed (TorchScript's own writer aborted the process)."""
    if export_format == "onnx":
        pytest.importorskip("onnxruntime")
    args = ["export", "--cache", trained.cache, "--format", export_format, "--out", tmp_path / "mnt" / "model"]
    argv = command(*args) if checked else [sys.executable, "-c", BYPASS_ROOM_CHECK, *map(str, args)]
    outcome, files = run_on_tmpfs(tmp_path, {}, argv, size_kb=4096, free_kb=None)
    assert outcome.code == 1, outcome
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in outcome.stderr, outcome.stderr
    expected = "not enough free space to write" if checked else "No space left on device"
    assert expected in errors[0] and str(tmp_path / "mnt" / "model") in errors[0], errors[0]
    assert files == {}  # no temporary file, no half-written model


def _awkward_images(folder: Path) -> list[Path]:
    """Images whose pixels need more than convert("RGB"): 16-bit, CMYK, palette with transparency, alpha, grey with
    alpha, an EXIF rotation, a GIF."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(rng.integers(0, 65536, (40, 56)).astype(np.uint16)).save(folder / "sixteen.png")
    Image.fromarray(rng.integers(0, 65536, (40, 56)).astype(np.uint16)).save(folder / "sixteen.tif")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png", transparency=3)
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (40, 56), dtype=np.uint8)])).save(folder / "alpha.png")
    Image.fromarray(rgb[..., 0]).convert("LA").save(folder / "grey_alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(rgb).convert("P").save(folder / "frame.gif")
    return sorted(folder.iterdir())


def test_the_example_scripts_decode_awkward_images_as_predict_does(tmp_path):
    """The scripts' shared decode, run on each image, gives predict's pixels exactly (features/images.py)."""
    from PIL import Image, ImageOps

    from headstart.features.images import decode_image
    from headstart.heads.export.examples import _DECODE

    for path in _awkward_images(tmp_path):
        scope = {"Image": Image, "ImageOps": ImageOps, "meta": {"preprocessing": {"resize": 256}}}
        scope["sys"] = type("Sys", (), {"argv": ["classify.py", "model", str(path)], "byteorder": sys.byteorder})
        exec(_DECODE, scope)
        np.testing.assert_array_equal(np.asarray(scope["image"]), np.asarray(decode_image(path.read_bytes(), 256)))


@pytest.mark.long  # an export and a fresh interpreter: about 45 s on a loaded machine
def test_the_torchscript_example_gives_predicts_probabilities_on_a_16_bit_image(trained, predictor, tmp_path):
    out = tmp_path / "classifier.pt"
    export_head(ExportConfig(out=out, format="torchscript", cache=trained.cache))
    image = _awkward_images(tmp_path / "awkward")[-1]  # sixteen.tif (the issue saw 0.817 against predict's 0.564)
    assert image.name == "sixteen.tif"
    probabilities, _ = _run_example("torchscript", out, image, tmp_path)
    np.testing.assert_allclose(list(probabilities.values()), _predicted(predictor, image)[0], atol=1e-4)
