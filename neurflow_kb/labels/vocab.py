"""Concept vocabularies for labelling: ImageNet class names, the built-in broad list, or a user file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

BUILTIN_VOCABULARIES = ("imagenet", "broad")


@dataclass(frozen=True)
class Vocabulary:
    """A named list of concept texts; `name` becomes `Concept.vocabulary` and the first part of its key."""

    name: str
    concepts: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.concepts:
            raise UserError(f"vocabulary {self.name!r} has no concepts; give at least one")

    def __len__(self) -> int:
        return len(self.concepts)


def _imagenet() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def read_vocabulary_file(path: str | Path) -> Vocabulary:
    """One concept per line; blank lines and lines starting with '#' are skipped, duplicates dropped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"vocabulary file {p} is not UTF-8 text; save it as one concept per line") from None
    concepts = [ln.strip() for ln in text.splitlines()]
    concepts = [c for c in concepts if c and not c.startswith("#")]
    if not concepts:
        raise UserError(f"vocabulary file {p} has no concepts; write one concept per line")
    return Vocabulary(p.stem, tuple(dict.fromkeys(concepts)))


def load_vocabulary(spec: str | Path | Vocabulary | list[str]) -> Vocabulary:
    """'imagenet' (torchvision's 1,000 class names), 'broad' (built-in list), a file path (one concept
    per line), a list of concepts (vocabulary 'custom') or a `Vocabulary`."""
    if isinstance(spec, Vocabulary):
        return spec
    if isinstance(spec, list | tuple):
        return Vocabulary("custom", tuple(dict.fromkeys(str(c).strip() for c in spec if str(c).strip())))
    text = str(spec)
    if text.lower() == "imagenet":
        return Vocabulary("imagenet", tuple(_imagenet()))
    if text.lower() == "broad":
        from .broad import broad_concepts

        return Vocabulary("broad", tuple(broad_concepts()))
    p = Path(text)
    if p.is_file():
        return read_vocabulary_file(p)
    raise UserError(f"unknown vocabulary {text!r}; use 'imagenet', 'broad' or a text file with one concept "
                    "per line")


__all__ = ["BUILTIN_VOCABULARIES", "Vocabulary", "load_vocabulary", "read_vocabulary_file"]
