"""A deterministic image world with planted concepts: the ground truth that fidelity checks need.

Each 64x64 RGB image shows one object on a background. The object has a shape, a colour, a texture and
one part; the background is a nuisance drawn independently. A class is a fixed composition of shape,
colour, texture and part (`WORLD_CLASSES`), so classes share concepts. Position, size, rotation, colour
jitter and pixel noise are drawn from a generator seeded by ``(seed, image index)``: image ``i`` of a
seed is the same whatever ``n`` is. Pure NumPy and PIL, a few thousand images per second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import UserError

IMAGE_SIZE = 64
_SS = 2  # supersampling factor for anti-aliased masks
_BIG = IMAGE_SIZE * _SS

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
PARTS: tuple[str, ...] = ("handle", "antenna", "legs")
BACKGROUNDS: tuple[str, ...] = ("sky", "grass", "sand", "snow")

# concept kind -> its values, in a fixed order
CONCEPT_KINDS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES, "colour": COLOURS, "texture": TEXTURES, "part": PARTS, "background": BACKGROUNDS,
}
# every planted concept name (unique across kinds), the vocabulary the tiny CLIP can score
CONCEPTS: tuple[str, ...] = tuple(v for values in CONCEPT_KINDS.values() for v in values)
CONCEPT_KIND: dict[str, str] = {v: kind for kind, values in CONCEPT_KINDS.items() for v in values}
# kinds that define a class (the background is a nuisance, independent of the class)
CLASS_KINDS: tuple[str, ...] = ("shape", "colour", "texture", "part")


@dataclass(frozen=True)
class WorldClass:
    """One class of the world: a name and the composition of concepts that defines it."""

    name: str
    shape: str
    colour: str
    texture: str
    part: str

    @property
    def concepts(self) -> tuple[str, ...]:
        """Its defining concepts: shape, colour, texture, part."""
        return (self.shape, self.colour, self.texture, self.part)


# Pairs that differ in one concept (ladybug/beetle: colour, bee/wasp: shape, kettle/teapot: texture,
# robot/chest: part, ...) force a classifier to use every kind of concept.
WORLD_CLASSES: tuple[WorldClass, ...] = (
    WorldClass("ladybug", "circle", "red", "dotted", "legs"),
    WorldClass("beetle", "circle", "green", "dotted", "legs"),
    WorldClass("bee", "circle", "yellow", "striped", "antenna"),
    WorldClass("wasp", "triangle", "yellow", "striped", "antenna"),
    WorldClass("mug", "square", "blue", "plain", "handle"),
    WorldClass("kettle", "circle", "blue", "plain", "handle"),
    WorldClass("teapot", "circle", "blue", "striped", "handle"),
    WorldClass("robot", "square", "green", "checkered", "antenna"),
    WorldClass("chest", "square", "green", "checkered", "handle"),
    WorldClass("starfish", "star", "red", "plain", "legs"),
    WorldClass("badge", "star", "yellow", "plain", "legs"),
    WorldClass("kite", "triangle", "red", "checkered", "antenna"),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in WORLD_CLASSES)

_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35), "green": (40, 185, 60), "blue": (40, 70, 215), "yellow": (235, 205, 30),
}
_PART_RGB = (35, 35, 35)
_PATTERN_GAIN = 0.3  # texture marks are the object colour darkened to 30 %
_PART_ARTICLE = {"handle": "a handle", "antenna": "an antenna", "legs": "legs"}


def caption(concepts: dict[str, str]) -> str:
    """The caption of an image from its concept record, e.g. 'a red dotted circle with legs on grass'."""
    return (f"a {concepts['colour']} {concepts['texture']} {concepts['shape']} with "
            f"{_PART_ARTICLE[concepts['part']]} on {concepts['background']}")


def class_caption(index: int, background: str) -> str:
    """The caption of class `index` on a given background."""
    c = WORLD_CLASSES[index]
    return caption({"shape": c.shape, "colour": c.colour, "texture": c.texture, "part": c.part,
                    "background": background})


def all_captions() -> list[str]:
    """Every distinct caption of the world (class x background), class-major."""
    return [class_caption(i, bg) for i in range(len(WORLD_CLASSES)) for bg in BACKGROUNDS]


# --------------------------------------------------------------------------------------------------
# rendering


def _background(kind: str, rng: np.random.Generator) -> np.ndarray:
    """[64,64,3] float32 background of one kind, with its own small random variation."""
    s = IMAGE_SIZE
    f32 = np.float32
    if kind == "sky":
        t = np.linspace(0.0, 1.0, s, dtype=f32)[:, None, None]
        top = (np.array([95, 150, 225]) + rng.normal(0, 6, 3)).astype(f32)
        bottom = (np.array([185, 212, 245]) + rng.normal(0, 6, 3)).astype(f32)
        img = np.broadcast_to(top * (1 - t) + bottom * t, (s, s, 3))
    elif kind == "grass":
        base = (np.array([80, 125, 55]) + rng.normal(0, 6, 3)).astype(f32)
        blades = rng.standard_normal((s // 4 + 1, s), dtype=f32)   # vertical streaks: coarse rows
        streak = np.repeat(blades, 4, axis=0)[:s, :, None] * f32(18.0)
        img = base + streak * np.array([0.6, 1.0, 0.5], dtype=f32)
    elif kind == "sand":
        base = (np.array([212, 190, 140]) + rng.normal(0, 6, 3)).astype(f32)
        specks = (rng.random((s, s), dtype=f32) < 0.06)[..., None]
        img = base - f32(45.0) * specks
    elif kind == "snow":
        img = np.broadcast_to((np.array([238, 240, 244]) + rng.normal(0, 4, 3)).astype(f32), (s, s, 3))
    else:  # pragma: no cover - guarded by the concept lists
        raise ValueError(kind)
    return img


def _rotate(points: np.ndarray, angle: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return [(float(cx + c * a - s * b), float(cy + s * a + c * b)) for a, b in zip(x, y, strict=True)]


def _shape_points(shape: str, r: float) -> np.ndarray | None:
    """Polygon of a shape centred at 0 (None for the circle)."""
    if shape == "circle":
        return None
    if shape == "square":
        h = 0.85 * r
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    if shape == "triangle":
        R = 1.2 * r
        a = np.deg2rad([-90, 30, 150])
        pts = np.stack([R * np.cos(a), R * np.sin(a)], 1)
        return pts + np.array([0.0, 0.2 * r])                   # centre the visual mass
    if shape == "star":
        a = np.deg2rad(-90 + 36 * np.arange(10))
        rad = np.where(np.arange(10) % 2 == 0, 1.25 * r, 0.52 * r)
        return np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
    raise ValueError(shape)  # pragma: no cover


def _mask(draw_fn: Any) -> np.ndarray:
    """Render a supersampled 'L' mask with `draw_fn(draw)` and box-downsample it to [64,64] in [0,1]."""
    im = Image.new("L", (_BIG, _BIG), 0)
    draw_fn(ImageDraw.Draw(im))
    small = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) * np.float32(1.0 / 255.0)


def _object_mask(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    k = _SS
    pts = _shape_points(shape, r)
    if pts is None:
        return _mask(lambda d: d.ellipse([(cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k], fill=255))
    poly = [(x * k, y * k) for x, y in _rotate(pts, angle, cx, cy)]
    return _mask(lambda d: d.polygon(poly, fill=255))


def _part_mask(part: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    k = _SS
    width = int(round(2.4 * k))

    def P(a: float, b: float) -> tuple[float, float]:
        (x, y), = _rotate(np.array([[a, b]]), angle, cx, cy)
        return (x * k, y * k)

    def draw(d: ImageDraw.ImageDraw) -> None:
        if part == "handle":
            hx, hy = P(1.05 * r, 0.0)
            hr = 0.5 * r * k
            d.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], outline=255, width=width)
        elif part == "antenna":
            base, tip = P(0.0, -0.75 * r), P(0.35 * r, -1.75 * r)
            d.line([base, tip], fill=255, width=width)
            br = 2.4 * k
            d.ellipse([tip[0] - br, tip[1] - br, tip[0] + br, tip[1] + br], fill=255)
        elif part == "legs":
            for side in (-1.0, 1.0):
                d.line([P(side * 0.45 * r, 0.6 * r), P(side * 0.75 * r, 1.65 * r)], fill=255, width=width)
        else:  # pragma: no cover
            raise ValueError(part)

    return _mask(draw)


# pixel noise: random shifts of a fixed bank of Gaussian fields (std 4), far cheaper than fresh draws
_NOISE_BANK = np.random.default_rng(20250101).standard_normal((8, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 3),
                                                               dtype=np.float32) * np.float32(4.0)


def _noise(rng: np.random.Generator) -> np.ndarray:
    k, dy, dx = (int(v) for v in rng.integers(0, [len(_NOISE_BANK), IMAGE_SIZE, IMAGE_SIZE]))
    return _NOISE_BANK[k, dy:dy + IMAGE_SIZE, dx:dx + IMAGE_SIZE]


_GRID = tuple(np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + np.float32(0.5))


def _pattern(texture: str, cx: float, cy: float, angle: float, phase: tuple[float, float]) -> np.ndarray:
    """Texture marks in [0,1] over the whole image, in object-aligned coordinates."""
    if texture == "plain":
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    yy, xx = _GRID
    c, s = math.cos(-angle), math.sin(-angle)
    u = c * (xx - cx) - s * (yy - cy) + phase[0]
    v = s * (xx - cx) + c * (yy - cy) + phase[1]
    if texture == "striped":
        period = 6.0
        return (np.abs(((u / period) % 1.0) - 0.5) < 0.25).astype(np.float32)
    if texture == "dotted":
        period, radius = 6.0, 1.6
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        return np.clip(radius + 0.5 - np.sqrt(du * du + dv * dv), 0.0, 1.0)
    if texture == "checkered":
        period = 5.0
        return ((np.floor(u / period) + np.floor(v / period)) % 2 == 0).astype(np.float32)
    raise ValueError(texture)  # pragma: no cover


def render(concepts: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any],
                                                                          np.ndarray, np.ndarray]:
    """Draw one image of the given concepts; nuisances come from `rng`.

    Returns (uint8 [64,64,3] image, nuisance record, object coverage [64,64], part coverage [64,64]).
    """
    r = float(rng.uniform(10.0, 14.0))
    margin = 1.9 * r
    cx = float(rng.uniform(margin, IMAGE_SIZE - margin))
    cy = float(rng.uniform(margin, IMAGE_SIZE - margin))
    angle = float(np.deg2rad(rng.uniform(-25.0, 25.0)))
    phase = (float(rng.uniform(0, 6)), float(rng.uniform(0, 6)))
    img = _background(concepts["background"], rng)
    obj = _object_mask(concepts["shape"], cx, cy, r, angle)
    part = _part_mask(concepts["part"], cx, cy, r, angle) * (1.0 - obj)
    colour = (np.array(_RGB[concepts["colour"]]) + rng.normal(0, 10, 3)).astype(np.float32)
    marks = _pattern(concepts["texture"], cx, cy, angle, phase)
    surface = colour * (1.0 - (1.0 - _PATTERN_GAIN) * marks[..., None])
    o, p = obj[..., None], part[..., None]
    img = img + o * (surface - img)
    img = img + p * (np.array(_PART_RGB, dtype=np.float32) - img)
    img = img + _noise(rng)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    nuisance = {"cx": cx, "cy": cy, "radius": r, "rotation_deg": float(np.rad2deg(angle))}
    return out, nuisance, obj, part


# --------------------------------------------------------------------------------------------------
# datasets


@dataclass
class WorldBatch:
    """Images of the world with their ground truth.

    `images` uint8 [N,64,64,3]; `labels` class indices; `captions`; `concepts` one record per image
    (class, shape, colour, texture, part, background, and the nuisances); `object_masks` and
    `part_masks` per-pixel coverage in [0,1] (float32 [N,64,64]).
    """

    images: np.ndarray
    labels: np.ndarray
    captions: list[str]
    concepts: list[dict[str, Any]]
    object_masks: np.ndarray
    part_masks: np.ndarray
    seed: int = 0
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tensor(self, normalize: bool = True) -> Any:
        """Images as a float tensor [N,3,64,64]: normalised for the world models, or in [0,1]."""
        import torch

        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255.0)
        return normalize_images(x) if normalize else x

    def pil(self) -> list[Image.Image]:
        """Images as PIL RGB images."""
        return [Image.fromarray(a, mode="RGB") for a in self.images]

    def labels_tensor(self) -> Any:
        """Labels as an int64 tensor."""
        import torch

        return torch.from_numpy(self.labels.astype(np.int64))

    def save(self, folder: str | Path, layout: str = "index", image_format: str = "png",
             size: int | None = None) -> Path:
        """Write the images as files in an ImageNet-val-like `layout` (see `image_path`) plus one JSON line
        per image (file, caption, concepts) in ``concepts.jsonl``; the layouts `neurflow_kb.load_images`
        and `neurflow-kb ingest` read. `size` upsamples the 64 px images (e.g. 224, as real photos);
        `image_format` is png or jpg."""
        root = Path(folder)
        lines, loc = [], []
        for i, (img, label) in enumerate(zip(self.images, self.labels, strict=True)):
            path = image_path(root, layout, int(label), f"{self.seed}_{i:05d}", image_format)
            write_image(img, path, size)
            if layout == "flat":
                loc.append((path.stem, int(label), size or IMAGE_SIZE))
            lines.append(json.dumps({"file": str(path.relative_to(root)), "caption": self.captions[i],
                                     **self.concepts[i]}))
        root.mkdir(parents=True, exist_ok=True)
        if layout == "flat":
            write_loc_solution(root, loc)
        (root / "concepts.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
        return root

    def subset(self, indices: Sequence[int] | np.ndarray) -> WorldBatch:
        """The images at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return WorldBatch(self.images[idx], self.labels[idx], [self.captions[i] for i in idx],
                          [self.concepts[i] for i in idx], self.object_masks[idx], self.part_masks[idx],
                          self.seed, self.class_names)


