"""`ModelAdapter`: a layer chain over an unmodified `nn.Module`, run through forward hooks.

The adapter never rebuilds the module tree. Activations are read by hooks, a layer's output is replaced
by a hook that returns another tensor, and a pass stops early by raising an internal exception from the
hook of the highest layer needed. Hooks live only inside one call and are always removed (zennit style).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from .identity import default_name, module_digest, signature

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


# --------------------------------------------------------------------------------------------------
# preprocessing


@dataclass(frozen=True)
class Preprocess:
    """Eval preprocessing of one model: resize the shorter side, centre-crop, scale to [0,1], normalise."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "interpolation", str(self.interpolation).lower())
        if self.crop < 1 or self.resize < self.crop:
            raise UserError(f"preprocess needs 1 <= crop <= resize (got resize={self.resize}, "
                            f"crop={self.crop})")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UserError(f"preprocess mean/std need 3 values each, std > 0 (got {self.mean}, {self.std})")
        if self.interpolation not in _INTERPOLATIONS:
            raise UserError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)} "
                            f"(got {self.interpolation!r})")

    @classmethod
    def from_torchvision(cls, weights: Any) -> Preprocess:
        """Read resize/crop/mean/std/interpolation from a torchvision weights enum (no download)."""
        t = weights.transforms()
        return cls(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]), mean=tuple(t.mean),
                   std=tuple(t.std), interpolation=t.interpolation.value)

    def __call__(self, image: Any) -> Tensor:
        """A PIL image (or HxWx3 uint8 array, or [3,H,W] tensor in [0,1]) -> normalised [3, crop, crop]."""
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if isinstance(image, Image.Image):
            x = TF.pil_to_tensor(image.convert("RGB"))
        elif isinstance(image, Tensor):
            x = image
        else:
            raise UserError(f"cannot preprocess an object of type {type(image).__name__}; pass a PIL image")
        x = TF.resize(x, [self.resize], interpolation=InterpolationMode(self.interpolation), antialias=True)
        x = TF.center_crop(x, [self.crop, self.crop])
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
        return self.normalize(x)

    def _stats(self, t: Tensor) -> tuple[Tensor, Tensor]:
        shape = (3, 1, 1) if t.dim() == 3 else (1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=t.dtype, device=t.device).view(shape)
        std = torch.tensor(self.std, dtype=t.dtype, device=t.device).view(shape)
        return mean, std

    def normalize(self, t: Tensor) -> Tensor:
        """[3,H,W] or [B,3,H,W] in [0,1] -> model input."""
        mean, std = self._stats(t)
        return (t - mean) / std

    def denormalize(self, t: Tensor) -> Tensor:
        """Inverse of `normalize`: model input -> [0,1] image tensor (not clipped)."""
        mean, std = self._stats(t)
        return t * std + mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (recorded in artifacts)."""
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation}


# --------------------------------------------------------------------------------------------------
# hooks


class _Stop(Exception):
    """Raised from a forward hook to end a pass early (internal; never escapes the adapter)."""


class _Hooks:
    """Forward hooks registered for the duration of a `with` block and removed on exit, error or not."""

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def add(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        self._handles.append(module.register_forward_hook(fn))

    def __enter__(self) -> _Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@dataclass
class _LayerInfo:
    """What one probe forward saw of a module: output shape (no batch), calls, completion order, mutated."""

    shape: tuple[int, ...] | None
    calls: int = 0
    order: int = -1
    mutated: bool = False
    _ref: Any = field(default=None, repr=False)
    _version: int = field(default=0, repr=False)


def probe_modules(model: nn.Module, modules: dict[str, nn.Module], x: Tensor,
                  label: str) -> dict[str, _LayerInfo]:
    """One forward of `x` with a hook on every module of `modules`: output shape, calls, completion order
    and in-place mutation of each (the facts chain checks and the default-chain rule need)."""
    info = {n: _LayerInfo(shape=None) for n in modules}
    counter = [0]

    def make(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            rec = info[name]
            rec.calls += 1
            rec.order = counter[0]
            counter[0] += 1
            if isinstance(output, Tensor):
                rec.shape = tuple(output.shape[1:])
                rec._ref, rec._version = output, output._version
        return hook

    with _Hooks() as hooks, torch.no_grad():
        for n, m in modules.items():
            hooks.add(m, make(n))
        try:
            model(x)
        except UserError:
            raise
        except Exception as exc:  # the user's model failed on a [1,3,S,S] input
            raise UserError(f"model {label} failed on a dummy input of shape {list(x.shape)}: {exc}") from exc
    for rec in info.values():
        if rec._ref is not None:
            rec.mutated = rec._ref._version != rec._version
            rec._ref = None
    return info


def _key_part(what: str, value: str) -> str:
    """A model name or weights id: it becomes part of knowledge-base keys (``name@weights/layer``)."""
    if not value or len(value) > 256 or any(ch in value for ch in "/@") or not value.isprintable() \
            or any(ch.isspace() for ch in value):
        raise UserError(f"model {what} {value[:80]!r} cannot be used: it becomes part of knowledge-base "
                        "keys, so give 1..256 printable characters without '/', '@' or spaces")
    return value


def _first_tensor(out: Any) -> Tensor:
    """The logits of a model output: a tensor, the first item of a tuple, or a `.logits` attribute."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    raise UserError(f"the model returned {type(out).__name__}; expected a logits tensor")


