"""features/backbone.py: weights from a file, random init or torchvision's cache; the frozen forward pass."""

from __future__ import annotations

import hashlib
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from conftest import make_image
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18, resnet34

from headstart.features.backbone import DeviceError, WeightsError, load_backbone, pick_device
from headstart.features.images import build_transform, decode_image, read_file
from headstart.features.provenance import PREPROCESSINGS

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> torch.Tensor:
    """Two preprocessed images; each forward pass costs about a second on a small CPU, so tests share them."""
    folder = tmp_path_factory.mktemp("images")
    transform = build_transform(PREPROCESSINGS["imagenet"])
    paths = [make_image(folder / f"{i}.jpg", size=(60 + 10 * i, 45), seed=i) for i in range(2)]
    return torch.stack([transform(decode_image(read_file(p)[0])) for p in paths])


@pytest.fixture(scope="module")
def file_features(weights_file, batch) -> torch.Tensor:
    """The batch's features through load_backbone(weights_file)."""
    return load_backbone(str(weights_file), CPU).features(batch)


def torchvision_features(state: dict, batch: torch.Tensor) -> torch.Tensor:
    model = resnet18(weights=None)
    model.load_state_dict(state)
    model.fc = nn.Identity()
    model.eval()
    with torch.no_grad():
        return model(batch)


def test_weights_file_features_equal_torchvision_forward(weights_file, batch, file_features):
    ours = file_features
    reference = torchvision_features(torch.load(weights_file, weights_only=True), batch)
    assert ours.shape == (2, 512) and ours.dtype == torch.float32 and ours.device == CPU
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)
    assert not torch.allclose(ours[0], ours[1])  # different images, different features


def test_weights_file_identity(weights_file):
    identity = load_backbone(str(weights_file), CPU).identity
    assert identity.kind == "file"
    assert identity.sha256 == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert identity.name == str(weights_file.resolve())


def test_backbone_is_frozen_and_in_eval_mode(weights_file):
    model = load_backbone(str(weights_file), CPU).model
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert isinstance(model.fc, nn.Identity)


def test_the_fc_in_the_file_is_ignored(weights_file, tmp_path, batch, file_features):
    state = torch.load(weights_file, weights_only=True)
    state["fc.weight"] = torch.randn(2, 512)  # a fine-tuned two-class head: another shape entirely
    state["fc.bias"] = torch.randn(2)
    other = tmp_path / "finetuned.pth"
    torch.save(state, other)
    with_other_fc = load_backbone(str(other), CPU).features(batch)
    torch.testing.assert_close(with_other_fc, file_features, rtol=0, atol=0)


def test_random_init_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = load_backbone("none", CPU)
    first_state = first.model.state_dict()  # the network may be built on first use: build it now
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(2)
    second_state = load_backbone("none", CPU).model.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, value in first_state.items():
        assert torch.equal(value, second_state[name]), name
    assert first.identity.kind == "none" and first.identity.sha256 == ""
    assert "NOT pretrained" in first.identity.describe()


def test_random_init_differs_from_the_weights_file(batch, file_features):
    random = load_backbone("none", CPU).features(batch)
    assert random.shape == file_features.shape
    assert not torch.allclose(random, file_features, atol=1e-3)


def test_bf16_features_are_float32_and_close_to_fp32(weights_file, batch, file_features):
    fp32 = file_features
    bf16 = load_backbone(str(weights_file), CPU, precision="bf16").features(batch)
    assert bf16.dtype == torch.float32 and bf16.shape == (2, 512)
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.99


# --- files that are not ResNet18 weights ------------------------------------------------------------------------


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="does not exist") as caught:
        load_backbone(str(missing), CPU)
    assert str(missing) in str(caught.value)


def _save_text(path: Path) -> None:
    path.write_text("these are not weights\n")


def _save_list(path: Path) -> None:
    torch.save([torch.zeros(2), torch.ones(2)], path)


def _save_plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(["a", "list"], protocol=2))


def _save_checkpoint_dict(path: Path) -> None:
    torch.save({"epoch": 3, "state_dict": resnet18(weights=None).state_dict()}, path)


@pytest.mark.parametrize(
    ("save", "expected"),
    [
        (_save_text, "cannot read weights file"),
        (_save_plain_pickle, "cannot read weights file"),
        (_save_list, "is not a state_dict"),
        (_save_checkpoint_dict, "is not a state_dict"),
    ],
    ids=["text", "pickle", "list-of-tensors", "nested-checkpoint"],
)
def test_files_that_are_not_state_dicts(tmp_path, save, expected):
    path = tmp_path / "weights.pth"
    save(path)
    with pytest.raises(WeightsError, match=expected) as caught:
        load_backbone(str(path), CPU)
    assert str(path) in str(caught.value)
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_whole_pickled_model_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(nn.Linear(3, 2), path)  # needs pickle to load: refused by weights_only
    with pytest.raises(WeightsError, match="cannot read weights file") as caught:
        load_backbone(str(path), CPU)
    assert str(path) in str(caught.value)


def _resnet34_state() -> dict:
    return resnet34(weights=None).state_dict()


def _linear_state() -> dict:
    return nn.Linear(512, 2).state_dict()


def _one_channel_resnet18() -> dict:
    state = resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    return state


