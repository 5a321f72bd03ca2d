"""Model adapters: layer-chain replay on every built-in model, hooks, lite0 predictions, weights, errors."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from neurflow_kb.errors import UserError
from neurflow_kb.models import (
    AdapterInfo,
    ModelAdapter,
    Preprocess,
    as_adapter,
    get_adapter,
    list_adapters,
)
from neurflow_kb.models.lite0 import EfficientNetLite0, SameConv2d, packaged_weights_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

#: The big models (seconds each to build and run even at 64 px) replay in the slow run only; one of each
#: family stays in the fast one.
BIG = {"resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vit_b_16"}
BUILTIN = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "googlenet", "alexnet", "vgg16",
           "vit_b_16", "efficientnet_b0", "efficientnet_lite0"]


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _hooks_left(model: nn.Module) -> list[str]:
    return [name or "<root>" for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]


def _build(name: str) -> ModelAdapter:
    return get_adapter(name, weights="default" if name == "efficientnet_lite0" else "random", seed=0)


@pytest.fixture(scope="module")
def vit() -> ModelAdapter:
    return _build("vit_b_16")


@pytest.fixture(scope="module")
def lite0() -> ModelAdapter:
    return _build("efficientnet_lite0")


@pytest.fixture(scope="module")
def resnet18() -> ModelAdapter:
    return _build("resnet18")


# --------------------------------------------------------------------------------------------------
# every built-in chain replays exactly


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n
                                  for n in BUILTIN])
def test_builtin_chain_replays_activations_and_logits(name: str, request: pytest.FixtureRequest) -> None:
    fixture = {"vit_b_16": "vit", "efficientnet_lite0": "lite0", "resnet18": "resnet18"}.get(name)
    adapter = request.getfixturevalue(fixture) if fixture else _build(name)
    info = {i.name: i for i in list_adapters()}[name]
    assert adapter.layers == list(info.layers)
    assert adapter.num_classes == 1000 and len(adapter.class_names or []) == 1000
    # CNNs accept small images (cheap); the ViT needs its 224 input
    x = _images(2, 224 if adapter.tokens else 64)
    layers = adapter.layers
    with torch.no_grad():
        clean = adapter.activations(x, layers)
        logits = adapter.logits(x)
    assert torch.equal(clean[layers[-1]], logits)
    for layer in layers:
        assert adapter.pool(layer, clean[layer]).shape == (2, adapter.channels(layer))
        assert adapter.reduce_attribution(layer, clean[layer]).shape == (2, adapter.channels(layer))
    # all consecutive pairs: the upper layer and the logits are reproduced (verify_chain), ...
    assert adapter.verify_chain(x, atol=1e-5) <= 1e-5
    # ... and through the public run_from on the first, a middle and the last pair
    pairs = list(zip(layers[:-1], layers[1:], strict=True))
    with torch.no_grad():
        for lower, upper in {pairs[0], pairs[len(pairs) // 2], pairs[-1]}:
            out = adapter.run_from(lower, clean[lower], upper)
            assert (out - clean[upper]).abs().max() <= 1e-5, (lower, upper)
        to_logits = adapter.run_from(layers[-2], clean[layers[-2]], layers[-1])
    assert (to_logits - logits).abs().max() <= 1e-5
    assert _hooks_left(adapter.model) == []


def test_default_chains_follow_the_paper_and_the_documented_rules() -> None:
    chains = {i.name: i.layers for i in list_adapters()}
    assert chains["resnet50"] == ("layer2.3", *(f"layer3.{i}" for i in range(6)), "layer4.0", "layer4.1",
                                  "layer4.2", "fc")
    assert chains["resnet18"] == ("layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1", "fc")
    assert chains["resnet152"][0] == "layer2.7" and len(chains["resnet152"]) == 1 + 36 + 3 + 1
    assert chains["googlenet"] == ("maxpool2", "inception3a", "inception3b", "inception4a", "inception4b",
                                   "inception4c", "inception4d", "inception4e", "inception5a", "inception5b",
                                   "fc")
    assert chains["alexnet"] == ("features.2", "features.5", "features.7", "features.9", "features.12",
                                 "classifier.2", "classifier.5", "classifier.6")
    assert chains["vit_b_16"][0] == "encoder.layers.encoder_layer_5"
    assert chains["vit_b_16"][-1] == "heads.head"
    assert all(isinstance(i, AdapterInfo) and i.weights for i in list_adapters())


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 with its real weights


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def test_lite0_state_dict_loads_strictly() -> None:
    path = packaged_weights_path()
    assert path is not None
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)


def test_lite0_predicts_real_photos(lite0: ModelAdapter) -> None:
    from sklearn.datasets import load_sample_image

    assert lite0.weights == "efficientnet-lite0-57934424"
    photos = [_photo("chelsea"), _photo("coffee"), Image.fromarray(load_sample_image("flower.jpg"))]
    x = torch.stack([lite0.preprocess(p) for p in photos])
    assert x.shape == (3, 3, 224, 224)
    with torch.no_grad():
        top5 = lite0.logits(x).topk(5, dim=1).indices
    cats = {281, 282, 285}
    assert int(top5[0, 0]) in cats and len(cats & set(top5[0].tolist())) >= 2
    assert int(top5[1, 0]) == 967 and 968 in top5[1].tolist()
    # the flower is a daisy only with the TF normalisation ((x - 127) / 128); ImageNet mean/std says lampshade
    assert int(top5[2, 0]) == 985
    assert lite0.class_names[int(top5[1, 0])] == "espresso"
    assert lite0.class_names[281] == "tabby"


def test_lite0_uses_tensorflow_same_padding() -> None:
    conv = SameConv2d(2, 3, 3, stride=2, bias=False)
    x = _images(1, 8)[:, :2]
    # TF "same" for an even input and stride 2: the extra row/column goes bottom/right
    assert torch.allclose(conv(x), F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2))
    conv5 = SameConv2d(2, 3, 5, stride=2, bias=False)
    assert torch.allclose(conv5(x), F.conv2d(F.pad(x, [1, 2, 1, 2]), conv5.weight, stride=2))
    conv1 = SameConv2d(2, 3, 5, stride=1, bias=False)
    assert conv1(x).shape[-2:] == x.shape[-2:]


# --------------------------------------------------------------------------------------------------
# a user's own module


class SmallCNN(nn.Module):
    """Two conv stages with an in-place ReLU and a residual add, then a linear classifier."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.act(self.conv(x) + x)
        x = self.head(x)
        return self.fc(x.mean(dim=(2, 3)))