WORLD_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
WORLD_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)


LAYOUTS = ("index", "wnid", "flat")
"""Folder layouts of `WorldBatch.save`: class-index subfolders, WordNet-id subfolders, or one flat folder
with an ImageNet ``LOC_val_solution.csv`` (world class i <-> ImageNet class i, as timm orders wnids)."""


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet WordNet ids in class-index order (from timm, which lists them)."""
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        raise UserError("writing WordNet-id layouts needs timm (pip install timm), which lists ImageNet's "
                        "wnids") from None
    return list(ImageNetInfo().label_names())


def image_path(root: Path, layout: str, label: int, stem: str, image_format: str = "png") -> Path:
    """Where an image of class `label` goes in `layout` (its folder is created)."""
    if layout not in LAYOUTS:
        raise UserError(f"layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")
    suffix = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg"}.get(image_format.lower())
    if suffix is None:
        raise UserError(f"image_format must be png or jpg (got {image_format!r})")
    sub = {"index": str(label), "wnid": imagenet_wnids()[label] if layout == "wnid" else "",
           "flat": ""}[layout]
    folder = root / sub if sub else root
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}{suffix}"


def write_image(img: np.ndarray, path: Path, size: int | None = None, quality: int = 90) -> None:
    """Save an HxWx3 uint8 image (upsampled to `size` px with bicubic interpolation if given)."""
    im = Image.fromarray(np.ascontiguousarray(img), mode="RGB")
    if size and size != im.width:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    if path.suffix == ".jpg":
        im.save(path, quality=quality)
    else:
        im.save(path)


def write_loc_solution(root: Path, rows: Sequence[tuple[str, int, int]], append: bool = False) -> Path:
    """An ImageNet ``LOC_val_solution.csv`` (ImageId, PredictionString "wnid x0 y0 x1 y1") for
    (file stem, class, image size) rows: the flat layout's labels."""
    wnids = imagenet_wnids()
    path = root / "LOC_val_solution.csv"
    with path.open("a" if append and path.exists() else "w") as fh:
        if fh.tell() == 0:
            fh.write("ImageId,PredictionString\n")
        for stem, label, side in rows:
            fh.write(f"{stem},{wnids[label]} 0 0 {side - 1} {side - 1}\n")
    return path