# --------------------------------------------------------------------------------------------------
# the adapter


class ModelAdapter:
    """A vision model seen as a chain of layers (bottom -> top, last = class logits) through hooks.

    Build one with `neurflow_kb.models.get_adapter("resnet50")` or `ModelAdapter.from_module(model, layers)`.
    The user's module is put in eval mode and otherwise left untouched: no hook survives any call.
    """

    name: str
    weights_source: str
    model: nn.Module
    layers: list[str]
    preprocess: Preprocess
    num_classes: int
    class_names: list[str] | None
    tokens: bool

    def __init__(self, model: nn.Module, layers: Sequence[str], *, name: str | None = None,
                 weights: str | None = None, preprocess: Preprocess | None = None,
                 num_classes: int | None = None, class_names: Sequence[str] | None = None,
                 tokens: bool = False, weights_source: str | None = None, check_chain: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise UserError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if isinstance(layers, str):
            layers = [layers]
        self.name = _key_part("name", default_name(model) if name is None else str(name))
        self._weights_id = None if weights is None else _key_part("weights", str(weights))
        self._digest: tuple[str, tuple[tuple[int, int], ...]] | None = None
        self.weights_source = str(weights_source or self._weights_id or "module")
        self.model = model.eval()
        self.layers = [str(layer) for layer in layers]
        self.preprocess = preprocess or Preprocess()
        self.tokens = bool(tokens)
        self._modules = {n: m for n, m in model.named_modules() if n}
        self._dummy_cache: dict[tuple[Any, ...], Tensor] = {}
        if len(self.layers) < 2:
            raise UserError(f"a layer chain needs at least 2 layers, bottom -> top with the class-logit "
                            f"layer last (got {self.layers})")
        if len(set(self.layers)) != len(self.layers):
            raise UserError(f"the layer chain lists a layer twice: {self.layers}")
        self._check_names(self.layers)
        self._info = self._probe()
        self._check_runnable(self.layers)
        for lower, upper in zip(self.layers[:-1], self.layers[1:], strict=True):
            if self._info[upper].order < self._info[lower].order:
                raise UserError(f"layers must be given bottom -> top, but '{upper}' finishes before "
                                f"'{lower}' in the forward pass")
        last_shape = self._info[self.layers[-1]].shape
        if last_shape is None or len(last_shape) != 1:
            dims = ", ".join(map(str, last_shape or ()))
            raise UserError(f"the last layer '{self.layers[-1]}' must be the class-logit layer producing "
                            f"[B, num_classes], but its output is [B, {dims}]")
        if num_classes is not None and int(num_classes) != last_shape[0]:
            raise UserError(f"num_classes={num_classes} but the last layer '{self.layers[-1]}' has "
                            f"{last_shape[0]} outputs")
        self.num_classes = last_shape[0]
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise UserError(f"class_names has {len(self.class_names)} entries but the model has "
                            f"{self.num_classes} classes")
        if check_chain:
            self.check_chain()

    # -- identity --------------------------------------------------------------------------------

    @property
    def weights(self) -> str:
        """Id of the weights: a published name (``IMAGENET1K_V2``), or ``sha256:<16 hex>`` of the module's
        tensors, recomputed when they have changed in place since it was last computed."""
        if self._weights_id is not None:
            return self._weights_id
        sig = signature(self.model)
        if self._digest is None or self._digest[1] != sig:
            self._digest = (module_digest(self.model), sig)
        return self._digest[0]

    def _adopt_digest(self, digest: str) -> None:
        """Take a content id computed earlier for exactly these tensors (a cached file hash)."""
        self._digest = (digest, signature(self.model))

    def check_chain(self, probe_images: int = 2, seed: int = 0) -> float:
        """`verify_chain` on a seeded batch of random normal images at the preprocessing size: run when a
        user gives a chain, before any work. Raises `UserError` naming the first pair that is not closed
        (e.g. a skip connection around the lower layer)."""
        g = torch.Generator().manual_seed(seed)
        size = self.preprocess.crop
        probe = torch.randn(probe_images, 3, size, size, generator=g)
        return self.verify_chain(probe, atol=1e-5, rtol=1e-4)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_module(cls, model: nn.Module, layers: Sequence[str], name: str | None = None,
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    input_size: int = 224, resize: int | None = None, num_classes: int | None = None,
                    tokens: bool = False, class_names: Sequence[str] | None = None,
                    weights: str | None = None, interpolation: str = "bilinear") -> ModelAdapter:
        """Wrap any module by dotted `named_modules` layer names, bottom -> top, class logits last.

        The chain is verified at once (each layer must see the input only through the one below). The
        model is identified by `name` (default: its class name and an architecture hash) and by a hash
        of its tensors; `weights` is only a human label for them, recorded as ``weights_source``.
        """
        resize = int(resize) if resize is not None else int(round(input_size / 0.875))
        preprocess = Preprocess(resize=resize, crop=int(input_size), mean=tuple(mean), std=tuple(std),
                                interpolation=interpolation)
        return cls(model, layers, name=name, preprocess=preprocess, num_classes=num_classes,
                   class_names=class_names, tokens=tokens, weights_source=weights)

    def with_layers(self, layers: Sequence[str]) -> ModelAdapter:
        """A new adapter on the same model and weights with another layer chain (verified)."""
        new = ModelAdapter(self.model, layers, name=self.name, weights=self._weights_id,
                           preprocess=self.preprocess, class_names=self.class_names, tokens=self.tokens,
                           weights_source=self.weights_source)
        new._digest = self._digest
        return new

    def _check_names(self, names: Iterable[str]) -> None:
        for n in names:
            if n not in self._modules:
                close = difflib.get_close_matches(n, list(self._modules), n=5, cutoff=0.6)
                some = close or [m for m in self._modules if "." not in m][:8]
                raise UserError(f"unknown layer '{n}' in model {self.name}; valid names include: "
                                f"{', '.join(some)} (any dotted name from model.named_modules())")

    def _probe(self) -> dict[str, _LayerInfo]:
        """One dummy forward with a hook on every module (see `probe_modules`)."""
        return probe_modules(self.model, self._modules, self._dummy(), self.name)

    def _check_runnable(self, names: Iterable[str]) -> None:
        self._check_names(names)
        for n in names:
            rec = self._info[n]
            if rec.calls == 0:
                raise UserError(f"layer '{n}' never runs in the forward pass of {self.name}; pick a module "
                                "that is executed")
            if rec.calls > 1:
                raise UserError(f"layer '{n}' runs {rec.calls} times in one forward pass (a shared module, "
                                "e.g. ResNet's block.relu); pick a module that runs once")
            if rec.shape is None:
                raise UserError(f"layer '{n}' does not return a single tensor; pick another module")

    # -- device, dtype ---------------------------------------------------------------------------

    def _reference(self) -> Tensor | None:
        for p in self.model.parameters():
            return p
        for t in self.model.buffers():
            return t
        return None

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (cpu for a parameter-free model)."""
        ref = self._reference()
        return ref.device if ref is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        ref = self._reference()
        return ref.dtype if ref is not None and ref.is_floating_point() else torch.float32

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> ModelAdapter:
        """Move (and optionally cast) the model in place; returns self."""
        try:
            self.model.to(device=device, dtype=dtype)
        except (RuntimeError, AssertionError) as exc:
            raise UserError(f"cannot move model {self.name} to device {device!r}: {exc}") from exc
        self._dummy_cache.clear()
        return self

    def _dummy(self, size: tuple[int, int] | None = None) -> Tensor:
        """Cached zero input [1,3,S,S] (S = preprocessing crop, or `size`) on the model's device/dtype."""
        hw = tuple(size) if size is not None else (self.preprocess.crop, self.preprocess.crop)
        key = (self.device, self.dtype, hw)
        if key not in self._dummy_cache:
            self._dummy_cache[key] = torch.zeros(1, 3, *hw, device=key[0], dtype=key[1])
        return self._dummy_cache[key]

    def _prepare(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or images.dim() != 4:
            shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise UserError(f"images must be a [B,3,H,W] tensor of preprocessed images (got {shape})")
        return images.to(device=self.device, dtype=self.dtype)

    # -- layer geometry --------------------------------------------------------------------------

    def output_shape(self, layer: str) -> tuple[int, ...]:
        """Output shape of a layer without the batch dimension (at the preprocessing crop size)."""
        self._check_runnable([layer])
        shape = self._info[layer].shape
        assert shape is not None
        return shape

    def channels(self, layer: str) -> int:
        """Number of neurons of a layer: C of [B,C,...] and [B,C], D of ViT tokens [B,T,D]."""
        shape = self.output_shape(layer)
        if self.tokens and len(shape) == 2:
            return shape[1]
        return shape[0]

    def channel_dim(self, out: Tensor) -> int:
        """The neuron axis of a layer output: the last of ViT tokens [B,T,D], else 1 ([B,C,...], [B,C]);
        the axis to mask or scale when neurons are switched off."""
        return out.dim() - 1 if self.tokens and out.dim() == 3 else 1

    def pool(self, layer: str, out: Tensor) -> Tensor:
        """One value per neuron [B, C]: spatial mean, identity for [B,C], mean over patch tokens (no CLS)."""
        if out.dim() == 2:
            return out
        if out.dim() == 3 and self.tokens:
            return out[:, 1:].mean(dim=1)
        return out.flatten(2).mean(dim=2)

    def reduce_attribution(self, layer: str, t: Tensor) -> Tensor:
        """Attribution per neuron [B, C]: mean over every position (all tokens, or all H x W)."""
        if t.dim() == 2:
            return t
        if t.dim() == 3 and self.tokens:
            return t.mean(dim=1)
        return t.flatten(2).mean(dim=2)

    # -- running ---------------------------------------------------------------------------------

    def _run(self, x: Tensor, capture: Sequence[str], replace: tuple[str, Tensor] | None = None
             ) -> dict[str, Tensor]:
        """One forward of `x` capturing `capture`, optionally with a layer's output replaced; stops early."""
        want = list(dict.fromkeys(capture))
        out: dict[str, Tensor] = {}
        grad_mode = torch.is_grad_enabled()
        replaced = [replace is None]

        def capture_hook(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
                if not replaced[0]:
                    lower = replace[0] if replace is not None else "?"
                    raise UserError(f"layer '{name}' runs before '{lower}'; give layers bottom -> top")
                last = len(out) == len(want) - 1
                out[name] = output if last or not self._info[name].mutated else output.clone()
                if len(out) == len(want):
                    raise _Stop()
            return hook

        def replace_hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            assert replace is not None
            replaced[0] = True
            torch.set_grad_enabled(grad_mode)  # the prefix ran without autograd; the rest may need it
            act = replace[1]
            return act.clone() if self._info[replace[0]].mutated else act

        try:
            if replace is not None:
                torch.set_grad_enabled(False)
            with _Hooks() as hooks:
                if replace is not None:
                    hooks.add(self._modules[replace[0]], replace_hook)
                for n in want:
                    hooks.add(self._modules[n], capture_hook(n))
                try:
                    self.model(x)
                except _Stop:
                    pass
        finally:
            torch.set_grad_enabled(grad_mode)
        missing = [n for n in want if n not in out]
        if missing:
            raise UserError(f"layers {missing} did not run in the forward pass of {self.name}")
        return out

    def activations(self, images: Tensor, layers: Sequence[str] | str) -> dict[str, Tensor]:
        """Raw outputs of the named layers for a [B,3,H,W] batch, in one forward stopped after the top one.

        Runs in the caller's grad mode (wrap in `torch.no_grad()` when gradients are not needed).
        """
        names = [layers] if isinstance(layers, str) else list(layers)
        self._check_runnable(names)
        return self._run(self._prepare(images), names)

    def run_from(self, lower: str, act: Tensor, upper: str) -> Tensor:
        """Output of `upper` when `lower` outputs `act` (any batch size); differentiable w.r.t. `act`.

        The model runs on a cached one-image dummy input; the part before `lower` runs without autograd.
        """
        self._check_runnable([lower, upper])
        if lower == upper:
            return act
        if self._info[upper].order < self._info[lower].order:
            raise UserError(f"'{upper}' finishes before '{lower}' in the forward pass; run_from needs "
                            "lower below upper")
        return self._run(self._dummy(), [upper], replace=(lower, act))[upper]

    def logits(self, images: Tensor) -> Tensor:
        """Full forward pass of a [B,3,H,W] batch -> [B, num_classes]."""
        return _first_tensor(self.model(self._prepare(images)))

    def predict(self, images: Tensor) -> Tensor:
        """Predicted class index per image (argmax of the logits), without gradients."""
        with torch.no_grad():
            return self.logits(images).argmax(dim=1)

    def verify_chain(self, images: Tensor, atol: float = 1e-5, rtol: float = 0.0) -> float:
        """Check the chain: each layer's clean activation fed back reproduces the next layer and the logits.

        The part of the model below the lower layer runs on a zero dummy input, so an upper layer that
        also sees the input some other way (a skip connection around the lower layer) changes. A
        difference is allowed up to ``atol + rtol * max|clean|``. Returns the largest absolute difference
        seen; raises `UserError` naming the first failing pair.
        """
        last = self.layers[-1]
        worst = 0.0
        with torch.no_grad():
            clean = self.activations(images, self.layers)
            height, width = images.shape[-2:]
            dummy = self._dummy((int(height), int(width)))  # the prefix runs at the images' size
            for lower, upper in zip(self.layers[:-1], self.layers[1:], strict=True):
                try:
                    got = self._run(dummy, [upper, last], replace=(lower, clean[lower]))
                except RuntimeError as exc:   # e.g. a concat of the fed batch with the dummy prefix's
                    first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                    raise UserError(f"layer chain check failed for {lower} -> {upper}: the model does not "
                                    f"run with '{lower}' fed its own activation ({first}); '{upper}' must "
                                    f"depend on the input only through '{lower}' (use whole blocks)") from exc
                for target in dict.fromkeys([upper, last]):
                    a, b = got[target], clean[target]
                    diff = float((a - b).abs().max()) if a.shape == b.shape else float("inf")
                    allowed = atol + rtol * float(b.abs().max()) if b.numel() else atol
                    if not diff <= allowed:
                        raise UserError(
                            f"layer chain check failed for {lower} -> {upper}: feeding '{lower}' its own "
                            f"activation changes '{target}' by {diff:.3g} (> {allowed:.3g}); '{upper}' must "
                            f"depend on the input only through '{lower}' (a skip connection around it? use "
                            "whole blocks)")
                    worst = max(worst, diff)
        return worst

    def __repr__(self) -> str:
        return (f"ModelAdapter(name={self.name!r}, weights={self.weights!r}, layers={len(self.layers)} "
                f"[{self.layers[0]} .. {self.layers[-1]}], num_classes={self.num_classes}, "
                f"tokens={self.tokens}, device={self.device})")
