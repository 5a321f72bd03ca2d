"""Multi-granularity crops, NEURFLOW.md section 2 item 4: the concept data D_c of one class.

A `CropPlan` lists every crop (image, granularity, size, position) without pixels; `materialize` builds
only the crops asked for, so D_c (59 crops per 224 image at the defaults) is never held in memory whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UserError
from .sources import ImageSet

ImagesLike = torch.Tensor | ImageSet


@dataclass
class CropPlan:
    """One entry per crop: source image, granularity g, side s = int(g*S) in pixels and top-left corner.

    Order: granularities as given; within one, image-major, then row-major positions (as `F.unfold`).
    """

    image: np.ndarray
    granularity: np.ndarray
    size: np.ndarray
    top: np.ndarray
    left: np.ndarray
    image_size: int

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def n_images(self) -> int:
        """Number of source images the plan was made for."""
        return int(self.image.max()) + 1 if len(self) else 0

    @property
    def crops_per_image(self) -> int:
        """Crops cut from each image (59 for 224 px at the defaults)."""
        return len(self) // self.n_images if self.n_images else 0


def _positions(image_size: int, size: int, stride_ratio: float) -> list[int]:
    stride = max(min(int(stride_ratio * size), image_size - size), 1)
    return list(range(0, image_size - size + 1, stride))


def plan_crops(
    n_images: int,
    image_size: int = 224,
    granularities: Sequence[float] = (1.0, 0.5, 0.25),
    stride_ratio: float = 0.5,
) -> CropPlan:
    """Every crop of ``n_images`` square images of side ``image_size``, in the official order.

    Side s = int(g*S), stride t = max(min(int(stride_ratio*s), S-s), 1), corners 0, t, 2t, ... <= S-s.
    """
    if n_images < 0:
        raise UserError(f"n_images must be >= 0 (got {n_images})")
    if image_size < 1:
        raise UserError(f"image_size must be >= 1 (got {image_size})")
    if len(granularities) == 0 or not all(0 < g <= 1 for g in granularities):
        raise UserError(f"granularities must lie in (0, 1] (got {tuple(granularities)})")
    if not 0 < stride_ratio <= 1:
        raise UserError(f"stride_ratio must lie in (0, 1] (got {stride_ratio})")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("image", "granularity", "size", "top", "left")}
    for g in granularities:
        s = int(g * image_size)
        if s < 1:
            raise UserError(f"granularity {g} gives crops under one pixel on {image_size} px images; "
                            "raise it")
        pos = np.asarray(_positions(image_size, s, stride_ratio), dtype=np.int64)
        tops = np.repeat(pos, len(pos))          # row-major: top outer, left inner
        lefts = np.tile(pos, len(pos))
        per = len(tops)
        cols["image"].append(np.repeat(np.arange(n_images, dtype=np.int64), per))
        cols["granularity"].append(np.full(n_images * per, float(g), dtype=np.float64))
        cols["size"].append(np.full(n_images * per, s, dtype=np.int64))
        cols["top"].append(np.tile(tops, n_images))
        cols["left"].append(np.tile(lefts, n_images))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    return CropPlan(image_size=int(image_size), **arrays)


def _tensor(images: ImagesLike) -> torch.Tensor:
    return images.images if isinstance(images, ImageSet) else images


def _check(x: torch.Tensor, plan: CropPlan, idx: np.ndarray) -> None:
    s = plan.image_size
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
        raise UserError(f"images have shape {list(x.shape)} but the crop plan is for [N,3,{s},{s}]; "
                        "plan the crops with the images' size")
    if idx.size and (idx.min() < 0 or idx.max() >= len(plan)):
        raise UserError(f"crop index out of range for a plan of {len(plan)} crops")
    if idx.size and int(plan.image[idx].max()) >= x.shape[0]:
        raise UserError(f"the crop plan refers to image {int(plan.image[idx].max())} "
                        f"but only {x.shape[0]} images were given")


def materialize(
    images: ImagesLike, plan: CropPlan, indices: Sequence[int] | np.ndarray | torch.Tensor
) -> torch.Tensor:
    """The crops at ``indices``, each resized bilinearly (align_corners=False) to S x S.

    Crops with s = S (g = 1) are the images unchanged. Only the requested crops are built.
    """
    x = _tensor(images)
    raw = indices.cpu().numpy() if isinstance(indices, torch.Tensor) else indices
    idx = np.asarray(raw, dtype=np.int64).reshape(-1)
    _check(x, plan, idx)
    S = plan.image_size
    out = x.new_empty((idx.size, 3, S, S))
    sizes = plan.size[idx]
    for s in np.unique(sizes):
        rows = np.nonzero(sizes == s)[0]
        crops = idx[rows]
        img = torch.as_tensor(plan.image[crops], device=x.device)
        if s == S:
            out[torch.as_tensor(rows, device=x.device)] = x[img]
            continue
        patches = torch.stack([
            x[int(i), :, int(t):int(t) + int(s), int(le):int(le) + int(s)]
            for i, t, le in zip(plan.image[crops], plan.top[crops], plan.left[crops], strict=True)
        ])
        resized = F.interpolate(patches, size=(S, S), mode="bilinear", align_corners=False)
        out[torch.as_tensor(rows, device=x.device)] = resized
    return out


def iter_batches(
    images: ImagesLike,
    plan: CropPlan,
    batch_size: int,
    indices: Sequence[int] | np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(crop indices, crops)`` in batches of at most ``batch_size``, all crops by default."""
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1 (got {batch_size})")
    idx = np.arange(len(plan)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    for start in range(0, idx.size, batch_size):
        chunk = idx[start:start + batch_size]
        yield chunk, materialize(images, plan, chunk)


def thumbnail_png(
    images: ImagesLike,
    plan: CropPlan,
    crop: int,
    preprocess_mean: Sequence[float],
    preprocess_std: Sequence[float],
    size: int = 48,
) -> bytes:
    """PNG bytes of one crop as the eye sees it: de-normalised, clipped to [0,1], resized to size x size.

    The crop's own pixels are used (not the S x S upsampled version), so small crops stay sharp.
    """
    x = _tensor(images)
    _check(x, plan, np.asarray([crop], dtype=np.int64))
    if size < 1:
        raise UserError(f"thumbnail size must be >= 1 (got {size})")
    if len(preprocess_mean) != 3 or len(preprocess_std) != 3:
        raise UserError("preprocess mean and std need 3 values each (one per RGB channel)")
    i, t, le, s = (int(plan.image[crop]), int(plan.top[crop]), int(plan.left[crop]), int(plan.size[crop]))
    region = x[i, :, t:t + s, le:le + s].detach().to("cpu", torch.float32)
    mean = torch.tensor(list(preprocess_mean), dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(list(preprocess_std), dtype=torch.float32).view(3, 1, 1)
    rgb = (region * std + mean).clamp(0.0, 1.0)
    arr = (rgb.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    pil = Image.fromarray(arr, mode="RGB")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["CropPlan", "iter_batches", "materialize", "plan_crops", "thumbnail_png"]