def normalize_images(x: Any) -> Any:
    """[..,3,H,W] tensor in [0,1] -> the world models' input (mean 0.5, std 0.25 per channel)."""
    import torch

    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    mean = torch.tensor(WORLD_MEAN, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(WORLD_STD, dtype=x.dtype, device=x.device).view(shape)
    return (x - mean) / std


def _class_indices(classes: Sequence[int | str] | None) -> list[int]:
    if classes is None:
        return list(range(len(WORLD_CLASSES)))
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in CLASS_NAMES:
                raise UserError(f"unknown world class {c!r}; classes are {', '.join(CLASS_NAMES)}")
            out.append(CLASS_NAMES.index(c))
        else:
            i = int(c)
            if not 0 <= i < len(WORLD_CLASSES):
                raise UserError(f"world class {i} is out of range 0..{len(WORLD_CLASSES) - 1}")
            out.append(i)
    if not out:
        raise UserError("classes is empty; give at least one world class (index or name) or None for all")
    return out


def generate(n: int, seed: int = 0, classes: Sequence[int | str] | None = None, *,
             backgrounds: Sequence[str] | None = None) -> WorldBatch:
    """`n` images of the world, deterministic for `seed`; class of image i = classes[i % len(classes)].

    `classes`: indices or names (all 12 by default). `backgrounds`: allowed backgrounds (all by default),
    drawn uniformly per image. Image i depends only on (seed, i, its class), not on `n`.
    """
    if int(n) < 0:
        raise UserError(f"n must be >= 0 (got {n})")
    cls = _class_indices(classes)
    bgs = tuple(backgrounds) if backgrounds is not None else BACKGROUNDS
    bad = [b for b in bgs if b not in BACKGROUNDS]
    if bad or not bgs:
        raise UserError(f"unknown backgrounds {bad or '(none given)'}; choose from {', '.join(BACKGROUNDS)}")
    n = int(n)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    obj_masks = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    part_masks = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    captions: list[str] = []
    records: list[dict[str, Any]] = []
    for i in range(n):
        label = cls[i % len(cls)]
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, i])
        wc = WORLD_CLASSES[label]
        concepts = {"shape": wc.shape, "colour": wc.colour, "texture": wc.texture, "part": wc.part,
                    "background": bgs[int(rng.integers(len(bgs)))]}
        img, nuisance, om, pm = render(concepts, rng)
        images[i], obj_masks[i], part_masks[i], labels[i] = img, om, pm, label
        captions.append(caption(concepts))
        records.append({"class": label, "class_name": wc.name, **concepts, **nuisance})
    return WorldBatch(images, labels, captions, records, obj_masks, part_masks, int(seed))


