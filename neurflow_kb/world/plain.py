"""`WorldPlainNet`: a plain convolutional net for the world (no skip connections), the second architecture
beside the ResNet-style `WorldNet`.

Four blocks ``block1 .. block4`` of two 3x3 convolutions each (the first with stride 2), batch norm and
ReLU, VGG style, then global average pooling and ``fc``: the same resolutions and widths as `WorldNet`
(32, 16, 8, 4 pixels; 16, 32, 48, 64 channels) but every layer depends on the one below only, with a
different training run. Chain: ``WORLD_PLAIN_LAYERS``; input: normalised [B,3,64,64].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .classifier import ASSETS, WORLD_WIDTHS, load_checkpoint
from .generator import CLASS_NAMES

PLAIN_FILE = ASSETS / "world_plain.pt"
WORLD_PLAIN_LAYERS: tuple[str, ...] = ("block1", "block2", "block3", "block4", "fc")


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class WorldPlainNet(nn.Module):
    """block1 (32x32) -> block2 (16x16) -> block3 (8x8) -> block4 (4x4) -> pool -> fc, no skips."""

    def __init__(self, num_classes: int = len(CLASS_NAMES),
                 widths: tuple[int, int, int, int] = WORLD_WIDTHS) -> None:
        super().__init__()
        cin = 3
        for i, w in enumerate(widths, start=1):
            setattr(self, f"block{i}", nn.Sequential(*_conv(cin, w, stride=2), *_conv(w, w)))
            cin = w
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = getattr(self, f"block{i}")(x)
        return self.fc(self.flatten(self.pool(x)))


def load_world_plain(path: str | Path | None = None) -> WorldPlainNet:
    """The trained plain world net in eval mode (the shipped weights, or a state dict at `path`)."""
    return load_checkpoint(WorldPlainNet, path, PLAIN_FILE, "plain world net", "plain")
