"""Model names as users type them, mapped to one canonical form (no torch import: the store queries use it).

Canonical: lower case, ``-`` read as ``_``; built-ins and torchvision classifiers by their bare torchvision
name (``torchvision:ResNet50`` -> ``resnet50``), timm models as ``timm:NAME`` (timm's ``resnet18`` is not
torchvision's). `neurflow_kb.models.reference.resolve` checks that a name exists; this module only spells.
"""

from __future__ import annotations

_PREFIXES = {"torchvision": "torchvision", "tv": "torchvision", "timm": "timm"}


def canonical_name(text: str) -> str:
    """The canonical spelling of a model name or key as a user types it, without checking that the model
    exists (store names of custom modules are compared in this form too): ``torchvision:ResNet-50`` ->
    ``resnet50``, ``TIMM:ResNet18`` -> ``timm:resnet18``, ``world-plain@world-1`` -> ``world_plain@world-1``
    (a key's weights id after ``@`` is kept as it is)."""
    raw = str(text).strip()
    name, at, weights = raw.partition("@")
    prefix, colon, rest = name.partition(":")
    source = _PREFIXES.get(prefix.strip().lower()) if colon else None
    base = (rest if source else name).strip().lower()
    if source == "timm":
        arch, dot, tag = base.partition(".")
        base = "timm:" + arch.replace("-", "_") + dot + tag
    else:
        base = base.replace("-", "_")
    return base + (at + weights.strip() if at else "")


def loose_name(name: str) -> str:
    """A name without case, '-' and '_': ``ResNet-18``, ``resnet_18`` and ``resnet18`` meet here."""
    return name.lower().replace("-", "").replace("_", "")


def same_model(typed: str, stored: str) -> bool:
    """Whether a name or key as a user typed it names a stored model name or key (`canonical_name` forms
    equal, or equal without '-' and '_': ``ResNet-18`` names ``resnet18``)."""
    a, b = canonical_name(typed), canonical_name(stored)
    if ("@" in a) != ("@" in b):
        return False
    name_a, _, weights_a = a.partition("@")
    name_b, _, weights_b = b.partition("@")
    return weights_a == weights_b and (name_a == name_b or loose_name(name_a) == loose_name(name_b))


__all__ = ["canonical_name", "loose_name", "same_model"]
