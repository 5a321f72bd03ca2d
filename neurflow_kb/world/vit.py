"""`WorldViT`: a small vision transformer for the world, the second architecture beside `WorldNet`.

A convolutional stem (three stride-2 3x3 convolutions, Xiao et al. 2021, "Early convolutions help
transformers see better") turns the 64x64 image into 8x8 patch tokens of width 64; a class token at
position 0, learned position embeddings, four pre-norm transformer blocks ``block1 .. block4`` and a
linear ``head`` on the LayerNorm of the class token, as in ViT-B/16. Neurons are residual-stream
features; the adapter pools them over the patch tokens (token 0 excluded). Chain: ``WORLD_VIT_LAYERS``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .classifier import ASSETS
from .generator import CLASS_NAMES, IMAGE_SIZE

VIT_FILE = ASSETS / "world_vit.pt"
WORLD_VIT_LAYERS: tuple[str, ...] = ("block1", "block2", "block3", "block4", "head")
PATCH = 8          # the stem's total stride: 8x8 pixels per token
WIDTH = 64
HEADS = 4
MLP = 128


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)); one whole block of the chain."""

    def __init__(self, width: int = WIDTH, heads: int = HEADS, mlp: int = MLP) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp), nn.GELU(), nn.Linear(mlp, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class WorldViT(nn.Module):
    """[B,3,64,64] -> stem -> tokens [B,1+64,64] (class token first) -> block1..block4 -> LN(class token)
    -> head."""

    def __init__(self, num_classes: int = len(CLASS_NAMES), width: int = WIDTH, depth: int = 4) -> None:
        super().__init__()
        n = (IMAGE_SIZE // PATCH) ** 2
        self.patch = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, width, 3, 2, 1))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        for i in range(1, depth + 1):
            setattr(self, f"block{i}", Block(width))
        self.depth = depth
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], dim=1) + self.pos
        for i in range(1, self.depth + 1):
            t = getattr(self, f"block{i}")(t)
        return self.head(self.norm(t[:, 0]))


def load_world_vit(path: str | Path | None = None) -> WorldViT:
    """The trained world ViT in eval mode (the shipped weights, or a state dict at `path`)."""
    p = Path(path) if path is not None else VIT_FILE
    if not p.is_file():
        raise UserError(f"world ViT weights not found at {p}; train them with "
                        "`python -m neurflow_kb.world.train vit` or reinstall neurflow-kb")
    state = torch.load(p, map_location="cpu", weights_only=True)
    model = WorldViT()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{p} does not hold WorldViT weights: {str(exc).splitlines()[0]}") from exc
    return model.eval()
