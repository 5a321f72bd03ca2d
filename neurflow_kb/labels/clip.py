"""Loading a CLIP model through open_clip, offline-safe: weights are found before anything downloads.

`resolve_weights` works out where the weights come from (a `--clip-checkpoint` file or folder, the
Hugging Face / open_clip caches, or a download) without importing torch or open_clip, so a machine
that has no weights and no network gets a one-line `UserError` within a second or two instead of
network retries. `load_clip` then builds the model with `open_clip.create_model_and_transforms`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import socket
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..errors import UserError
from .recipes import LOCAL_ENCODERS, EncoderRecipe, local_encoder_dir, make_recipe

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
#: Prompt templates averaged for every concept (prompt ensembling); thumbnails are small crops, hence
#: the "close-up", "cropped" and "low resolution" variants.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of {}.",
    "a close-up photo of {}.",
    "a cropped photo of {}.",
    "a photo showing {}.",
    "a blurry photo of {}.",
    "a low resolution photo of {}.",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
_FIX = "pass --clip-checkpoint PATH (an open_clip checkpoint file, or a folder with open_clip_config.json)"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline() -> bool:
    """True when the environment forbids downloads (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or
    NEURFLOW_OFFLINE set to 1/true/yes/on)."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NEURFLOW_OFFLINE")
    return any(_truthy(os.environ.get(v)) for v in names)


def _open_clip_dir() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("open_clip is not installed; install it with pip install 'neurflow-kb[clip]'")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _pretrained_table() -> types.ModuleType:
    """open_clip's `pretrained` module (its table of tags and download locations).

    Importing `open_clip` itself imports torch and torchvision (seconds); this module needs neither, so
    it is loaded on its own under a private package name unless open_clip is already imported.
    """
    if "open_clip" in sys.modules:
        return importlib.import_module("open_clip.pretrained")
    name = "_neurflow_open_clip_tables"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(_open_clip_dir())]
        sys.modules[name] = pkg
    # pretrained.py tries `import safetensors.torch` (which imports torch) only to prefer .safetensors
    # files; block that import while loading the table, then put things back as they were.
    blocked = "torch" not in sys.modules and "safetensors.torch" not in sys.modules
    if blocked:
        sys.modules["safetensors.torch"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(f"{name}.pretrained")
    finally:
        if blocked:
            sys.modules.pop("safetensors.torch", None)


def builtin_models() -> list[str]:
    """open_clip's built-in architecture names (from its model_configs folder)."""
    return sorted(p.stem for p in (_open_clip_dir() / "model_configs").glob("*.json"))


@dataclass(frozen=True)
class ClipWeights:
    """Where a CLIP model comes from: what to hand to open_clip and the encoder id recorded with labels."""

    model_name: str                    # open_clip model name ('ViT-B-32' or 'local-dir:/abs/folder')
    pretrained: str | None             # a weights file, or a tag when `download` is set
    encoder: str                       # e.g. 'ViT-B-32/openai' or 'local-dir:tiny-clip'
    quick_gelu: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)
    download: bool = False


def _tag_preprocess(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for src, dst in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"),
                     ("resize_mode", "image_resize_mode")):
        if cfg.get(src):
            out[dst] = tuple(cfg[src]) if isinstance(cfg[src], list | tuple) else cfg[src]
    return out