# --------------------------------------------------------------------------------------------------
# concepts visible in a region (crops)

# thresholds for a concept to count as present in a crop
OBJECT_SURFACE_MIN = 0.15   # colour / texture: object covers at least 15 % of the crop ...
OBJECT_SHARE_MIN = 0.5      # ... or at least half of the object lies inside it
SHAPE_WHOLE_MIN = 0.7       # shape: at least 70 % of the object lies inside the crop
PART_MIN = 0.5              # part: at least half of the part's pixels lie inside the crop
BACKGROUND_MIN = 0.3        # background: at least 30 % of the crop is background


def region_concepts(record: dict[str, Any], object_mask: np.ndarray, part_mask: np.ndarray,
                    top: int, left: int, size: int) -> list[str]:
    """Planted concepts visible in the square region [top:top+size, left:left+size] of one image.

    Colour and texture need enough object surface (or half the object), the shape most of the object,
    the part most of the part, the background enough background; see the thresholds above.
    """
    area = float(size * size)
    o = object_mask[top:top + size, left:left + size]
    p = part_mask[top:top + size, left:left + size]
    o_in, p_in = float(o.sum()), float(p.sum())
    o_all, p_all = float(object_mask.sum()), float(part_mask.sum())
    out = []
    if o_all > 0 and o_in / o_all >= SHAPE_WHOLE_MIN:
        out.append(record["shape"])
    if o_in / area >= OBJECT_SURFACE_MIN or (o_all > 0 and o_in / o_all >= OBJECT_SHARE_MIN):
        out += [record["colour"], record["texture"]]
    if p_all > 0 and p_in / p_all >= PART_MIN:
        out.append(record["part"])
    if 1.0 - (o_in + p_in) / area >= BACKGROUND_MIN:
        out.append(record["background"])
    return [c for c in CONCEPTS if c in out]   # vocabulary order


def region_caption(concepts: Sequence[str]) -> str:
    """A short text for the concepts visible in a region, e.g. 'red striped' or 'grass'."""
    kinds = {CONCEPT_KIND[c]: c for c in concepts}
    words = [kinds[k] for k in ("colour", "texture", "shape") if k in kinds]
    text = " ".join(words)
    if "part" in kinds:
        text = f"{text} with {_PART_ARTICLE[kinds['part']]}" if text else kinds["part"]
    if "background" in kinds:
        text = f"{text} on {kinds['background']}" if text else kinds["background"]
    return text
