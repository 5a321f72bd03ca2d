"""Models by reference: any torchvision classifier (``torchvision:NAME``) or timm model (``timm:NAME``).

One canonical name per model, whatever the user typed: lower case, ``-`` read as ``_``; a built-in or
torchvision classifier by its bare torchvision name (``torchvision:ResNet18`` -> ``resnet18``,
``EfficientNet-Lite0`` -> ``efficientnet_lite0``), a timm model as ``timm:NAME`` (timm's ``resnet18`` is
another model than torchvision's). Weights are ``default`` (read from the local torch hub / Hugging Face
cache only: nothing is downloaded), ``random`` (seeded) or a state dict file.

A referenced model's default layer chain is derived from the model itself (`derive_chain`): the
top-level stage ends at strides 8, 16 and 32, then the class-logit module; it is verified with
`ModelAdapter.check_chain` like any chain a user gives.
"""

from __future__ import annotations

import difflib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..model_names import canonical_name
from ..model_names import loose_name as _loose
from .adapter import ModelAdapter, Preprocess, _first_tensor, _Hooks, probe_modules

BUILTIN, TORCHVISION, TIMM = "builtin", "torchvision", "timm"
_TIMM_MISSING = "timm is not installed: pip install timm (or pip install 'neurflow-kb[timm]')"
#: Modules that only pass their input on: never a stage of a derived chain.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it, resolved: where it comes from and the library's name for it."""

    source: str   # builtin, torchvision or timm
    name: str     # the registry / torchvision / timm name (timm: with an optional .pretrained_tag)

    @property
    def canonical(self) -> str:
        """The one name of this model in keys, the store, the viewer and every command."""
        return f"timm:{self.name}" if self.source == TIMM else self.name


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UserError(_TIMM_MISSING) from None
    return timm


def torchvision_classifiers() -> list[str]:
    """torchvision's classification models (the names `torchvision.models.get_model` takes)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def timm_models() -> list[str] | None:
    """timm's model names (architectures, without pretrained tags), or None when timm is not installed."""
    try:
        import timm
    except ImportError:
        return None
    return sorted(timm.list_models())


def _pick(name: str, known: Sequence[str]) -> str | None:
    """`name` itself when known, else the one known name it loosely equals (None when none or several)."""
    if name in known:
        return name
    hits = sorted({k for k in known if _loose(k) == _loose(name)})
    return hits[0] if len(hits) == 1 else None


def _unknown(kind: str, text: str, name: str, known: Sequence[str], builtins: Sequence[str],
             prefix: str = "") -> UserError:
    close = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
    return UserError(f"unknown {kind} '{str(text)[:80]}'{hint} (known models: {', '.join(builtins)}; any "
                     "torchvision classifier as torchvision:NAME, any timm model as timm:NAME; all of them: "
                     "`neurflow-kb models --all`)")


def resolve(text: str, builtins: Sequence[str]) -> ModelRef:
    """The model a user's name refers to (a built-in, a torchvision classifier or a timm model); an
    unknown name is one line naming the closest known ones."""
    canon = canonical_name(text)
    if "@" in canon:
        raise UserError(f"model {str(text)[:80]!r}: give a model name, not a knowledge-base key (drop "
                        "'@...'; weights go to --weights)")
    if canon.startswith("timm:"):
        arch, dot, tag = canon[len("timm:"):].partition(".")
        names = _timm().list_models()
        found = _pick(arch, names) if arch else None
        if found is None:
            raise _unknown("timm model", text, arch, names, builtins, "timm:")
        return ModelRef(TIMM, found + dot + tag)
    found = _pick(canon, builtins)
    if found is not None:
        return ModelRef(BUILTIN, found)
    tv = torchvision_classifiers()
    found = _pick(canon, tv)
    if found is not None:
        return ModelRef(TORCHVISION, found)
    prefixed = str(text).strip().lower().startswith(("torchvision:", "tv:"))
    raise _unknown("torchvision classifier" if prefixed else "model", text, canon, [*builtins, *tv], builtins)