def _hf_cached(repo_id: str, filenames: Sequence[str]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        hit = try_to_load_from_cache(repo_id, filename)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def _cached_weights(cfg: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A cached weights file for an open_clip pretrained config, and the places looked at."""
    looked: list[str] = []
    if cfg.get("file"):
        looked.append(str(cfg["file"]))
        if os.path.isfile(cfg["file"]):
            return str(cfg["file"]), looked
    hub = cfg.get("hf_hub") or ""
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        if not filename:
            names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        else:
            stem = filename.rsplit(".", 1)[0]
            names = [f"{stem}.safetensors", filename]
        looked.append(f"{_hf_cache_dir()} ({repo})")
        hit = _hf_cached(repo, names)
        if hit:
            return hit, looked
    url = cfg.get("url") or ""
    if url:
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        looked.append(path)
        if os.path.isfile(path):
            return path, looked
    return None, looked


def _reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds (name lookup included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def _checkpoint_weights(checkpoint: str | os.PathLike[str], model: str) -> ClipWeights:
    p = Path(checkpoint).expanduser()
    if not p.exists():
        raise UserError(f"--clip-checkpoint {p} does not exist; give an open_clip checkpoint file "
                        "(.pt, .bin, .safetensors) or a folder with open_clip_config.json")
    if p.is_dir():
        if not (p / "open_clip_config.json").is_file():
            raise UserError(f"--clip-checkpoint folder {p} has no open_clip_config.json; give the folder "
                            "open_clip saves (config + weights) or a weights file with --clip-model ARCH")
        if not any(f.suffix in _WEIGHT_SUFFIXES for f in p.iterdir() if f.is_file()):
            raise UserError(f"--clip-checkpoint folder {p} has no weights file (.safetensors, .bin, .pth); "
                            "add the weights next to open_clip_config.json")
        return ClipWeights(f"local-dir:{p.resolve()}", None, f"local-dir:{p.resolve().name}")
    if model not in builtin_models():
        raise UserError(f"unknown CLIP architecture {model!r} for checkpoint {p.name}; pass --clip-model "
                        "with one of open_clip's names (e.g. ViT-B-32) or a checkpoint folder with "
                        "open_clip_config.json")
    return ClipWeights(model, str(p.resolve()), f"{model}/{p.name}")


def resolve_weights(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
                    checkpoint: str | os.PathLike[str] | None = None) -> ClipWeights:
    """Find the weights of a CLIP model without importing torch; raise `UserError` at once when they are
    neither given, cached nor downloadable (offline, or the download host does not answer in 2 s)."""
    if checkpoint:
        return _checkpoint_weights(checkpoint, model)
    if model in LOCAL_ENCODERS:                   # a registered local encoder, e.g. the world's tiny CLIP
        return _checkpoint_weights(local_encoder_dir(model), model)
    if model not in builtin_models():
        raise UserError(f"unknown CLIP model {model!r}; use one of open_clip's architectures (e.g. ViT-B-32, "
                        "ViT-B-16, RN50) or pass --clip-checkpoint PATH")
    if not pretrained:
        raise UserError(f"no CLIP weights named for {model}; pass --clip-pretrained TAG (e.g. openai) or "
                        "--clip-checkpoint PATH")
    if os.path.isfile(pretrained):
        return ClipWeights(model, str(Path(pretrained).resolve()), f"{model}/{Path(pretrained).name}")
    table = _pretrained_table()
    cfg = table.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = ", ".join(table.list_pretrained_tags_by_model(model)) or "none"
        raise UserError(f"unknown CLIP weights {pretrained!r} for {model}; known tags: {tags} "
                        "(or pass --clip-checkpoint PATH)")
    encoder = f"{model}/{pretrained}"
    quick_gelu = bool(cfg.get("quick_gelu"))
    preprocess = _tag_preprocess(cfg)
    path, looked = _cached_weights(cfg)
    if path:
        return ClipWeights(model, path, encoder, quick_gelu, preprocess)
    where = "; ".join(looked) or "the open_clip caches"
    if offline():
        raise UserError(f"CLIP weights {encoder} are not cached ({where}) and downloads are off "
                        f"(HF_HUB_OFFLINE=1); {_FIX}, or download them once with internet access")
    host = "huggingface.co"
    if not cfg.get("hf_hub"):
        host = urlparse(cfg.get("url") or "").hostname or host
    if not _reachable(host):
        raise UserError(f"CLIP weights {encoder} are not cached ({where}) and {host} cannot be reached; "
                        f"{_FIX}, or download them once with internet access")
    return ClipWeights(model, pretrained, encoder, quick_gelu, preprocess, download=True)


class ClipEncoder:
    """A loaded open_clip model: unit-length image and text embeddings in one shared space.

    `encoder` identifies the weights (stored with labels and group embeddings, so that text search uses
    the same space), `recipe` how to load them again and their content digest; `logit_scale` is the
    model's learned temperature (100 for OpenAI's CLIP).
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, encoder: str,
                 device: str = "cpu", recipe: EncoderRecipe | None = None) -> None:
        self.model = model.eval()
        #: how to load this encoder again (recorded in knowledge bases beside its labels)
        self.recipe = recipe
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.device = device
        self._text_cache: dict[tuple[str, ...], np.ndarray] = {}

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.exp().item()) if scale is not None else 100.0

    @property
    def dim(self) -> int:
        return int(self.encode_texts(["a photo"]).shape[1])

    def encode_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """PIL images (or PNG bytes) -> [N, D] unit-length float32 image embeddings."""
        import torch

        from .images import to_pil

        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                chunk = [self.preprocess(to_pil(im)) for im in images[start:start + batch_size]]
                emb = self.model.encode_image(torch.stack(chunk).to(self.device)).float()
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> [N, D] unit-length float32 text embeddings."""
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
                emb = self.model.encode_text(tokens).float()
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def encode_concepts(self, concepts: Sequence[str],
                        templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
        """Prompt-ensembled concept embeddings: the mean of each concept's unit text embeddings over the
        templates, renormalised ([len(concepts), D]); cached per (concepts, templates)."""
        templates = tuple(templates) or ("{}",)
        for t in templates:
            if "{}" not in t:
                raise UserError(f"prompt template {t!r} has no '{{}}' where the concept goes")
        key = (*templates, "\x00", *concepts)
        if key not in self._text_cache:
            texts = [t.format(c) for c in concepts for t in templates]
            emb = self.encode_texts(texts).reshape(len(concepts), len(templates), -1).mean(1)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
            self._text_cache[key] = emb.astype(np.float32)
        return self._text_cache[key]

    def __repr__(self) -> str:
        return f"ClipEncoder({self.encoder!r}, device={self.device!r})"


def load_clip(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
              checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu") -> ClipEncoder:
    """Build a CLIP model with open_clip: a built-in architecture with a pretrained tag (from the local
    caches, or downloaded when online), a weights file (`checkpoint` + `model`), or an open_clip folder
    (`checkpoint`, with open_clip_config.json). Missing weights offline raise `UserError` at once."""
    weights = resolve_weights(model, pretrained, checkpoint)
    import open_clip

    kwargs: dict[str, Any] = dict(weights.preprocess)
    if weights.quick_gelu:
        kwargs["force_quick_gelu"] = True
    try:
        clip_model, _, preprocess = open_clip.create_model_and_transforms(
            weights.model_name, pretrained=weights.pretrained, device=device, **kwargs)
        tokenizer = open_clip.get_tokenizer(weights.model_name)
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"could not load CLIP {weights.encoder}: {first[:300]}; check --clip-model and "
                        "--clip-checkpoint") from None
    from ..models.identity import module_digest

    if model in LOCAL_ENCODERS and not checkpoint:
        checkpoint = local_encoder_dir(model)
    recipe = make_recipe(weights.encoder, module_digest(clip_model), model, pretrained, checkpoint)
    return ClipEncoder(clip_model, preprocess, tokenizer, weights.encoder, device=device, recipe=recipe)


__all__ = ["ClipEncoder", "ClipWeights", "DEFAULT_MODEL", "DEFAULT_PRETRAINED", "DEFAULT_TEMPLATES",
           "load_clip", "resolve_weights", "offline", "builtin_models"]
