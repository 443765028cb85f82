"""features/fold.py and the folded backbone, compiled or (bf16 on a CPU) prepacked: torchvision's own features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import headstart.features.backbone as backbone_module
import headstart.features.compiled as compiled_module
from headstart.features.backbone import load_backbone
from headstart.features.batchnorm import fold_batchnorm
from headstart.features.folder import find_dataset
from headstart.features.images import build_transform, decode_image, read_file
from headstart.features.prepacked import PrepackedResNet, prepacking_available
from headstart.features.provenance import PREPROCESSINGS
from headstart.features.store import FORMAT_VERSION

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def real_batch(real_data) -> torch.Tensor:
    """Eight hymenoptera val images (four of each class), preprocessed as extract does."""
    preprocessing = PREPROCESSINGS["imagenet"]
    transform = build_transform(preprocessing)
    entries = find_dataset(real_data).splits["val"]
    chosen = entries[:4] + entries[-4:]
    return torch.stack([transform(decode_image(read_file(e.path)[0], preprocessing.draft_size)) for e in chosen])


@pytest.fixture(scope="module")
def trained_like_weights(tmp_path_factory) -> Path:
    """A ResNet18 whose BatchNorm layers hold statistics like a trained network's (not the identity of a fresh one),
    so folding has real work to do."""
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    model = resnet18(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(channels, generator=generator) * 2 + 0.2)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(channels, generator=generator) * 0.1)
    path = tmp_path_factory.mktemp("weights") / "trained-like.pth"
    torch.save(model.state_dict(), path)
    return path


def torchvision_eager(weights: Path, batch: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    model = resnet18(weights=None)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.fc = nn.Identity()
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model(batch).float()


@pytest.mark.parametrize("which", ["seeded", "trained-like"])
def test_folded_features_equal_torchvision_eager_on_real_images(which, weights_file, trained_like_weights, real_batch):
    weights = weights_file if which == "seeded" else trained_like_weights
    backbone = load_backbone(str(weights), CPU)
    ours = backbone.features(real_batch)
    assert backbone.forward == "batchnorm folded" and not any(
        isinstance(m, nn.BatchNorm2d) for m in backbone.model.modules()
    )
    torch.testing.assert_close(ours, torchvision_eager(weights, real_batch), rtol=0, atol=1e-4)


def test_folded_bf16_features_stay_close_to_fp32(trained_like_weights, real_batch):
    reference = torchvision_eager(trained_like_weights, real_batch)
    bf16 = load_backbone(str(trained_like_weights), CPU, precision="bf16").features(real_batch)
    assert bf16.dtype == torch.float32
    assert nn.functional.cosine_similarity(bf16, reference).min() > 0.999


@pytest.mark.skipif(not prepacking_available(), reason="oneDNN has no bf16 instructions on this CPU")
def test_bf16_on_a_cpu_runs_prepacked_and_is_as_close_to_fp32_as_autocast(trained_like_weights, real_batch):
    reference = torchvision_eager(trained_like_weights, real_batch)
    autocast = torchvision_eager(trained_like_weights, real_batch, bf16=True)
    backbone = load_backbone(str(trained_like_weights), CPU, precision="bf16")
    ours = backbone.features(real_batch)
    assert torch.equal(ours, PrepackedResNet(backbone.model)(real_batch))  # what the backbone ran
    error, autocast_error = (ours - reference).abs().max(), (autocast - reference).abs().max()
    assert nn.functional.cosine_similarity(ours, reference).min() >= 0.9999 and error <= 1.25 * autocast_error
    assert torch.equal(PrepackedResNet(backbone.model)(real_batch[:1])[0], ours[0])  # a row does not hang on its batch


def test_bf16_without_prepacking_runs_under_autocast(monkeypatch, trained_like_weights, real_batch):
    monkeypatch.setattr(backbone_module, "prepacking_available", lambda: False)
    backbone = load_backbone(str(trained_like_weights), CPU, precision="bf16")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = backbone.model(real_batch.contiguous(memory_format=torch.channels_last)).float()
    assert torch.equal(backbone.features(real_batch), autocast)


def test_prepacking_refuses_a_network_with_its_batchnorm():
    model = resnet18(weights=None).eval()
    model.fc = nn.Identity()
    with pytest.raises(ValueError, match="folded"):
        PrepackedResNet(model)


def test_fold_replaces_every_batchnorm_of_resnet18():
    model = resnet18(weights=None).eval()
    assert fold_batchnorm(model) == 20
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model) == 0  # nothing left to fold


def test_fold_refuses_a_network_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(resnet18(weights=None))


# --- --compile: torch.compile itself takes tens of seconds here, so these tests stand in for it ------------------


def test_compiled_forward_pads_a_short_batch_to_the_first_batch_size(monkeypatch, weights_file, real_batch):
    shapes = []

    def fake_compile(model, **options):
        def forward(batch):
            shapes.append(tuple(batch.shape))
            return model(batch)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    compiled = load_backbone(str(weights_file), CPU, compile=True)
    eager = load_backbone(str(weights_file), CPU)
    first, short = compiled.features(real_batch[:5]), compiled.features(real_batch[5:])
    assert shapes == [(5, 3, 224, 224), (5, 3, 224, 224)]
    torch.testing.assert_close(torch.cat([first, short]), eager.features(real_batch), rtol=0, atol=1e-4)


def test_a_compile_failure_falls_back_to_the_folded_network_with_one_warning(monkeypatch, weights_file, real_batch):
    def broken_compile(model, **options):
        def forward(batch):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\n\nCommand:\ng++ ... (pages more)")

        return forward

    monkeypatch.setattr(torch, "compile", broken_compile)
    warnings: list[str] = []
    backbone = load_backbone(str(weights_file), CPU, compile=True, on_warning=warnings.append)
    features = backbone.features(real_batch[:2])
    backbone.features(real_batch[2:4])
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("--compile failed, running the folded eager network instead: InductorError")
    torch.testing.assert_close(features, load_backbone(str(weights_file), CPU).features(real_batch[:2]), rtol=0, atol=0)


def test_first_line_of_a_long_message():
    assert compiled_module.first_line("\n\n  first  \nsecond") == "first"
    assert len(compiled_module.first_line("x" * 500)) == 200


# --- the features file records the folded network; a cache made before folding is still reused ----------------


def _broken_compile(model, **options):
    def forward(batch):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\n(pages more)")

    return forward


def test_extract_records_folding_and_reuses_a_cache_made_without_it(tiny_dataset, tmp_path, weights_file):
    import h5py

    from headstart.features import ExtractConfig, FeatureStore, extract_features

    config = ExtractConfig(data=tiny_dataset, cache=tmp_path / "cache", weights=str(weights_file), workers=0)
    extract_features(config)
    path = tmp_path / "cache" / "features.h5"
    with FeatureStore(path) as store:
        assert store.header.forward == "batchnorm folded"
        before = store.read("train").features
    with h5py.File(path, "r+") as old_style:  # as headstart wrote it before folding: format 1, no forward attribute
        del old_style.attrs["forward"]
        old_style.attrs["format_version"] = 1
    with FeatureStore(path) as store:
        assert store.header.forward == "torchvision eager"
        assert store.header.format_version == 1

    summary = extract_features(config)
    assert summary.rebuild_reason is None
    assert [split.extracted for split in summary.splits] == [0, 0]
    with FeatureStore(path) as store:
        assert store.header.forward == "batchnorm folded"
        assert store.header.format_version == FORMAT_VERSION  # rewritten in the current format
        assert (store.read("train").features == before).all()


def test_cli_compile_failure_is_a_warning_not_an_error(tiny_dataset, tmp_path, weights_file, monkeypatch):
    from cli_helpers import assert_ok, run

    monkeypatch.setattr(torch, "compile", _broken_compile)
    cache = tmp_path / "cache"
    wide = {"COLUMNS": "250"}  # one warning, one line
    result = run(
        "extract",
        "--data",
        tiny_dataset,
        "--cache",
        cache,
        "--weights",
        weights_file,
        "--workers",
        0,
        "--compile",
        env=wide,
    )
    assert_ok(result)
    warnings = [line for line in result.output.splitlines() if "--compile failed" in line]
    assert len(warnings) == 1 and "InductorError" in warnings[0]
    assert_ok(run("train-head", "--cache", cache, "-q"))
    result = run(
        "predict",
        tiny_dataset / "val",
        "--out",
        tmp_path / "preds.csv",
        "--cache",
        cache,
        "--workers",
        0,
        "--compile",
        env=wide,
    )
    assert_ok(result)
    assert sum("--compile failed" in line for line in result.output.splitlines()) == 1
