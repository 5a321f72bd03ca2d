"""Class lists as users type them: indices, inclusive ranges and class names, comma-separated."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UserError


def resolve_class(cls: str | int, names: Sequence[str] | None, num_classes: int) -> int:
    """A class index from an index or a (case-insensitive) class name."""
    text = str(cls).strip()
    if re.fullmatch(r"-?[0-9]+", text):       # ASCII digits only: '²'.isdigit() is true, int('²') fails
        index = int(text)
        if not 0 <= index < num_classes:
            shown = text if len(text) <= 20 else text[:17] + "..."
            raise UserError(f"class {shown} is out of range (the model has {num_classes} classes: "
                            f"0..{num_classes - 1})")
        return index
    lowered = [n.lower() for n in names or []]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise UserError(f"unknown class {shown!r}; give a class index 0..{num_classes - 1} or an exact class "
                    "name")


def parse_classes(spec: str | Sequence[int | str], names: Sequence[str] | None,
                  num_classes: int) -> list[int]:
    """'0,5-9,tiger cat,bee' (or a list of indices and names) -> class indices (ranges inclusive, names
    case-insensitive), in order, without repeats; 'all' gives every class."""
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return list(range(num_classes))
        parts: list[int | str] = [p.strip() for p in spec.split(",")]
    else:
        parts = list(spec)
    out: list[int] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            lo, dash, hi = part.partition("-")
            if dash and lo.strip().isdigit() and hi.strip().isdigit():
                a, b = (resolve_class(v, names, num_classes) for v in (lo, hi))
                if a > b:
                    raise UserError(f"class range {part!r} runs backwards; write it as {b}-{a}")
                out.extend(range(a, b + 1))
                continue
        out.append(resolve_class(part, names, num_classes))
    if not out:
        raise UserError("--classes names no class; give indices, ranges (5-9) or names, comma-separated")
    return list(dict.fromkeys(out))


__all__ = ["parse_classes", "resolve_class"]