def _small(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN().eval()


def test_from_module_small_cnn() -> None:
    model = _small()
    adapter = ModelAdapter.from_module(model, ["stem", "act", "head", "fc"], name="small", input_size=32,
                                       class_names=list("abcde"))
    assert adapter.num_classes == 5 and adapter.preprocess.crop == 32 and adapter.preprocess.resize == 37
    assert [adapter.channels(layer) for layer in adapter.layers] == [8, 8, 12, 5]
    assert adapter.output_shape("stem") == (8, 16, 16)
    x = _images(3, 32)
    with torch.no_grad():
        acts = adapter.activations(x, ["stem", "head"])
        direct = model(x)
        assert torch.equal(adapter.logits(x), direct)
        assert adapter.verify_chain(x) == 0.0
        assert torch.allclose(adapter.run_from("stem", acts["stem"], "head"), acts["head"])
    assert adapter.pool("stem", acts["stem"]).shape == (3, 8)
    assert torch.allclose(adapter.pool("stem", acts["stem"]), acts["stem"].mean(dim=(2, 3)))
    assert _hooks_left(model) == []


def test_in_place_relu_does_not_clobber_cached_or_given_activations() -> None:
    model = _small()
    adapter = ModelAdapter.from_module(model, ["stem", "act", "fc"], input_size=32)
    x = _images(2, 32)
    with torch.no_grad():
        acts = adapter.activations(x, ["stem.0", "conv", "fc"])  # both followed by in-place ops
        assert acts["stem.0"].min() < 0 and acts["conv"].min() < 0
        reference = F.conv2d(x, model.stem[0].weight, model.stem[0].bias, padding=1)
        assert torch.allclose(acts["stem.0"], reference, atol=1e-6)
        given = acts["stem.0"].clone()
        adapter.run_from("stem.0", given, "fc")
        assert torch.equal(given, acts["stem.0"])  # the in-place ReLU ran on a copy


def _retain_into(kept: dict[str, torch.Tensor]):  # a hook that keeps the output and its grad
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        kept["h"] = output
    return hook


def test_run_from_gradients_match_autograd_through_the_full_model(resnet18: ModelAdapter) -> None:
    for adapter, lower, size in [(ModelAdapter.from_module(_small(), ["stem", "act", "fc"], input_size=32),
                                  "act", 32),
                                 (resnet18, "layer3.0", 64)]:
        model = adapter.model
        x = _images(2, size, seed=3)
        kept: dict[str, torch.Tensor] = {}
        handle = dict(model.named_modules())[lower].register_forward_hook(_retain_into(kept))
        try:
            model.zero_grad(set_to_none=True)
            model(x)[:, 1].sum().backward()
        finally:
            handle.remove()
        expected = kept["h"].grad
        act = kept["h"].detach().clone().requires_grad_(True)
        model.zero_grad(set_to_none=True)
        out = adapter.run_from(lower, act, adapter.layers[-1])
        (grad,) = torch.autograd.grad(out[:, 1].sum(), act)
        assert torch.allclose(grad, expected, atol=1e-6, rtol=1e-5)
        assert float(expected.abs().sum()) > 0
        assert _hooks_left(model) == []
    # the prefix below `lower` ran without autograd: its parameters get no gradient
    act = torch.randn(2, 256, 4, 4, requires_grad=True)
    resnet18.run_from("layer3.0", act, "fc").sum().backward()
    assert resnet18.model.conv1.weight.grad is None and resnet18.model.fc.weight.grad is not None
    resnet18.model.zero_grad(set_to_none=True)


def test_run_from_accepts_any_batch_size(vit: ModelAdapter) -> None:
    x = _images(1, 224)
    with torch.no_grad():
        act = vit.activations(x, ["encoder.layers.encoder_layer_10"])["encoder.layers.encoder_layer_10"]
        batch = torch.cat([act, 0.5 * act, torch.zeros_like(act)])
        out = vit.run_from("encoder.layers.encoder_layer_10", batch, "encoder.layers.encoder_layer_11")
        one = vit.run_from("encoder.layers.encoder_layer_10", act, "encoder.layers.encoder_layer_11")
    assert out.shape == (3, 197, 768)
    assert torch.allclose(out[:1], one, atol=1e-5)


def test_vit_pooling_excludes_cls_and_attribution_uses_every_token(vit: ModelAdapter) -> None:
    layer = "encoder.layers.encoder_layer_7"
    assert vit.tokens and vit.channels(layer) == 768 and vit.output_shape(layer) == (197, 768)
    t = torch.rand(2, 197, 768)
    t[:, 0] = 1e6  # a huge CLS token must not leak into the pooled value
    pooled = vit.pool(layer, t)
    assert pooled.shape == (2, 768) and pooled.max() < 1.0
    assert torch.allclose(pooled, t[:, 1:].mean(dim=1))
    assert torch.allclose(vit.reduce_attribution(layer, t), t.mean(dim=1))
    logits = torch.randn(2, 1000)
    assert torch.equal(vit.pool("heads.head", logits), logits)


def test_vit_random_head_is_not_zero(vit: ModelAdapter) -> None:
    with torch.no_grad():
        assert vit.logits(_images(1, 224)).abs().max() > 0


# --------------------------------------------------------------------------------------------------
# hooks never survive, even on errors


def test_no_hooks_remain_after_errors(resnet18: ModelAdapter) -> None:
    model = resnet18.model
    with pytest.raises(RuntimeError):  # wrong channel count: fails inside the forward
        resnet18.run_from("layer2.1", torch.zeros(1, 7, 8, 8), "fc")
    assert _hooks_left(model) == []
    with pytest.raises(UserError):
        resnet18.activations(torch.zeros(3, 32, 32), ["layer3.0"])
    with pytest.raises(UserError, match="finishes before"):
        resnet18.run_from("layer4.0", torch.zeros(1, 512, 2, 2), "layer3.0")
    assert _hooks_left(model) == []


def test_verify_chain_names_the_failing_pair() -> None:
    class Leaky(nn.Module):
        """`b` also reads the input directly, so the chain a -> b is not closed."""

        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.b(self.a(x)) + x.mean(dim=1, keepdim=True)
            return self.fc(h.mean(dim=(2, 3)))

    torch.manual_seed(0)
    with pytest.raises(UserError, match="a -> b"):       # a chain given by the user is checked at once
        ModelAdapter.from_module(Leaky(), ["a", "b", "fc"], input_size=16)
    adapter = ModelAdapter(Leaky(), ["a", "b", "fc"], preprocess=Preprocess(resize=16, crop=16),
                           check_chain=False)
    with pytest.raises(UserError, match="a -> b"):
        adapter.verify_chain(_images(2, 16) + 3.0)
    assert _hooks_left(adapter.model) == []


# --------------------------------------------------------------------------------------------------
# user errors


def test_layer_errors() -> None:
    model = _small()
    with pytest.raises(UserError, match="unknown layer 'stemm'.*stem"):
        ModelAdapter.from_module(model, ["stemm", "fc"])
    with pytest.raises(UserError, match="bottom -> top"):
        ModelAdapter.from_module(model, ["head", "stem", "fc"], input_size=32)
    with pytest.raises(UserError, match="class-logit layer"):
        ModelAdapter.from_module(model, ["stem", "head"], input_size=32)
    with pytest.raises(UserError, match="num_classes=7"):
        ModelAdapter.from_module(model, ["stem", "fc"], input_size=32, num_classes=7)

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.relu(self.conv(self.relu(x))).mean(dim=(2, 3)))

    with pytest.raises(UserError, match="runs 2 times"):
        ModelAdapter.from_module(Shared(), ["relu", "fc"], input_size=8)
    assert _hooks_left(model) == []