@pytest.mark.parametrize(
    ("state", "detail"),
    [
        (_resnet34_state, "is a resnet34 state_dict (512-d features), not a resnet18 one"),  # named: it fits one
        (_linear_state, "bn1."),
        (dict, "missing"),
        (_one_channel_resnet18, "conv1.weight"),
    ],
    ids=["resnet34", "linear", "empty", "wrong-shape"],
)
def test_other_architectures_are_refused_before_any_work(tmp_path, state, detail):
    path = tmp_path / "other.pth"
    torch.save(state(), path)
    with pytest.raises(WeightsError, match=r"(is not a|not a) resnet18 (state_dict|one)") as caught:
        load_backbone(str(path), CPU)
    message = str(caught.value)
    assert detail in message
    assert str(path) in message
    assert len(message) < 400 and "\n" not in message


def test_state_dict_without_num_batches_tracked_loads(weights_file, tmp_path, batch, file_features):
    """Checkpoints saved before PyTorch 0.4.1, or rebuilt as plain dicts, lack these buffers; torch's strict
    load_state_dict fills them in, so a check run before it must accept such files too."""
    state = torch.load(weights_file, weights_only=True)
    old_style = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    assert len(old_style) < len(state)
    path = tmp_path / "old-style.pth"
    torch.save(old_style, path)
    reference = resnet18(weights=None)
    reference.load_state_dict(old_style, strict=True)  # torch's own rule

    features = load_backbone(str(path), CPU).features(batch)
    torch.testing.assert_close(features, file_features, rtol=0, atol=1e-4)


# --- torchvision's ImageNet weights, offline ---------------------------------------------------------------------


class Hub:
    def __init__(self, path: Path):
        self.path = path
        self.attempts: list[tuple] = []

    @property
    def cached(self) -> Path:
        return self.path / "checkpoints" / "resnet18-f37072fd.pth"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Hub:
    """An empty torch hub folder, and no network: a download attempt is recorded and fails."""
    hub = Hub(tmp_path / "hub")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub.path))

    def offline(url, dst, *args, **kwargs):
        hub.attempts.append((url, dst, kwargs.get("hash_prefix")))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return hub


def test_imagenet_without_cache_or_network_says_to_use_weights(hub):
    assert torch.hub.get_dir() == str(hub.path)
    with pytest.raises(WeightsError) as caught:
        load_backbone("imagenet", CPU, progress=False)
    message = str(caught.value)
    assert "--weights" in message and "name resolution" in message
    assert hub.attempts == [(ResNet18_Weights.IMAGENET1K_V1.url, str(hub.cached), "f37072fd")]
    assert not hub.cached.exists()


def test_imagenet_download_with_a_bad_hash_says_to_use_weights(hub, monkeypatch):
    def corrupted(url, dst, *args, **kwargs):
        raise RuntimeError('invalid hash value (expected "f37072fd", got "0123abcd")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", corrupted)
    with pytest.raises(WeightsError, match="--weights"):
        load_backbone("imagenet", CPU, progress=False)


def test_imagenet_cached_file_with_wrong_hash_says_delete(hub, weights_file):
    cached = hub.cached
    cached.parent.mkdir(parents=True)
    cached.write_bytes(weights_file.read_bytes())  # a loadable ResNet18, but not the published file
    with pytest.raises(WeightsError) as caught:
        load_backbone("imagenet", CPU, progress=False)
    message = str(caught.value)
    assert str(cached) in message and "delete" in message
    assert hub.attempts == []


def test_imagenet_cached_file_with_right_hash_loads_offline(hub, weights_file, monkeypatch, batch, file_features):
    sha256 = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    name = f"resnet18-{sha256[:8]}.pth"
    monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1.value, "url", f"https://download.pytorch.org/models/{name}")
    (hub.path / "checkpoints").mkdir(parents=True)
    (hub.path / "checkpoints" / name).write_bytes(weights_file.read_bytes())

    backbone = load_backbone("imagenet", CPU, progress=False)
    assert hub.attempts == []
    assert backbone.identity.kind == "torchvision"
    assert backbone.identity.name == "ResNet18_Weights.IMAGENET1K_V1"
    assert backbone.identity.sha256 == sha256
    assert backbone.identity.same_weights(load_backbone(str(weights_file), CPU).identity)
    torch.testing.assert_close(backbone.features(batch), file_features, rtol=0, atol=0)


# --- pick_device -------------------------------------------------------------------------------------------------


def test_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device"):
        pick_device("cuda")
    with pytest.raises(DeviceError):
        pick_device("cuda:0")
    assert pick_device("auto") == CPU
    assert pick_device("cpu") == CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu.sh runs it there)")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("bf16", 0.1)])
def test_the_engine_on_a_gpu_gives_the_cpus_features(weights_file, tmp_path, precision, tolerance):
    from headstart.features.engines.local import LocalEngine
    from headstart.features.folder import find_images

    for index in range(40):
        make_image(tmp_path / "imgs" / f"{index:02d}.jpg", size=(300 + index, 200), seed=index)
    entries = find_images([tmp_path / "imgs"])

    def features(device: str):
        backbone = load_backbone(str(weights_file), torch.device(device), precision)
        batches = LocalEngine(device=device, workers=2).embed(entries, backbone, PREPROCESSINGS["imagenet"])
        return torch.cat([torch.from_numpy(batch.features) for batch in batches])

    on_gpu, on_cpu = features("cuda"), features("cpu")
    assert on_gpu.shape == (40, 512)
    assert (on_gpu - on_cpu).abs().max() <= tolerance  # fp32: no TF32 convolutions
