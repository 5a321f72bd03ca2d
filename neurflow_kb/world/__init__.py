"""A ground-truth image world with planted concepts, its trained classifier and tiny CLIP (shipped).

    from neurflow_kb.world import generate, world_adapter, load_world_clip
    data = generate(600, seed=1)                    # images, labels, captions, concept records, masks
    adapter = world_adapter()                       # ModelAdapter over the shipped WorldNet
    plain = world_plain_adapter()                   # ... and over the shipped WorldPlainNet (no skips)
    model, preprocess, tokenizer = load_world_clip()  # open_clip CLIP trained on the world

Nothing here downloads or trains anything; training lives in `neurflow_kb_dev.world_train`.
"""

from __future__ import annotations

from ..errors import UserError
from ..models import ModelAdapter
from .adapters import world_plain_weights_id, world_preprocess, world_weights_id
from .classifier import WORLD_LAYERS, WorldNet, load_world_classifier
from .clip import (
    CONCEPT_TEMPLATES,
    WORLD_CLIP_NAME,
    concept_prompts,
    load_world_clip,
    register_world_clip,
    world_clip_checkpoint,
    world_clip_dir,
)
from .generator import (
    BACKGROUNDS,
    CLASS_KINDS,
    CLASS_NAMES,
    COLOURS,
    CONCEPT_KIND,
    CONCEPT_KINDS,
    CONCEPTS,
    IMAGE_SIZE,
    PARTS,
    SHAPES,
    TEXTURES,
    WORLD_CLASSES,
    WORLD_MEAN,
    WORLD_STD,
    WorldBatch,
    WorldClass,
    all_captions,
    caption,
    class_caption,
    generate,
    normalize_images,
    region_caption,
    region_concepts,
)
from .plain import WORLD_PLAIN_LAYERS, WorldPlainNet, load_world_plain


def class_concepts(cls: int | str) -> dict[str, str]:
    """The defining concepts of a world class (index or name): {'shape': ..., 'colour': ..., ...}."""
    if isinstance(cls, str):
        if cls not in CLASS_NAMES:
            raise UserError(f"unknown world class {cls!r}; classes are {', '.join(CLASS_NAMES)}")
        cls = CLASS_NAMES.index(cls)
    if not 0 <= int(cls) < len(WORLD_CLASSES):
        raise UserError(f"world class {cls} is out of range 0..{len(WORLD_CLASSES) - 1}")
    c = WORLD_CLASSES[int(cls)]
    return {"shape": c.shape, "colour": c.colour, "texture": c.texture, "part": c.part}


def world_plain_adapter(path: str | None = None, layers: list[str] | None = None) -> ModelAdapter:
    """A `ModelAdapter` over the trained plain world net, chain ``block1 .. block4, fc``."""
    model = load_world_plain(path)
    return ModelAdapter(model, list(layers or WORLD_PLAIN_LAYERS), name="world_plain",
                        weights=str(path) if path else world_plain_weights_id(),
                        preprocess=world_preprocess(), class_names=list(CLASS_NAMES))


def world_adapter(path: str | None = None, layers: list[str] | None = None) -> ModelAdapter:
    """A `ModelAdapter` over the trained world classifier, chain ``layer1 .. layer4, fc``."""
    model = load_world_classifier(path)
    return ModelAdapter(model, list(layers or WORLD_LAYERS), name="world",
                        weights=None if path else world_weights_id(),
                        weights_source=str(path) if path else None,
                        preprocess=world_preprocess(), class_names=list(CLASS_NAMES),
                        check_chain=layers is not None)


__all__ = [
    "BACKGROUNDS", "CLASS_KINDS", "CLASS_NAMES", "COLOURS", "CONCEPTS", "CONCEPT_KIND", "CONCEPT_KINDS",
    "CONCEPT_TEMPLATES", "IMAGE_SIZE", "PARTS", "SHAPES", "TEXTURES", "WORLD_CLASSES", "WORLD_CLIP_NAME",
    "WORLD_LAYERS", "WORLD_MEAN", "WORLD_PLAIN_LAYERS", "WORLD_STD", "WorldBatch", "WorldClass", "WorldNet",
    "WorldPlainNet", "all_captions",
    "caption", "class_caption", "class_concepts", "concept_prompts", "generate", "load_world_classifier",
    "load_world_clip", "load_world_plain", "normalize_images", "region_caption", "region_concepts",
    "register_world_clip", "world_adapter", "world_clip_checkpoint", "world_clip_dir", "world_plain_adapter",
    "world_plain_weights_id", "world_preprocess", "world_weights_id",
]