# -- the default chain ------------------------------------------------------------------------------

def _stage_candidate(name: str, rec: Any, modules: dict[str, nn.Module]) -> bool:
    """A top-level module or an item of a top-level `nn.Sequential`, run once, outputting [C, S, S]."""
    parent = name.rpartition(".")[0]
    if parent and ("." in parent or not isinstance(modules[parent], nn.Sequential)):
        return False
    shape = rec.shape
    return (rec.calls == 1 and shape is not None and len(shape) == 3 and shape[1] == shape[2] and shape[1] > 1
            and not isinstance(modules[name], _PASS_THROUGH))


def derive_chain(model: nn.Module, crop: int, label: str) -> list[str]:
    """The default layer chain of a model nobody wrote a chain for.

    Stage ends: among the top-level modules and the items of top-level `nn.Sequential` containers
    (``layer3``, ``features.5``, ``stages.2``, ``blocks.4``; not ``Mixed_6a.branch3x3``) that run once
    and output a square [C, S, S] map, the last one to finish at each spatial size S. Those at
    S <= crop/8 (strides 8, 16, 32: 28, 14 and 7 at 224 px) are kept, or the last three stage ends when
    fewer than two are that small; the class-logit module (the first module whose output is the model's
    output) ends the chain.
    """
    modules = {n: m for n, m in model.named_modules() if n}
    ref = next(iter(model.parameters()), None)
    x = torch.zeros(1, 3, crop, crop, dtype=ref.dtype if ref is not None else torch.float32,
                    device=ref.device if ref is not None else "cpu")
    info = probe_modules(model, modules, x, label)
    with torch.no_grad():
        final = _first_tensor(model(x))
    if final.dim() != 2:
        raise UserError(f"{label} outputs [{', '.join(map(str, final.shape))}], not [B, classes] logits; "
                        "pass --layers (a chain ending at the class-logit layer)")
    heads = [n for n, r in info.items() if r.calls == 1 and r.shape == tuple(final.shape[1:])]
    seen: dict[str, torch.Tensor] = {}
    with _Hooks() as hooks, torch.no_grad():
        for n in heads:
            hooks.add(modules[n], lambda _m, _i, out, n=n: seen.__setitem__(n, out))
        model(x)
    logits = [n for n in sorted(heads, key=lambda n: info[n].order)
              if isinstance(seen.get(n), torch.Tensor) and torch.equal(seen[n], final)]
    if not logits:
        raise UserError(f"no module of {label} outputs its class logits (they are computed outside a "
                        "module); pass --layers")
    head = logits[0]
    last_at: dict[int, tuple[int, str]] = {}
    for n, r in info.items():
        if _stage_candidate(n, r, modules) and r.order < info[head].order and r.shape is not None:
            size = r.shape[1]
            if r.order > last_at.get(size, (-1, ""))[0]:
                last_at[size] = (r.order, n)
    ends = sorted((order, size, n) for size, (order, n) in last_at.items())
    small = [n for _, size, n in ends if size <= math.ceil(crop / 8)]
    chosen = small if len(small) >= 2 else [n for _, _, n in ends][-3:]
    if len(chosen) < 2:
        raise UserError(f"{label} has no convolutional stages the default chain rule can use (a "
                        "transformer?); pass --layers (module names bottom -> top, class logits last)")
    return [*chosen, head]


# -- building -------------------------------------------------------------------------------------

def _timm_preprocess(timm: Any, model: nn.Module) -> Preprocess:
    cfg = timm.data.resolve_data_config({}, model=model)
    crop = int(cfg["input_size"][-1])
    resize = max(crop, int(math.floor(crop / float(cfg.get("crop_pct") or 0.875))))
    interpolation = str(cfg.get("interpolation") or "bicubic")
    if interpolation not in ("nearest", "bilinear", "bicubic"):
        interpolation = "bicubic"
    return Preprocess(resize=resize, crop=crop, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                      interpolation=interpolation)


