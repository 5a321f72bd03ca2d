"""Building blocks shared by the built-in models (`registry`) and models by reference (`reference`):
weights files, seeded random init, torchvision builders and the final adapter step."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import UserError
from .adapter import ModelAdapter, Preprocess
from .identity import cached_file_id, remember_file_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    layers: tuple[str, ...]
    tokens: bool = False
    tv_kwargs: dict[str, Any] = field(default_factory=dict)  # builder kwargs without pretrained weights
    aux_prefixes: tuple[str, ...] = ()  # checkpoint keys to drop (GoogLeNet's aux classifiers)
    after_random_init: Callable[[nn.Module], None] | None = None


def _tv_weights_enum(name: str) -> Any:
    import torchvision

    return torchvision.models.get_model_weights(name)


def _imagenet_categories() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


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
Built = tuple[nn.Module, str | None, str, Preprocess, list[str], str | None]


def _random_label(seed: int) -> str:
    return f"random (seed {seed})"


def _build_torchvision(spec: _Spec, weights: str, seed: int) -> Built:
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


def build_shipped(name: str, factory: Callable[[], nn.Module], weights: str, seed: int, *,
                  preprocess: Preprocess, class_names: list[str],
                  shipped: Callable[[], str | os.PathLike[str] | None], shipped_id: Callable[[], str],
                  missing: str = "") -> Built:
    """Build a model whose default weights ship as a state-dict file: ``"random"`` (seeded init),
    ``"default"`` (the shipped file, published id `shipped_id()`) or a state-dict path (identified by
    content). `missing` says how to get the shipped file when `shipped()` finds none."""
    model = _seeded(factory, seed)
    if weights == "random":
        return model, None, _random_label(seed), preprocess, class_names, None
    if weights == "default":
        path = shipped()
        if path is None:
            raise UserError(f"could not load pretrained weights for {name}: {missing or 'none are shipped'}"
                            ", or pass --weights PATH or --weights random")
        _load_into(model, read_state_dict(path), name, str(path))
        return model, shipped_id(), shipped_id(), preprocess, class_names, None
    _load_into(model, read_state_dict(weights), name, weights)
    return model, None, str(weights), preprocess, class_names, str(weights)


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
    log.debug("built %s (weights %s, %d layers) on %s", adapter.name, adapter.weights, len(adapter.layers),
              device)
    return adapter.to(device)
