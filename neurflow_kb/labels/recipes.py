"""How to load a label encoder again: the recipe a knowledge base records beside the labels it made.

Labels and group embeddings name their encoder by an id (`ViT-B-32/openai`, `local-dir:world_clip`);
the recipe says where its weights come from (an open_clip pretrained tag, a checkpoint file or folder,
or a *registered local encoder* that ships with a package, such as the world's tiny CLIP) and carries
the weights' content digest, so `query search` and `label` load the same encoder without options and a
different encoder under the same id is noticed instead of silently mixing two embedding spaces.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

#: Kinds of recipe: an open_clip tag (cache or download), a checkpoint path, a registered local encoder.
KINDS = ("pretrained", "checkpoint", "local")
#: Registered local encoders: name -> "module:function" returning the open_clip folder (config + weights).
LOCAL_ENCODERS: dict[str, str] = {"neurflow-world-clip": "neurflow_kb.world.clip:world_clip_dir"}


def local_encoder_dir(name: str) -> Path:
    """The folder of a registered local encoder (`UserError` for an unknown name)."""
    target = LOCAL_ENCODERS.get(name)
    if target is None:
        known = ", ".join(sorted(LOCAL_ENCODERS))
        raise UserError(f"unknown local CLIP encoder {name!r}; registered ones: {known}")
    module, func = target.split(":")
    folder: Callable[[], Path] = getattr(importlib.import_module(module), func)
    return Path(folder())


def registered_name(folder: str | Path) -> str | None:
    """The registered local encoder whose folder is `folder`, if any (so the recipe names it, not a path
    inside one installation)."""
    p = Path(folder).expanduser().resolve()
    for name in LOCAL_ENCODERS:
        if local_encoder_dir(name).resolve() == p:
            return name
    return None


@dataclass(frozen=True)
class EncoderRecipe:
    """Where a label encoder's weights come from, and their content digest (`sha256:<16 hex>` over the
    model's tensors, see `neurflow_kb.models.identity`)."""

    encoder: str                    # the id labels and embeddings carry
    kind: str                       # one of KINDS
    model: str | None = None        # open_clip architecture (pretrained, checkpoint file) or local name
    pretrained: str | None = None   # open_clip tag (kind 'pretrained')
    path: str | None = None         # absolute path of the checkpoint file or folder (kind 'checkpoint')
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "the knowledge base") -> EncoderRecipe:
        """A recipe from stored fields (an `Encoder` node or a manifest), checked: one-line `UserError`."""
        fields = {k: d.get(k) for k in ("encoder", "kind", "model", "pretrained", "path", "digest")}
        if fields["encoder"] is None and d.get("key") is not None:
            fields["encoder"] = d.get("key")
        for k, v in fields.items():
            if v is not None and not isinstance(v, str):
                raise UserError(f"the encoder recipe in {where} has a non-text {k!r}; relabel the groups")
        if not fields["encoder"] or fields["kind"] not in KINDS or not fields["digest"]:
            raise UserError(f"the encoder recipe of {fields['encoder']!r} in {where} is incomplete (kind "
                            f"{fields['kind']!r}); relabel the groups with `neurflow-kb label --replace`")
        need = {"pretrained": ("model", "pretrained"), "checkpoint": ("path",), "local": ("model",)}
        for k in need[str(fields["kind"])]:
            if not fields[k]:
                raise UserError(f"the encoder recipe of {fields['encoder']!r} in {where} lacks {k!r}; "
                                "relabel the groups with `neurflow-kb label --replace`")
        return cls(**fields)  # type: ignore[arg-type]

    def describe(self) -> str:
        """Where the weights come from, in words."""
        if self.kind == "pretrained":
            return f"open_clip {self.model} with pretrained tag {self.pretrained}"
        if self.kind == "local":
            return f"the registered local encoder {self.model}"
        return f"the checkpoint {self.path}" + (f" ({self.model})" if self.model else "")


def make_recipe(encoder: str, digest: str, model: str, pretrained: str | None,
                checkpoint: str | Path | None) -> EncoderRecipe:
    """The recipe of an encoder loaded by `load_clip(model, pretrained, checkpoint)`."""
    if checkpoint:
        p = Path(checkpoint).expanduser().resolve()
        if p.is_dir() and (name := registered_name(p)):
            return EncoderRecipe(encoder, "local", model=name, digest=digest)
        return EncoderRecipe(encoder, "checkpoint", model=None if p.is_dir() else model, path=str(p),
                             digest=digest)
    if pretrained and Path(pretrained).is_file():
        return EncoderRecipe(encoder, "checkpoint", model=model, path=str(Path(pretrained).resolve()),
                             digest=digest)
    return EncoderRecipe(encoder, "pretrained", model=model, pretrained=pretrained, digest=digest)


def load_recorded(recipe: EncoderRecipe, device: str = "cpu") -> Any:
    """Load the encoder a recipe describes and check that its weights are the recorded ones; a missing
    checkpoint or different weights give a one-line `UserError` saying how to supply them."""
    from .clip import load_clip

    fix = "pass --clip-checkpoint PATH (or --clip-model / --clip-pretrained) with those weights"
    if recipe.kind == "local":
        clip = load_clip(checkpoint=local_encoder_dir(str(recipe.model)), device=device)
    elif recipe.kind == "checkpoint":
        if not Path(str(recipe.path)).exists():
            raise UserError(f"the groups were embedded with CLIP {recipe.encoder} from {recipe.path}, "
                            f"which does not exist any more; {fix} ({recipe.digest})")
        clip = load_clip(recipe.model or "ViT-B-32", None, recipe.path, device=device)
    else:
        clip = load_clip(str(recipe.model), recipe.pretrained, None, device=device)
    check_same(recipe, clip.recipe)
    return clip


def check_same(recorded: EncoderRecipe, loaded: EncoderRecipe | None) -> None:
    """Refuse an encoder whose id matches a recorded one but whose weights differ (content identity)."""
    if loaded is None or loaded.encoder != recorded.encoder or loaded.digest == recorded.digest:
        return
    raise UserError(f"CLIP {recorded.encoder} from {loaded.describe()} has other weights ({loaded.digest}) "
                    f"than the encoder of that name the knowledge base records ({recorded.digest}, from "
                    f"{recorded.describe()}); use the same weights, or rename the checkpoint to give "
                    "the other encoder its own id")


def stored_encoder(store: Any, model: str | None = None) -> EncoderRecipe | None:
    """The recorded recipe of the one encoder the groups of `store` (of `model`) are embedded with; None
    when no group has an embedding. Several encoders, or one without a recipe, give a `UserError`."""
    from ..queries import embedding_encoders

    ids = sorted(set(embedding_encoders(store, model)["encoder"].astype(str)))
    if not ids:
        return None
    choose = "choose one with --clip-model / --clip-pretrained or --clip-checkpoint"
    if len(ids) > 1:
        raise UserError(f"the groups are embedded with several CLIP encoders ({', '.join(ids)}); {choose}")
    recorded = store.encoders()
    row = recorded[recorded["key"] == ids[0]]
    if row.empty:
        raise UserError(f"{store.describe()} does not record how to load CLIP {ids[0]} (labelled by an "
                        f"earlier version); {choose}, or relabel with `neurflow-kb label --replace`")
    return EncoderRecipe.from_dict(row.iloc[0].to_dict(), where=store.describe())


__all__ = ["EncoderRecipe", "KINDS", "LOCAL_ENCODERS", "check_same", "load_recorded", "local_encoder_dir",
           "make_recipe", "registered_name", "stored_encoder"]
