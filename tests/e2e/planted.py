"""A small world with planted concepts for the labelling, viewer and debugging tests.

Images are 32 px: one coloured object (circle, square or stripes) on grey noise. A tiny open_clip model
(custom config) learns captions of these images, a tiny CNN learns to classify colour x shape, and each
crop's planted concept (the object's colour, or "gray" for background) is known from the pixels.
Everything is trained here, seeded, in seconds on one CPU thread.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurflow_kb.labels import DEFAULT_TEMPLATES

COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.15, 0.25, 0.95),
           "yellow": (0.95, 0.9, 0.1)}
SHAPES = ("circle", "square", "stripes")
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]
CLASS_NAMES = [f"{c} {s}" for c, s in CLASSES]
SIZE = 32
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Concepts the tiny CLIP learns: colours, the grey background, shapes and colour-shape pairs.
CONCEPTS = [*COLOURS, "gray", *SHAPES, *CLASS_NAMES]
#: A labelling vocabulary: the planted concepts plus distractors the tiny CLIP never saw.
VOCABULARY = [*COLOURS, "gray", *SHAPES, "purple", "orange", "wood", "sky", "fur"]
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": SIZE, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def draw(colour: str, shape: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One HxWx3 float image in [0,1] and the boolean mask of its object."""
    img = 0.45 + 0.08 * rng.standard_normal((SIZE, SIZE, 3))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    r = rng.uniform(0.22, 0.32) * SIZE
    cy, cx = rng.uniform(r, SIZE - r, 2)
    if shape == "circle":
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "square":
        m = (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    else:
        m = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) & (((xx // 3) % 2) == 0)
    img[m] = np.asarray(COLOURS[colour]) + 0.05 * rng.standard_normal(3)
    return np.clip(img, 0, 1).astype(np.float32), m


@dataclass
class World:
    """Images (model-normalised [N,3,S,S]), their object masks, class labels and colours."""

    images: torch.Tensor
    masks: np.ndarray
    labels: torch.Tensor
    raw: np.ndarray

    def colour(self, i: int) -> str:
        return CLASSES[int(self.labels[i])][0]

    def crop_concept(self, image: int, top: int, left: int, size: int) -> str | None:
        """The planted concept of a crop: its object's colour when the object fills >= 30% of it, 'gray'
        when < 5%, else None (mixed)."""
        frac = float(self.masks[image][top:top + size, left:left + size].mean())
        return self.colour(image) if frac >= 0.3 else ("gray" if frac < 0.05 else None)

    def png(self, i: int) -> bytes:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray((self.raw[i] * 255).round().astype(np.uint8)).save(buf, format="PNG")
        return buf.getvalue()


def make_world(n: int, seed: int = 0) -> World:
    """`n` images cycling through the 12 colour x shape classes."""
    rng = np.random.default_rng(seed)
    raw, masks, labels = [], [], []
    for i in range(n):
        y = i % len(CLASSES)
        img, m = draw(*CLASSES[y], rng)
        raw.append(img)
        masks.append(m)
        labels.append(y)
    arr = np.stack(raw)
    x = (torch.tensor(arr).permute(0, 3, 1, 2) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD).view(1, 3, 1, 1)
    return World(x.float(), np.stack(masks), torch.tensor(labels), arr)


def classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("c1", nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())),
        ("c2", nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.ReLU())),
        ("c3", nn.Sequential(nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.ReLU())),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(32, len(CLASSES)))]))


CHAIN = ["c1", "c2", "c3", "fc"]


def train_classifier(world: World, epochs: int = 8, seed: int = 0) -> nn.Module:
    """The colour x shape CNN, trained with Adam on `world` (seeded)."""
    model = classifier(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(world.images), generator=g)
        for i in range(0, len(perm), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(model(world.images[b]), world.labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _clip_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """Images (full or random crops, CLIP-normalised) and the concepts each one shows."""
    imgs, attrs = [], []
    for _ in range(n):
        colour, shape = CLASSES[int(rng.integers(len(CLASSES)))]
        img, m = draw(colour, shape, rng)
        if rng.random() < 0.5:
            k = int(rng.integers(8, 24))
            t, le = (int(v) for v in rng.integers(0, SIZE - k + 1, 2))
            patch = torch.tensor(img[t:t + k, le:le + k]).permute(2, 0, 1)[None]
            img = F.interpolate(patch, size=(SIZE, SIZE), mode="bilinear")[0].permute(1, 2, 0).numpy()
            frac = m[t:t + k, le:le + k].mean()
            a: tuple[str, ...] = (colour,) if frac > 0.3 else (("gray",) if frac < 0.05 else ())
        else:
            a = (colour, shape)
        imgs.append(img)
        attrs.append(a)
    x = torch.tensor(np.stack(imgs)).permute(0, 3, 1, 2)
    x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return x.float(), attrs


def train_tiny_clip(folder: Path, steps: int = 150, seed: int = 0) -> Path:
    """Train a tiny open_clip CLIP (config `TINY_CLIP`) contrastively on captions of the world's images
    and crops (every caption = a prompt template around a concept the image shows), and save it as an
    open_clip folder: open_clip_config.json + open_clip_pytorch_model.bin."""
    import open_clip

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = open_clip.CLIP(**TINY_CLIP)
    model.token_embedding.weight.requires_grad_(False)  # random token vectors suffice; fewer updates
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=TINY_CLIP["text_cfg"]["context_length"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
    concept_words = [set(c.split()) for c in CONCEPTS]
    for _ in range(steps):
        x, attrs = _clip_batch(rng, 32)
        captions = [DEFAULT_TEMPLATES[int(rng.integers(len(DEFAULT_TEMPLATES)))].format(c) for c in CONCEPTS]
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        match = torch.tensor([[1.0 if w <= set(a) else 0.0 for w in concept_words] for a in attrs])
        rows, cols = match.sum(1) > 0, match.sum(0) > 0
        loss_i = -(logits[rows].log_softmax(1) * match[rows] / match[rows].sum(1, keepdim=True)).sum(1).mean()
        mt = match.T[cols]
        loss_t = -(logits.T[cols].log_softmax(1) * mt / mt.sum(1, keepdim=True)).sum(1).mean()
        opt.zero_grad()
        ((loss_i + loss_t) / 2).backward()
        opt.step()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_CLIP,
        "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD), "interpolation": "bilinear",
                           "resize_mode": "shortest"}}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder
