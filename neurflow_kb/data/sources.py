"""Image sources: load a class's images from tensors, folders or file lists, and filter them by class.

Everything ends up as one `ImageSet` (normalised tensor + labels + where each image came from), the
input of the crop stage and of NeurFlow itself.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from PIL import Image

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""File name endings read as images (compared case-insensitively)."""

UNKNOWN_LABEL = -1
FilterMode = Literal["predicted", "true", "all"]
Preprocessor = Callable[[Image.Image], torch.Tensor]

_WNID = re.compile(r"^n\d{8}$")
_GENERIC_LABELS_FILE = "labels.txt"
_LOC_SOLUTION_FILE = "LOC_val_solution.csv"
_ILSVRC_GT_FILE = "ILSVRC2012_validation_ground_truth.txt"


class Classifier(Protocol):
    """What `filter_by_class` needs from a model adapter."""

    num_classes: int

    def logits(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ImageSet:
    """Preprocessed images with their labels (-1 = unknown), origins and, once filtered, predictions.

    ``label_note`` says where the labels came from, or why they are unknown.
    """

    images: torch.Tensor
    labels: torch.Tensor
    sources: list[str]
    predicted: torch.Tensor | None = None
    label_note: str = ""

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
        """SHA-256 (hex) of image values, shape and labels: the same data give the same value in every run."""
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

    Folder layouts, files sorted by relative path:

    - flat folder of images: labels from ``labels.txt`` ("filename index" per line) or from an ImageNet
      ``LOC_val_solution.csv`` (first wnid of each row) when present, else unknown (-1);
    - class subfolders (ImageFolder / ImageNet-val-by-class): a subfolder named by a class index ("285")
      or by an entry of ``class_names`` gives that class. Subfolders named by ImageNet WordNet ids
      (n01440764, ...) map to the ImageNet index through timm's synset list when timm is installed, and
      otherwise by sorted order when all 1000 wnids are present (sorted wnid order is the ImageNet class
      order); anything else leaves the labels unknown (the reason is kept in ``label_note``).

    ``ILSVRC2012_validation_ground_truth.txt`` is not used: its 1-based ILSVRC ids need the devkit's
    meta.mat to become class indices. Use ``LOC_val_solution.csv`` or ``labels.txt`` instead.
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
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        if path.is_dir():
            files, found, note = _scan_folder(path, class_names)
        elif path.is_file():
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                files, found, note = [path], [UNKNOWN_LABEL], "labels unknown (single image file)"
            else:
                files, found, note = _read_list_file(path)
        else:
            raise UserError(f"image folder or file {path} does not exist; check the path")
    elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        if len(spec) == 0:
            raise UserError("the list of image paths is empty; give at least one image file")
        files = []
        for item in spec:
            if not isinstance(item, (str, Path)):
                raise UserError(f"image list entries must be file paths (got {type(item).__name__})")
            p = Path(item).expanduser()
            if not p.is_file():
                raise UserError(f"image file {p} does not exist; check the path")
            files.append(p)
        found, note = [UNKNOWN_LABEL] * len(files), "labels unknown (list of paths)"
    else:
        raise UserError(
            f"cannot load images from a {type(spec).__name__}; give a tensor [N,3,H,W], a folder, "
            "a text file of image paths or a list of paths"
        )
    label_t = torch.tensor(found, dtype=torch.int64)
    if labels is not None:
        label_t, note = _label_tensor(labels, len(files), "the images found"), "labels given by the caller"
    if max_images is not None:
        files, label_t = files[:max_images], label_t[:max_images]
    images = _decode(files, preprocess)
    return ImageSet(images, label_t, [str(f) for f in files], None, note)


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


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _scan_folder(folder: Path, class_names: Sequence[str] | None) -> tuple[list[Path], list[int], str]:
    top = _image_files(folder)
    subdirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: d.name)
    classes = [(d, _image_files(d)) for d in subdirs]
    classes = [(d, fs) for d, fs in classes if fs]
    if top and classes:
        raise UserError(
            f"folder {folder} mixes images with class subfolders ({classes[0][0].name}/, ...); "
            "move the loose images into a subfolder or point at one layout"
        )
    if top:
        found, note = _flat_folder_labels(folder, top)
        return top, found, note
    if not classes:
        raise UserError(
            f"folder {folder} has no images (looked for {', '.join(IMAGE_EXTENSIONS)} files in it and in "
            "its subfolders); point at a folder of images"
        )
    mapping, note = _class_folder_labels([d.name for d, _ in classes], class_names)
    classes.sort(key=lambda c: (mapping[c[0].name] if mapping[c[0].name] >= 0 else 1 << 40, c[0].name))
    files = [f for _, fs in classes for f in fs]
    found = [mapping[d.name] for d, fs in classes for _ in fs]
    return files, found, note