def _timm_cached_file(cfg: dict[str, Any]) -> Path | None:
    """The local copy of a timm model's pretrained weights (Hugging Face hub cache or torch hub cache)."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = str(hub_id).partition("@")
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    url = cfg.get("url")
    if url:
        from urllib.parse import urlparse

        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(str(url)).path)
        if cached.is_file():
            return cached
    return None


def _build_timm(ref: ModelRef, weights: str, seed: int) -> tuple[nn.Module, str, str | None]:
    """(model, weights label, weights file or None) of a timm model; never downloads."""
    from .builders import _load_into, _random_label, _seeded, read_state_dict

    timm = _timm()
    label = ref.canonical

    def random_model() -> nn.Module:
        return timm.create_model(ref.name, pretrained=False)

    model = _seeded(random_model, seed)
    if weights == "random":
        return model, _random_label(seed), None
    if weights == "default":
        cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", None) or {})
        cached = _timm_cached_file(cfg)
        if cached is None:
            where = cfg.get("hf_hub_id") or cfg.get("url") or "they"
            raise UserError(f"could not load pretrained weights for {label}: {where} are not in the local "
                            "Hugging Face or torch hub cache and are never downloaded here; pass "
                            "--weights PATH (a state_dict file) or --weights random")
        try:
            model = _seeded(lambda: timm.create_model(ref.name, pretrained=True,
                                                      pretrained_cfg_overlay={"file": str(cached)}), seed)
        except Exception as exc:
            raise UserError(f"could not load pretrained weights for {label} from {cached}: {exc}; pass "
                            "--weights PATH or --weights random") from exc
        tag = dict(getattr(model, "pretrained_cfg", None) or {}).get("tag") or "default"
        return model, f"timm pretrained {tag} ({cached.name})", None
    _load_into(model, read_state_dict(weights), label, weights)
    return model, str(weights), str(weights)


def build_reference(ref: ModelRef, weights: str = "default", layers: Sequence[str] | None = None,
                    device: str | torch.device = "cpu", seed: int = 0) -> ModelAdapter:
    """An adapter of a torchvision classifier or a timm model; the chain is `layers` or the derived one,
    verified either way. Weights ids: torchvision's published name for its default weights, the tensors'
    content hash (``sha256:<16 hex>``) for everything else, timm's pretrained weights included."""
    from .builders import _build_torchvision, _imagenet_categories, _Spec, finish_adapter

    read_at = time.time_ns()
    weights = str(weights)
    categories: list[str] | None
    weights_id: str | None
    if ref.source == TORCHVISION:
        model, weights_id, source, preprocess, categories, path = _build_torchvision(
            _Spec(ref.name, f"torchvision {ref.name}", ()), weights, seed)
    elif ref.source == TIMM:
        model, source, path = _build_timm(ref, weights, seed)
        weights_id = None
        preprocess = _timm_preprocess(_timm(), model)
        n_out = int(getattr(model, "num_classes", 0) or 0)
        categories = _imagenet_categories() if n_out == 1000 else None
    else:
        raise UserError(f"{ref.canonical} is a built-in model; use get_adapter")
    model.eval()
    chain = list(layers) if layers else derive_chain(model, preprocess.crop, ref.canonical)
    adapter = ModelAdapter(model, chain, name=ref.canonical, weights=weights_id, weights_source=source,
                           preprocess=preprocess, class_names=categories, check_chain=True)
    return finish_adapter(adapter, path, read_at, device)


def referable_models(builtins: Sequence[str]) -> list[dict[str, str]]:
    """Every model a name can refer to: built-ins, torchvision classifiers, timm models (when installed),
    each as {name (canonical), source}."""
    out = [{"name": n, "source": BUILTIN} for n in builtins]
    out += [{"name": n, "source": TORCHVISION} for n in torchvision_classifiers() if n not in builtins]
    out += [{"name": f"timm:{n}", "source": TIMM} for n in timm_models() or []]
    return out


__all__ = ["BUILTIN", "TIMM", "TORCHVISION", "ModelRef", "build_reference", "derive_chain",
           "referable_models", "resolve", "timm_models", "torchvision_classifiers"]
