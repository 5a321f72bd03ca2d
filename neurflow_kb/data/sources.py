"""Image sets: a class's preprocessed images in memory (`ImageSet`), loaded from tensors or a few files,
and filtered by class.

An `ImageSet` (normalised tensor + labels + where each image came from) is the input of the crop stage
and of NeurFlow itself. Datasets too large for memory go through `records` (scan), `predictions` (one
streamed pass) and `selection` (the chosen files only) instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .records import UNKNOWN_LABEL, scan_images
from .stream import read_image

FilterMode = Literal["predicted", "true", "all"]
Preprocessor = Callable[[Image.Image], torch.Tensor]


class Classifier(Protocol):
    """What `filter_by_class` needs from a model adapter."""

    num_classes: int

    def logits(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ImageSet:
    """Preprocessed images with their labels (-1 = unknown), origins and, once filtered, predictions.

    ``label_note`` says where the labels came from, or why they are unknown. ``identity``, when set (by
    `load_selection`), is the set's fingerprint from file identity, so its pixels need not be hashed;
    ``selection`` = (class, filter mode) marks a set already filtered for that class.
    """

    images: torch.Tensor
    labels: torch.Tensor
    sources: list[str]
    predicted: torch.Tensor | None = None
    label_note: str = ""
    identity: str | None = None
    selection: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dim() != 4 or self.images.shape[1] != 3:
            shape = tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else type(self.images)
            raise UserError(f"ImageSet images must be a float tensor [N,3,H,W] (got {shape})")
        n = self.images.shape[0]
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        if self.labels.shape[0] != n:
            raise UserError(f"ImageSet has {n} images but {self.labels.shape[0]} labels; give one per image")
        self.sources = [str(s) for s in self.sources]
        if len(self.sources) != n:
            raise UserError(f"ImageSet has {n} images but {len(self.sources)} sources; give one per image")
        if self.predicted is not None:
            self.predicted = torch.as_tensor(self.predicted, dtype=torch.int64).reshape(-1)
            if self.predicted.shape[0] != n:
                raise UserError(f"ImageSet has {n} images but {self.predicted.shape[0]} predictions")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        """Side of the (square) images in pixels."""
        return int(self.images.shape[-1])

    @property
    def has_labels(self) -> bool:
        """True when at least one image has a known label."""
        return bool((self.labels >= 0).any())

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageSet:
        """The images at ``indices`` (ints, or a boolean mask), in that order."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        if idx.dtype == torch.bool:
            if idx.shape[0] != len(self):
                raise UserError(f"boolean mask has {idx.shape[0]} entries for {len(self)} images")
            idx = torch.nonzero(idx, as_tuple=False).reshape(-1)
        idx = idx.to(torch.int64).reshape(-1).cpu()
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise UserError(f"image index out of range for a set of {len(self)} images")
        idx = torch.where(idx < 0, idx + len(self), idx)
        return ImageSet(
            images=self.images[idx.to(self.images.device)],
            labels=self.labels[idx.to(self.labels.device)],
            sources=[self.sources[i] for i in idx.tolist()],
            predicted=None if self.predicted is None else self.predicted[idx.to(self.predicted.device)],
            label_note=self.label_note,
        )

    def fingerprint(self) -> str:
        """SHA-256 (hex) of image values, shape and labels: the same data give the same value in every run.

        A set loaded from files (``identity`` set) answers with its file-identity fingerprint instead."""
        if self.identity is not None:
            return self.identity
        h = hashlib.sha256()
        h.update(b"neurflow-kb/ImageSet/v1")
        h.update(repr(tuple(self.images.shape)).encode())
        for start in range(0, len(self), 64):
            chunk = self.images[start:start + 64].detach().to("cpu", torch.float32).contiguous().numpy()
            h.update(np.ascontiguousarray(chunk, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.labels.cpu().numpy(), dtype="<i8").tobytes())
        return h.hexdigest()

    def to(self, device: str | torch.device) -> ImageSet:
        """A copy with images, labels and predictions on ``device``."""
        return ImageSet(
            images=self.images.to(device),
            labels=self.labels.to(device),
            sources=list(self.sources),
            predicted=None if self.predicted is None else self.predicted.to(device),
            label_note=self.label_note,
            identity=self.identity,
            selection=self.selection,
        )


# --------------------------------------------------------------------------------------------- loading

ImageSpec = torch.Tensor | ImageSet | str | Path | Sequence[str | Path]
"""What `load_images` accepts."""