def test_registry_errors_come_before_any_download_or_model(monkeypatch: pytest.MonkeyPatch, tmp_path: object,
                                                           network_attempts: list,
                                                           parameters_built: list) -> None:
    """Quick because nothing is fetched and nothing built before the error (the time is measured in
    benchmarks/cli_errors.py): no name lookup or connection, no model's parameters."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: nothing may be downloaded
    with pytest.raises(UserError, match="unknown model 'resnet9'.*resnet50.*efficientnet_lite0"):
        get_adapter("resnet9")
    with pytest.raises(UserError, match="could not load pretrained weights for resnet50.*--weights random"):
        get_adapter("resnet50")
    with pytest.raises(UserError, match="could not load pretrained weights for alexnet"):
        get_adapter("alexnet", weights="IMAGENET1K_V1")
    with pytest.raises(UserError, match="weights file not found"):
        get_adapter("resnet18", weights=str(tmp_path) + "/missing.pth")
    assert parameters_built == []
    with pytest.raises(UserError, match="unknown layer 'layer5.0'"):   # the chain is checked on the model
        get_adapter("resnet18", weights="random", layers=["layer5.0", "fc"])
    assert network_attempts == []


def test_weights_from_a_state_dict_file(tmp_path: object, resnet18: ModelAdapter) -> None:
    source = get_adapter("resnet18", weights="random", seed=1).model
    assert not torch.equal(source.conv1.weight, resnet18.model.conv1.weight)  # seeds differ
    plain = os.path.join(str(tmp_path), "r18.pth")
    torch.save(source.state_dict(), plain)
    wrapped = os.path.join(str(tmp_path), "r18_ckpt.pt")
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, wrapped)
    ids = set()
    for path in (plain, wrapped):
        adapter = get_adapter("resnet18", weights=path)
        ids.add(adapter.weights)                          # the tensors' hash, not the file name
        assert adapter.weights.startswith("sha256:") and adapter.weights_source == path
        assert torch.equal(adapter.model.conv1.weight, source.conv1.weight)
        assert torch.equal(adapter.model.fc.bias, source.fc.bias)
    assert len(ids) == 1 and ids != {resnet18.weights}   # a checkpoint wrapper does not change the id
    wrong = os.path.join(str(tmp_path), "wrong.pth")
    torch.save(_small().state_dict(), wrong)
    with pytest.raises(UserError, match="do not fit resnet18"):
        get_adapter("resnet18", weights=wrong)


def test_random_weights_are_seeded() -> None:
    a = get_adapter("efficientnet_lite0", weights="random", seed=5)
    b = get_adapter("efficientnet-lite0", weights="random", seed=5)
    assert a.name == b.name == "efficientnet_lite0" and a.weights == b.weights
    assert a.weights.startswith("sha256:") and a.weights_source == "random (seed 5)"
    assert torch.equal(a.model._fc.weight, b.model._fc.weight)
    state = torch.random.get_rng_state()
    assert get_adapter("efficientnet_lite0", weights="random", seed=6).weights != a.weights
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone


def test_as_adapter(resnet18: ModelAdapter) -> None:
    assert as_adapter(resnet18) is resnet18
    shorter = as_adapter(resnet18, ["layer4.0", "layer4.1", "fc"])
    assert shorter.layers == ["layer4.0", "layer4.1", "fc"] and shorter.model is resnet18.model
    model = _small()
    with pytest.raises(UserError, match="needs its layer chain"):
        as_adapter(model)
    wrapped = as_adapter(model, ["stem", "fc"], input_size=32)
    assert wrapped.layers == ["stem", "fc"] and wrapped.num_classes == 5
    named = as_adapter("efficientnet_lite0", ["_blocks.14", "_blocks.15", "_fc"], weights="random")
    assert named.layers == ["_blocks.14", "_blocks.15", "_fc"]
    with pytest.raises(UserError):
        as_adapter(42)  # type: ignore[arg-type]


def test_device_and_dtype(resnet18: ModelAdapter) -> None:
    assert resnet18.to("cpu") is resnet18 and resnet18.device == torch.device("cpu")
    with pytest.raises(UserError, match="cannot move model"):
        resnet18.to("no-such-device")
    small = ModelAdapter.from_module(_small(), ["stem", "act", "fc"], input_size=32).to(dtype=torch.float64)
    x = _images(2, 32)  # float32 images are cast to the model's dtype
    with torch.no_grad():
        assert small.logits(x).dtype == torch.float64
        assert small.verify_chain(x) == 0.0


# --------------------------------------------------------------------------------------------------
# preprocessing


def test_preprocess() -> None:
    import torchvision

    pre = Preprocess.from_torchvision(torchvision.models.ResNet50_Weights.DEFAULT)
    assert (pre.resize, pre.crop, pre.interpolation) == (232, 224, "bilinear")
    assert pre.mean == (0.485, 0.456, 0.406)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pre.crop = 10  # type: ignore[misc]
    photo = _photo("coffee")  # 600 x 400
    x = pre(photo)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.equal(pre(np.asarray(photo)), x)
    back = pre.denormalize(x)
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert torch.allclose(pre.normalize(back), x, atol=1e-5)
    assert pre.denormalize(x[None]).shape == (1, 3, 224, 224)
    with pytest.raises(UserError, match="interpolation"):
        Preprocess(interpolation="lanczos9")
    with pytest.raises(UserError, match="crop <= resize"):
        Preprocess(resize=100, crop=224)


def test_registered_adapters_come_from_their_room() -> None:
    # the world registers its two classifiers itself (models imports nothing of the world)
    from neurflow_kb.models.registry import RegisteredAdapter, register_adapter
    from neurflow_kb.world import world_weights_id

    info = {a.name: a for a in list_adapters()}
    assert info["world"].weights == world_weights_id() and info["world"].num_classes == 12
    assert get_adapter("World-Plain", weights="random").name == "world_plain"
    with pytest.raises(UserError, match="already a built-in model"):
        register_adapter(RegisteredAdapter("resnet50", "x", ("fc",), lambda w, s: None,  # type: ignore
                                           lambda: "x"))
