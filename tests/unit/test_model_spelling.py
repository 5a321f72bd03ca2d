"""Model names as users type them: one canonical spelling (pure functions, no torch)."""

from __future__ import annotations

import pytest

from neurflow_kb.model_names import canonical_name, same_model


@pytest.mark.parametrize(("typed", "canonical"), [
    ("efficientnet-lite0", "efficientnet_lite0"),
    ("EfficientNet-Lite0", "efficientnet_lite0"),
    ("torchvision:ResNet-50", "resnet_50"),
    ("tv:mobilenet_v3_small", "mobilenet_v3_small"),
    ("TIMM:ResNet18", "timm:resnet18"),
    ("world-plain@world-1", "world_plain@world-1"),
])
def test_canonical_spelling(typed: str, canonical: str) -> None:
    assert canonical_name(typed) == canonical


def test_same_model_ignores_dashes_but_not_weights_or_sources() -> None:
    assert same_model("ResNet-18", "resnet18")
    assert same_model("World-Plain", "world_plain")
    assert not same_model("world@a", "world@b")
    assert not same_model("world", "world@a")
    assert not same_model("resnet18", "resnet34")