def load_images(
    spec: ImageSpec,
    preprocess: Preprocessor,
    *,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    max_images: int | None = None,
) -> ImageSet:
    """Load images from a tensor, an `ImageSet`, a folder, a text file of paths or a list of paths.

    ``preprocess`` maps a PIL image to a normalised [3,H,W] tensor (e.g. `neurflow_kb.models.Preprocess`);
    tensors are taken as already normalised. ``labels`` (one per item of ``spec``, in its order; for a
    folder, its sorted file order) override labels found on disk. ``class_names`` lets class subfolders
    and list files name classes instead of giving indices. ``max_images`` keeps the first images only.

    Folders, list files and URIs are read as `scan_images` describes (layouts and label sources).
    """
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be >= 1 (got {max_images})")
    if isinstance(spec, torch.Tensor):
        return _from_tensor(spec, labels, max_images)
    if isinstance(spec, ImageSet):
        out = spec
        if labels is not None:
            out = ImageSet(spec.images, _label_tensor(labels, len(spec), "the ImageSet"), spec.sources,
                           spec.predicted, "labels given by the caller")
        return out if max_images is None else out.subset(range(min(max_images, len(out))))
    if not isinstance(spec, (str, Path, Sequence)) or isinstance(spec, (bytes, bytearray)):
        raise UserError(
            f"cannot load images from a {type(spec).__name__}; give a tensor [N,3,H,W], a folder, "
            "a text file of image paths or a list of paths"
        )
    records = scan_images(spec, class_names)
    if labels is not None:
        records = records.with_labels(_label_tensor(labels, len(records), "the images found").numpy())
    if max_images is not None:
        records = records.subset(range(min(max_images, len(records))))
    images = [read_image(f, preprocess) for f in records.files]
    if len({tuple(t.shape) for t in images}) > 1:
        raise UserError(f"preprocess gave {list(images[-1].shape)} for {records.files[-1]} but "
                        f"{list(images[0].shape)} for {records.files[0]}; use a preprocessing with a fixed "
                        "crop size")
    return ImageSet(torch.stack(images), torch.as_tensor(records.labels), [str(f) for f in records.files],
                    None, records.label_note)


def _from_tensor(t: torch.Tensor, labels: Any, max_images: int | None) -> ImageSet:
    if t.dim() != 4 or t.shape[1] != 3:
        hint = " (add a batch dimension with .unsqueeze(0))" if t.dim() == 3 and t.shape[0] == 3 else ""
        raise UserError(f"image tensor must have shape [N,3,H,W]; got {list(t.shape)}{hint}")
    if not t.is_floating_point():
        raise UserError(f"image tensor must be float and normalised with the model's preprocessing "
                        f"(got dtype {t.dtype}); apply the preprocessing first")
    if t.shape[0] == 0:
        raise UserError("image tensor holds no image (N = 0); give at least one image")
    n = int(t.shape[0])
    label_t = (_label_tensor(labels, n, "the tensor") if labels is not None
               else torch.full((n,), UNKNOWN_LABEL, dtype=torch.int64))
    note = "labels given by the caller" if labels is not None else "labels unknown (tensor input)"
    out = ImageSet(t.detach().to(torch.float32), label_t, [f"tensor:{i}" for i in range(n)], None, note)
    return out if max_images is None else out.subset(range(min(max_images, n)))


def _label_tensor(labels: Any, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(labels).reshape(-1)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise UserError(f"labels must be integers (got dtype {t.dtype})")
    if t.shape[0] != n:
        raise UserError(f"got {t.shape[0]} labels for {n} images in {what}; give one label per image")
    return t.to(torch.int64)


# ------------------------------------------------------------------------------------------- filtering


@torch.no_grad()
def predict(images: ImageSet | torch.Tensor, adapter: Classifier, batch_size: int = 64,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Predicted class (argmax of ``adapter.logits``) of every image, as int64 on the CPU."""
    x = images.images if isinstance(images, ImageSet) else images
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1 (got {batch_size})")
    preds = [adapter.logits(x[i:i + batch_size].to(device)).argmax(dim=1).cpu()
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(preds).to(torch.int64) if preds else torch.zeros(0, dtype=torch.int64)


def filter_by_class(
    images: ImageSet,
    adapter: Classifier,
    target: int,
    mode: FilterMode = "predicted",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> ImageSet:
    """Keep the images of class ``target``: predicted as it (the paper's default), labelled as it, or all.

    Predictions of every kept image are stored in ``predicted``. The adapter's model must already sit on
    ``device``; images are moved there batch by batch.
    """
    if mode not in ("predicted", "true", "all"):
        raise UserError(f"class filter must be 'predicted', 'true' or 'all' (got {mode!r})")
    num_classes = int(adapter.num_classes)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < num_classes:
        raise UserError(f"target class {target!r} is outside [0, {num_classes}); "
                        "give a class index of the model")
    target = int(target)
    if len(images) == 0:
        raise UserError("no image to filter; give at least one image")
    what = _class_text(adapter, target)
    if mode == "true" and not images.has_labels:
        raise UserError(f"--filter true needs labels but the labels of the {len(images)} images are unknown "
                        f"({images.label_note or 'no label source'}); use --filter predicted/all")
    pred = predict(images, adapter, batch_size=batch_size, device=device)
    labelled = ImageSet(images.images, images.labels, images.sources, pred, images.label_note)
    if mode == "predicted":
        keep = pred == target
        if not bool(keep.any()):
            raise UserError(f"no image is predicted as {what} among {len(images)} images; "
                            "give more images of that class or use --filter true/all")
    elif mode == "true":
        keep = images.labels.cpu() == target
        if not bool(keep.any()):
            raise UserError(f"no image is labelled {what} among {len(images)} images; "
                            "give images of that class or use --filter predicted/all")
    else:
        keep = torch.ones(len(images), dtype=torch.bool)
    return labelled.subset(keep)


def _class_text(adapter: Classifier, target: int) -> str:
    names = getattr(adapter, "class_names", None)
    if names is not None and 0 <= target < len(names):
        return f"class {target} ({names[target]!r})"
    return f"class {target}"


__all__ = [
    "Classifier",
    "FilterMode",
    "ImageSet",
    "ImageSpec",
    "Preprocessor",
    "filter_by_class",
    "load_images",
    "predict",
]
