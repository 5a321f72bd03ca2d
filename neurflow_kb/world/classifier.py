"""`WorldNet`: the small ResNet-style classifier of the world, and its shipped weights.

Named blocks ``layer1 .. layer4`` (one residual block each) and ``fc`` make the NeurFlow layer chain
natural: ``WORLD_LAYERS``. Input: normalised [B,3,64,64] (`neurflow_kb.world.normalize_images`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ..errors import UserError
from .generator import CLASS_NAMES

ASSETS = Path(__file__).resolve().parent / "assets"
CLASSIFIER_FILE = ASSETS / "world_classifier.pt"
M = TypeVar("M", bound=nn.Module)
WORLD_LAYERS: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4", "fc")
WORLD_WIDTHS: tuple[int, int, int, int] = (16, 32, 48, 64)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected) skip, then ReLU: one whole block of the chain."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class WorldNet(nn.Module):
    """Stem (stride 2) -> layer1 (32x32) -> layer2 (16x16) -> layer3 (8x8) -> layer4 (4x4) -> pool -> fc."""

    def __init__(self, num_classes: int = len(CLASS_NAMES),
                 widths: tuple[int, int, int, int] = WORLD_WIDTHS) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w1, 3, 2, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.layer1 = BasicBlock(w1, w1)
        self.layer2 = BasicBlock(w1, w2, stride=2)
        self.layer3 = BasicBlock(w2, w3, stride=2)
        self.layer4 = BasicBlock(w3, w4, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.flatten(self.pool(x)))


def load_world_classifier(path: str | Path | None = None) -> WorldNet:
    """The trained world classifier in eval mode (the shipped weights, or a state dict at `path`)."""
    return load_checkpoint(WorldNet, path, CLASSIFIER_FILE, "world classifier", "classifier")


def load_checkpoint(factory: Callable[[], M], path: str | Path | None, default: Path, what: str,
                    train: str) -> M:
    """A world model built by `factory` with the state dict at `path` (default: the shipped `default`),
    in eval mode; a missing file or foreign weights are a one-line `UserError`."""
    p = Path(path) if path is not None else default
    if not p.is_file():
        raise UserError(f"{what} weights not found at {p}; train them with "
                        f"`python -m neurflow_kb_dev.world_train {train}` (source checkout) or reinstall "
                        "neurflow-kb")
    state = torch.load(p, map_location="cpu", weights_only=True)
    model = factory()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{p} does not hold {type(model).__name__} weights: "
                        f"{str(exc).splitlines()[0]}") from exc
    return model.eval()