def _norm_name(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def _class_folder_labels(names: list[str], class_names: Sequence[str] | None) -> tuple[dict[str, int], str]:
    by_name: dict[str, list[int]] = {}
    for i, cn in enumerate(class_names or []):
        by_name.setdefault(_norm_name(str(cn)), []).append(i)
    mapping: dict[str, int] = {}
    unresolved: list[str] = []
    for name in names:
        if name.isdigit():
            mapping[name] = int(name)
        elif len(by_name.get(_norm_name(name), [])) == 1:
            mapping[name] = by_name[_norm_name(name)][0]
        else:
            mapping[name] = UNKNOWN_LABEL
            unresolved.append(name)
    if not unresolved:
        return mapping, "labels from class subfolder names"
    if all(_WNID.match(n) for n in names):
        wnid_map, how = _wnid_indices(names)
        if wnid_map is not None:
            return {n: wnid_map[n] for n in names}, f"labels from WordNet-id subfolders ({how})"
        return ({n: UNKNOWN_LABEL for n in names},
                f"labels unknown: {len(names)} WordNet-id subfolders but not all 1000 ImageNet classes and "
                "timm (which lists every ImageNet wnid) is not installed; name the folders by class index")
    shown = ", ".join(repr(n) for n in unresolved[:3]) + (", ..." if len(unresolved) > 3 else "")
    return mapping, (f"labels unknown for subfolders {shown}: not class indices, not (unique) class names; "
                     "rename them to class indices")


def _wnid_indices(wnids: Sequence[str]) -> tuple[dict[str, int] | None, str]:
    """Map ImageNet WordNet ids to class indices: timm's list if available, else sorted order of all 1000."""
    unique = sorted(set(wnids))
    try:
        from timm.data import ImageNetInfo

        known = {w: i for i, w in enumerate(ImageNetInfo().label_names())}
        if all(w in known for w in unique):
            return {w: known[w] for w in unique}, "ImageNet order from timm's synset list"
    except Exception:  # timm missing or its data layout changed: fall back below
        pass
    if len(unique) == 1000:
        return {w: i for i, w in enumerate(unique)}, "sorted wnid order, all 1000 classes present"
    return None, ""


def _flat_folder_labels(folder: Path, files: list[Path]) -> tuple[list[int], str]:
    generic = folder / _GENERIC_LABELS_FILE
    if generic.is_file():
        table = _read_labels_txt(generic)
        found = [table.get(f.name, table.get(f.stem, UNKNOWN_LABEL)) for f in files]
        return found, f"labels from {generic.name}"
    loc = folder / _LOC_SOLUTION_FILE
    if loc.is_file():
        rows = _read_loc_solution(loc)
        wnid_map, how = _wnid_indices(list(rows.values()))
        if wnid_map is None:
            return ([UNKNOWN_LABEL] * len(files),
                    f"labels unknown: {loc.name} names fewer than 1000 wnids and timm is not installed "
                    "to map them; add a labels.txt ('filename index' per line)")
        found = [wnid_map[rows[f.stem]] if f.stem in rows else UNKNOWN_LABEL for f in files]
        return found, f"labels from {loc.name} ({how})"
    if (folder / _ILSVRC_GT_FILE).is_file():
        return ([UNKNOWN_LABEL] * len(files),
                f"labels unknown: {_ILSVRC_GT_FILE} holds 1-based ILSVRC ids that need the devkit's "
                f"meta.mat; put {_LOC_SOLUTION_FILE} or a labels.txt ('filename index' per line) in {folder}")
    return [UNKNOWN_LABEL] * len(files), "labels unknown (flat folder without a labels file)"


def _read_labels_txt(path: Path) -> dict[str, int]:
    table: dict[str, int] = {}
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").replace("\t", " ").rsplit(maxsplit=1)
        if len(parts) != 2 or not _is_int(parts[1]):
            raise UserError(f"{path} line {lineno} is not '<filename> <class index>': {line[:80]!r}; "
                            "fix the line")
        table[Path(parts[0].strip()).name] = int(parts[1])
    return table


def _read_loc_solution(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or (lineno == 1 and row[0].strip() == "ImageId"):
                continue
            pred = row[1].split() if len(row) > 1 else []
            if not pred or not _WNID.match(pred[0]):
                raise UserError(f"{path} line {lineno} has no wnid in PredictionString; expected "
                                "'ImageId,nXXXXXXXX x0 y0 x1 y1 ...' rows")
            rows[row[0].strip()] = pred[0]
    return rows


def _read_list_file(path: Path) -> tuple[list[Path], list[int], str]:
    files: list[Path] = []
    found: list[int] = []
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and _is_int(parts[1]):
            name, label = parts[0], int(parts[1])
        else:
            name, label = line, UNKNOWN_LABEL
        p = Path(name).expanduser()
        if not p.is_absolute():
            p = path.parent / p
        if not p.is_file():
            raise UserError(f"image file {p} listed in {path} (line {lineno}) does not exist; fix the list")
        files.append(p)
        found.append(label)
    if not files:
        raise UserError(f"image list {path} names no image; write one image path per line")
    note = (f"labels from {path.name}" if any(v >= 0 for v in found) else f"labels unknown ({path.name})")
    return files, found, note


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a text list of "
                        "image paths; give a folder, an image or a list file") from None


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _decode(files: Sequence[Path], preprocess: Preprocessor) -> torch.Tensor:
    out: list[torch.Tensor] = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                rgb = im.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise UserError(f"cannot read image file {f} ({type(exc).__name__}: corrupt or not an image); "
                            "replace or remove it") from None
        t = preprocess(rgb)
        if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] != 3:
            shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise UserError(f"preprocess must turn {f} into a [3,H,W] tensor (got {shape}); "
                            "check the preprocessing")
        if out and t.shape != out[0].shape:
            raise UserError(f"preprocess gave {list(t.shape)} for {f} but {list(out[0].shape)} for "
                            f"{files[0]}; use a preprocessing with a fixed crop size")
        out.append(t.detach().to(torch.float32))
    return torch.stack(out)


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
    "IMAGE_EXTENSIONS",
    "UNKNOWN_LABEL",
    "Classifier",
    "FilterMode",
    "ImageSet",
    "ImageSpec",
    "Preprocessor",
    "filter_by_class",
    "load_images",
    "predict",
]
