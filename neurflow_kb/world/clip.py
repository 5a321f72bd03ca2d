"""The tiny CLIP of the world: open_clip's own CLIP code with a small custom config, shipped weights.

Image tower: open_clip's ModifiedResNet (layers [1,1,1,1], width 8) on 64x64 images; text tower: a
2-layer transformer of width 32 with open_clip's tokenizer (offline, context 24). Images are normalised
with open_clip's default (OpenAI) mean and std, so every open_clip loading route preprocesses correctly:

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + str(world_clip_dir()))
    register_world_clip(); open_clip.create_model_and_transforms(WORLD_CLIP_NAME,
                                                                  pretrained=str(world_clip_checkpoint()))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from .classifier import ASSETS
from .generator import CONCEPTS

WORLD_CLIP_NAME = "neurflow-world-clip"
CLIP_DIR = ASSETS / "world_clip"
CLIP_WEIGHTS = "open_clip_model.safetensors"
CONTEXT_LENGTH = 24
OPENAI_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

WORLD_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}
WORLD_CLIP_PREPROCESS: dict[str, Any] = {"size": 64, "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD),
                                         "interpolation": "bilinear", "resize_mode": "shortest"}
# Texts the tiny CLIP was trained to align with one concept: the bare word and this template.
CONCEPT_TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}")


def world_clip_dir() -> Path:
    """Folder with `open_clip_config.json` and the weights, for ``open_clip`` 'local-dir:' loading."""
    return CLIP_DIR


def world_clip_checkpoint() -> Path:
    """The weights file (safetensors), usable as ``pretrained=`` with the registered config name."""
    return CLIP_DIR / CLIP_WEIGHTS


def register_world_clip() -> str:
    """Register the model config with open_clip (idempotent); returns its name, `WORLD_CLIP_NAME`."""
    import open_clip

    if WORLD_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(CLIP_DIR / f"{WORLD_CLIP_NAME}.json")
    return WORLD_CLIP_NAME


def write_clip_configs(directory: Path = CLIP_DIR) -> None:
    """Write the config files open_clip reads: the named model config and the local-dir wrapper."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{WORLD_CLIP_NAME}.json").write_text(json.dumps(WORLD_CLIP_CONFIG, indent=2) + "\n")
    wrapper = {"model_cfg": WORLD_CLIP_CONFIG, "preprocess_cfg": WORLD_CLIP_PREPROCESS}
    (directory / "open_clip_config.json").write_text(json.dumps(wrapper, indent=2) + "\n")


def new_world_clip() -> Any:
    """A randomly initialised tiny CLIP (open_clip's `CLIP` class with the world config)."""
    from open_clip.model import CLIP

    return CLIP(**WORLD_CLIP_CONFIG, output_dict=True)


def load_world_clip(directory: str | Path | None = None, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) of the trained tiny CLIP, loaded by open_clip from the shipped folder.

    `preprocess` maps a PIL image to the model input; `tokenizer` maps a list of texts to token ids.
    """
    d = Path(directory) if directory is not None else CLIP_DIR
    if not (d / CLIP_WEIGHTS).is_file() or not (d / "open_clip_config.json").is_file():
        raise UserError(f"tiny world CLIP not found in {d} (needs open_clip_config.json and {CLIP_WEIGHTS}); "
                        "train it with `python -m neurflow_kb_dev.world_train clip` (source checkout) or "
                        "reinstall neurflow-kb")
    try:
        import open_clip
    except ImportError as exc:
        raise UserError("the tiny world CLIP needs open_clip: pip install 'neurflow-kb[clip]'") from exc
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{d}", device=device)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{d}")
    return model.eval(), preprocess, tokenizer


def concept_prompts(template: str = "{}") -> list[str]:
    """The world's concept vocabulary as texts for the text tower (bare words by default)."""
    return [template.format(c) for c in CONCEPTS]
