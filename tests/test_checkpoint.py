"""heads.checkpoint: head.pt round-trips, loads as plain data, and every bad file is a HeadFileError."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from headstart.heads.checkpoint import FORMAT_VERSION, HeadCheckpoint, HeadFileError, load_head, save_head
from headstart.heads.linear import LinearHead

WEIGHTS = {"kind": "file", "name": "/models/resnet18.pth", "sha256": "ab" * 32}
PREPROCESSING = {
    "name": "imagenet",
    "resize": 256,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "interpolation": "bilinear, antialias",
}
TRAIN_CONFIG = {"epochs": 5, "lr": 0.001, "momentum": 0.9, "batch_size": 32, "seed": 3}
METRICS = {
    "epoch": 2,
    "train_loss": 0.5,
    "train_acc": 0.75,
    "val_loss": 0.625,
    "val_acc": 0.5,
    "history": [{"epoch": 1, "train_loss": 0.7, "train_acc": 0.5}, {"epoch": 2, "train_loss": 0.5, "train_acc": 0.75}],
}


def _checkpoint(classes=("ants", "bees", "wasps"), seed: int = 0) -> HeadCheckpoint:
    head = LinearHead(512, len(classes), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        head.bias.copy_(torch.arange(len(classes), dtype=torch.float32))  # a non-zero bias must survive too
    return HeadCheckpoint(
        head, list(classes), "resnet18", dict(WEIGHTS), dict(PREPROCESSING), "bf16", dict(TRAIN_CONFIG), METRICS
    )


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, HeadCheckpoint]:
    checkpoint = _checkpoint()
    path = tmp_path / "head.pt"
    save_head(path, checkpoint, features_file="/cache/features.h5")
    return path, checkpoint


def test_round_trip(saved):
    path, original = saved
    loaded = load_head(path)
    assert isinstance(loaded.head, LinearHead)
    assert torch.equal(loaded.head.weight, original.head.weight)
    assert torch.equal(loaded.head.bias, original.head.bias)
    assert loaded.head.in_features == 512 and loaded.head.out_features == 3
    assert not loaded.head.training
    assert loaded.classes == ["ants", "bees", "wasps"]
    assert loaded.backbone == "resnet18"
    assert loaded.weights == WEIGHTS
    assert loaded.preprocessing == PREPROCESSING
    assert loaded.precision == "bf16"
    assert loaded.train_config == TRAIN_CONFIG
    assert loaded.metrics == METRICS


def test_loaded_head_computes_the_same_outputs(saved):
    path, original = saved
    features = torch.randn(4, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_head(path).head(features), original.head(features))


def test_saved_weights_are_a_copy(tmp_path):
    checkpoint = _checkpoint()
    saved_weight, saved_bias = checkpoint.head.weight.clone(), checkpoint.head.bias.clone()
    save_head(tmp_path / "head.pt", checkpoint)
    with torch.no_grad():
        checkpoint.head.weight.zero_()
        checkpoint.head.bias.zero_()
    loaded = load_head(tmp_path / "head.pt").head
    assert torch.equal(loaded.weight, saved_weight) and torch.equal(loaded.bias, saved_bias)
    assert loaded.bias.tolist() == [0.0, 1.0, 2.0]


def test_file_is_plain_data_for_weights_only_load(saved):
    path, original = saved
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert data["format_version"] == FORMAT_VERSION == 3
    assert data["head_type"] == "linear"
    assert data["head_args"] == {"in_features": 512, "num_classes": 3}
    assert set(data["state_dict"]) == {"weight", "bias"}
    assert torch.equal(data["state_dict"]["weight"], original.head.weight)
    assert data["classes"] == ["ants", "bees", "wasps"]
    assert data["weights"] == WEIGHTS
    assert data["features_file"] == "/cache/features.h5"
    assert data["producer"].startswith("headstart ")
    assert data["created"].endswith("+00:00")
    # The stored arguments rebuild the module, as the format promises.
    rebuilt = LinearHead(**data["head_args"])
    rebuilt.load_state_dict(data["state_dict"])
    assert torch.equal(rebuilt.bias, original.head.bias)


def test_save_leaves_no_temporary_files(saved):
    path, _ = saved
    assert _leftovers(path.parent, {"head.pt"}) == []


def test_save_creates_missing_parent_folder(tmp_path):
    path = tmp_path / "new" / "deeper" / "head.pt"
    save_head(path, _checkpoint())
    assert load_head(path).classes == ["ants", "bees", "wasps"]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle", "pickle-in-dict"])
def test_malicious_pickle_is_refused_unrun(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "head.pt"
    payload = _Payload(marker)
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save({"format_version": 1, "head_type": "linear", "classes": payload}, path)
    with pytest.raises(HeadFileError) as caught:
        load_head(path)
    assert not marker.exists()
    assert str(path) in str(caught.value)
    assert "train-head" in str(caught.value)
    # The payload is real: unpickling it without the guard would have run it.
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))
    assert (tmp_path / "control").exists()


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HeadFileError, match=r"re-run `train-head`") as caught:
        load_head(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all\n", os.urandom(2048)])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "head.pt"
    path.write_bytes(content)
    with pytest.raises(HeadFileError, match=r"re-run `train-head`"):
        load_head(path)


def test_missing_file(tmp_path):
    with pytest.raises(HeadFileError, match=r"does not exist: run `train-head`") as caught:
        load_head(tmp_path / "head.pt")
    assert str(tmp_path / "head.pt") in str(caught.value)


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "head.pt").mkdir()
    with pytest.raises(HeadFileError):
        load_head(tmp_path / "head.pt")


def _stored(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_dict_without_format_version(saved):
    path, _ = saved
    data = _stored(path)
    del data["format_version"]
    torch.save(data, path)
    with pytest.raises(HeadFileError, match="not a headstart head file"):
        load_head(path)


@pytest.mark.parametrize("stored", [torch.zeros(3), [1, 2, 3], "head", {"state_dict": {}}])
def test_not_a_head_dict(tmp_path, stored):
    path = tmp_path / "head.pt"
    torch.save(stored, path)
    with pytest.raises(HeadFileError, match="re-run `train-head`"):
        load_head(path)


def test_future_format_version(saved):
    path, _ = saved
    data = _stored(path)
    data["format_version"] = 99
    torch.save(data, path)
    with pytest.raises(HeadFileError) as caught:
        load_head(path)
    message = str(caught.value)
    assert "99" in message and "format 1 or 2" in message and "re-run `train-head`" in message


@pytest.mark.parametrize("key", ["head_args", "state_dict", "classes", "weights", "preprocessing"])
def test_missing_required_key(saved, key):
    path, _ = saved
    data = _stored(path)
    del data[key]
    torch.save(data, path)
    with pytest.raises(HeadFileError, match=key):
        load_head(path)


def test_other_head_type(saved):
    path, _ = saved
    data = _stored(path)
    data["head_type"] = "mlp"
    torch.save(data, path)
    with pytest.raises(HeadFileError):
        load_head(path)


@pytest.mark.parametrize("change", ["wrong shape", "missing bias", "bad head_args"])
def test_damaged_state(saved, change):
    path, _ = saved
    data = _stored(path)
    if change == "wrong shape":
        data["state_dict"]["weight"] = torch.zeros(3, 100)
    elif change == "missing bias":
        del data["state_dict"]["bias"]
    else:
        data["head_args"] = {"features": 512}
    torch.save(data, path)
    with pytest.raises(HeadFileError, match="re-run `train-head`"):
        load_head(path)


@pytest.mark.parametrize("classes", [["ants", "bees"], 5, "abc"], ids=["too-few", "int", "str"])
def test_classes_must_be_one_name_per_head_output(saved, classes):
    """Two names for a three-output head would make predict index past the list; a non-list is damage too."""
    path, _ = saved
    data = _stored(path)
    data["classes"] = classes
    torch.save(data, path)
    with pytest.raises(HeadFileError, match="re-run `train-head`"):
        load_head(path)


def test_failed_save_keeps_the_old_head_and_leaves_no_temp_files(saved, monkeypatch):
    path, original = saved
    before = path.read_bytes()

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"half a head")  # the failure comes after some bytes were written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        save_head(path, _checkpoint(classes=("x", "y"), seed=5))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_head(path).classes == original.classes
    assert _leftovers(path.parent, {"head.pt"}) == []


def test_interrupted_save_keeps_the_old_head(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def interrupted_save(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_head(path, _checkpoint())
    assert path.read_bytes() == before
    assert _leftovers(path.parent, {"head.pt"}) == []


def test_save_replaces_an_existing_head(saved):
    path, _ = saved
    save_head(path, _checkpoint(classes=("cats", "dogs"), seed=1))
    loaded = load_head(path)
    assert loaded.classes == ["cats", "dogs"]
    assert loaded.head.out_features == 2
    assert _leftovers(path.parent, {"head.pt"}) == []


def test_unknown_model_and_calibration_round_trip_and_format_1_loads_without_them(tmp_path):
    from headstart.heads.trust import fit_unknown

    features = torch.randn(40, 512, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(40) % 3
    unknown = fit_unknown(features, labels, rate=0.1)
    calibration = {
        "temperature": 2.0,
        "folds": 5,
        "val_ece_before": 0.2,
        "val_ece_after": 0.1,
        "uncalibrated": {"weight": torch.ones(3, 512), "bias": torch.zeros(3)},
    }
    checkpoint = _checkpoint()
    checkpoint.unknown, checkpoint.calibration = unknown, calibration
    save_head(tmp_path / "head.pt", checkpoint)
    loaded = load_head(tmp_path / "head.pt")
    assert loaded.unknown.threshold == unknown.threshold and loaded.calibration["temperature"] == 2.0
    assert torch.equal(loaded.unknown.score(features), unknown.score(features))
    data = torch.load(tmp_path / "head.pt", weights_only=True)
    del data["unknown"], data["calibration"]
    torch.save({**data, "format_version": 1}, tmp_path / "old.pt")
    old = load_head(tmp_path / "old.pt")
    assert old.unknown is None and old.calibration is None and torch.equal(old.head.weight, loaded.head.weight)
    torch.save({**data, "unknown": {"method": "magic"}}, tmp_path / "damaged.pt")
    with pytest.raises(HeadFileError, match="unknown-image model"):
        load_head(tmp_path / "damaged.pt")


def test_a_changed_unknown_model_does_not_match_the_digest(tmp_path):
    from headstart.heads.trust import fit_unknown

    features = torch.randn(40, 512, generator=torch.Generator().manual_seed(0))
    checkpoint = _checkpoint()
    checkpoint.unknown = fit_unknown(features, torch.arange(40) % 3, rate=0.1)
    save_head(tmp_path / "head.pt", checkpoint)
    for tamper in (
        lambda record: record.update(threshold=record["threshold"] * 2),
        lambda record: next(iter(record["state"].values())).view(-1)[0].add_(1.0),
    ):
        data = torch.load(tmp_path / "head.pt", weights_only=True)
        tamper(data["unknown"])
        torch.save(data, tmp_path / "tampered.pt")
        with pytest.raises(HeadFileError, match="checksum"):
            load_head(tmp_path / "tampered.pt")


_WITH_UNKNOWN: dict[str, bytes] = {}


def _with_unknown(tmp_path: Path, method: str = "mahalanobis") -> Path:
    """A head with an unknown-image model and a calibration, fitted once per method and copied per test."""
    if method not in _WITH_UNKNOWN:
        _save_with_unknown(tmp_path / "fitted.pt", method)
        _WITH_UNKNOWN[method] = (tmp_path / "fitted.pt").read_bytes()
    (tmp_path / "head.pt").write_bytes(_WITH_UNKNOWN[method])
    return tmp_path / "head.pt"


def _save_with_unknown(path: Path, method: str) -> None:
    from headstart.heads.trust import fit_unknown

    features = torch.randn(40, 512, generator=torch.Generator().manual_seed(0))
    checkpoint = _checkpoint()
    checkpoint.unknown = fit_unknown(features, torch.arange(40) % 3, method=method, rate=0.1)
    checkpoint.calibration = {
        "temperature": 2.0,
        "folds": 5,
        "val_ece_before": 0.2,
        "val_ece_after": 0.1,
        "uncalibrated": {"weight": torch.ones(3, 512), "bias": torch.zeros(3)},
    }
    save_head(path, checkpoint)


def _set(key, value):
    return lambda data: data.__setitem__(key, value)


def _set_in(record, key, value):
    return lambda data: data[record].__setitem__(key, value)


HOSTILE_FIELDS = {
    "precision": (_set("precision", "fp8"), "precision 'fp8' is not one of fp32, bf16"),
    "precision-type": (_set("precision", 16), "precision '16' is not one of"),
    "num_classes-bool": (lambda d: d["head_args"].__setitem__("num_classes", True), "not positive whole numbers"),
    "backbone": (_set("backbone", "resnet9000"), "backbone 'resnet9000' is not one this headstart can build"),
    "backbone-type": (_set("backbone", ["resnet18"]), "is not one this headstart can build"),
    "format-version-float": (_set("format_version", 3.0), "format_version that is not a whole number"),
    "format-version-bool": (_set("format_version", True), "format_version that is not a whole number"),
    "format-version-str": (_set("format_version", "3"), "format_version that is not a whole number"),
    "classes-duplicate": (_set("classes", ["ants", "bees", "ants"]), "class names repeat ('ants')"),
    "classes-tuple": (_set("classes", ("ants", "bees", "wasps")), "classes is not a list of names"),
    "classes-empty-name": (_set("classes", ["ants", "", "wasps"]), "classes is not a list of names"),
    "threshold-nan": (_set_in("unknown", "threshold", float("nan")), "threshold nan is not a finite number"),
    "threshold-str": (_set_in("unknown", "threshold", "high"), "threshold high is not a finite number"),
    "rate": (_set_in("unknown", "rate", 1.5), "rate 1.5 is not a finite number in range"),
    "folds": (_set_in("unknown", "folds", 0), "folds 0 is not a whole number >= 2"),
    "unknown-shape": (
        _set_in("unknown", "state", {"means": torch.zeros(3, 512), "precision": torch.eye(64)}),
        "tensors are {'means': [3, 512], 'precision': [64, 64]}, not",
    ),
    "unknown-nan": (
        _set_in("unknown", "state", {"means": torch.full((3, 512), float("nan")), "precision": torch.eye(512)}),
        "tensors are not finite",
    ),
    "temperature-nan": (_set_in("calibration", "temperature", float("nan")), "temperature nan is not a finite"),
    "temperature-str": (_set_in("calibration", "temperature", "warm"), "temperature warm is not a finite"),
    "temperature-zero": (_set_in("calibration", "temperature", 0.0), "temperature 0.0 is not a finite number > 0"),
    "uncalibrated-shape": (
        _set_in("calibration", "uncalibrated", {"weight": torch.ones(2, 512), "bias": torch.zeros(2)}),
        "uncalibrated head does not have the head's shapes",
    ),
    "weights-kind": (_set_in("weights", "kind", "http"), "weights kind 'http' is not one of"),
    "weights-sha256": (_set_in("weights", "sha256", "../etc"), "sha256 is not 64 hex digits"),
    "preprocessing": (_set_in("preprocessing", "mean", [float("nan")] * 3), "preprocessing"),
    "preprocessing-other-backbone": (
        _set("preprocessing", {**PREPROCESSING, "name": "resnet50", "resize": 232}),
        "is not one a resnet18 head is trained with",
    ),
    "train_config": (_set("train_config", [1, 2]), "train_config is not a dict"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FIELDS))
def test_every_field_is_checked_on_load_even_with_a_matching_digest(tmp_path, name):
    """A crafted head.pt whose digest was recomputed: each bad field is still one line naming the file and the fix."""
    from headstart.heads.checkpoint import head_digest

    path = _with_unknown(tmp_path)
    assert load_head(path).calibration["temperature"] == 2.0  # the untouched file loads
    change, expected = HOSTILE_FIELDS[name]
    data = _stored(path)
    change(data)
    if isinstance(data["state_dict"], dict) and isinstance(data["classes"], list):
        data["digest"] = head_digest(data["state_dict"], data["classes"], data["unknown"])
    torch.save(data, path)
    with pytest.raises(HeadFileError) as caught:
        load_head(path)
    message = str(caught.value)
    assert expected in message and str(path) in message and "re-run `train-head`" in message
    assert "\n" not in message


def test_a_knn_unknown_model_with_k_zero_is_refused(tmp_path):
    from headstart.heads.checkpoint import head_digest

    path = _with_unknown(tmp_path, method="knn")
    assert load_head(path).unknown.method == "knn"
    data = _stored(path)
    data["unknown"]["state"]["k"] = torch.tensor([0])
    data["digest"] = head_digest(data["state_dict"], data["classes"], data["unknown"])
    torch.save(data, path)
    with pytest.raises(HeadFileError, match="k is 0"):
        load_head(path)
