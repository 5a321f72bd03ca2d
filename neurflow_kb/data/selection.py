"""Per-class selection: which files of a predicted dataset a class circuit is computed on, and their
identity (the circuit's data fingerprint).

Selection reads only the prediction table; only the chosen files are decoded afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import UserError
from .predictions import DatasetPredictions, Predictor, predict_dataset
from .records import scan_images
from .sources import ImageSet
from .stream import decode_bytes

FilterMode = Literal["predicted", "true", "all"]


def select_class(preds: DatasetPredictions, target: int, mode: FilterMode = "predicted",
                 max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """Record positions of class `target`'s images, in record order (empty when there is none).

    `mode`: predicted as the class (the paper's default), labelled as it, or every readable image.
    `max_images` caps the images *per class*: when more qualify, a seeded random choice (seeded by
    `seed` and the class, so other classes never change it) keeps that many.
    """
    if mode not in ("predicted", "true", "all"):
        raise UserError(f"class filter must be 'predicted', 'true' or 'all' (got {mode!r})")
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be >= 1 (got {max_images})")
    readable = preds.top1 >= 0
    if mode == "predicted":
        keep = readable & (preds.top1 == target)
    elif mode == "true":
        if not preds.records.has_labels:
            raise UserError(f"--filter true needs labels but the labels of the {len(preds)} images are "
                            f"unknown ({preds.records.label_note or 'no label source'}); use --filter "
                            "predicted/all")
        keep = readable & (preds.records.labels == target)
    else:
        keep = readable
    positions = np.flatnonzero(keep)
    if max_images is not None and len(positions) > max_images:
        rng = np.random.default_rng([int(seed) % (2**32), int(target)])
        positions = np.sort(rng.choice(positions, size=max_images, replace=False))
    return positions


def selection_fingerprint(preds: DatasetPredictions, positions: np.ndarray, preprocess: Any) -> str:
    """SHA-256 of the selected files' identity (relative path, size, content hash, label, in order) and of
    the preprocessing: what a circuit's data are, independent of every other file of the dataset."""
    pre = preprocess.to_dict() if hasattr(preprocess, "to_dict") else repr(preprocess)
    blob = json.dumps({"files": preds.file_identity(positions), "preprocess": pre}, sort_keys=True,
                      default=str).encode()
    return hashlib.sha256(b"neurflow-kb/files/v1" + blob).hexdigest()


def load_selection(preds: DatasetPredictions, positions: np.ndarray, preprocess: Any, target: int,
                   mode: FilterMode) -> ImageSet:
    """Decode the selected files into an `ImageSet` marked as already filtered for (`target`, `mode`),
    with predictions from the pass and the file-identity fingerprint (no pixel is hashed)."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0:
        raise UserError(f"no image selected for class {target}; give images of that class or another "
                        "--filter")
    tensors = [_read_planned(preds, i, preprocess) for i in positions.tolist()]
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise UserError(f"preprocess gave images of shapes {sorted(shapes)}; use a preprocessing with a "
                        "fixed crop size")
    return ImageSet(images=torch.stack(tensors), labels=torch.as_tensor(preds.records.labels[positions]),
                    sources=[str(preds.records.files[i]) for i in positions.tolist()],
                    predicted=torch.as_tensor(preds.top1[positions]), label_note=preds.records.label_note,
                    identity=selection_fingerprint(preds, positions, preprocess),
                    selection=(int(target), mode))


def _read_planned(preds: DatasetPredictions, i: int, preprocess: Any) -> torch.Tensor:
    """Decode record `i`, refusing a file whose content is not what the prediction pass saw (changed or
    replaced since: the selection and the run key were made from the old content)."""
    path = preds.records.files[i]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read image file {path} ({exc.strerror or type(exc).__name__}); it was "
                        "readable when the images were selected: check the shared storage, then run the "
                        "ingest again") from None
    if preds.sha256[i] and hashlib.sha256(data).hexdigest() != preds.sha256[i]:
        raise UserError(f"image file {path} changed after the prediction pass (its content hash differs); "
                        "run the ingest again to select and fingerprint the current files")
    return decode_bytes(data, preprocess, path)


def empty_selection_message(preds: DatasetPredictions, target: int, mode: FilterMode,
                            class_names: list[str] | None = None) -> str:
    """Why class `target` has no image, and what to do (one line)."""
    named = class_names and 0 <= target < len(class_names)
    what = f"class {target}" + (f" ({class_names[target]!r})" if named else "")  # type: ignore[index]
    n = int((preds.top1 >= 0).sum())
    if mode == "predicted":
        return (f"no image is predicted as {what} among {n} images; give more images of that class or use "
                "--filter true/all")
    if mode == "true":
        return (f"no image is labelled {what} among {n} images; give images of that class or use --filter "
                "predicted/all")
    return f"no readable image among {len(preds)} files; give image files"


def select_images(spec: Any, adapter: Predictor, target: int, mode: FilterMode = "predicted", *,
                  max_images: int | None = None, seed: int = 0, batch_size: int = 64,
                  device: str | torch.device = "cpu", cache_dir: Any = None, workers: int | None = None,
                  skip_bad: bool = False, progress: bool = False) -> ImageSet:
    """Class `target`'s images of a folder, list file or list of paths, with bounded memory: one streamed
    prediction pass (cached in `cache_dir` if given), then only the selected files are decoded."""
    records = scan_images(spec, getattr(adapter, "class_names", None))
    preds = predict_dataset(records, adapter, cache_dir=cache_dir, batch_size=batch_size, device=device,
                            workers=workers, skip_bad=skip_bad, progress=progress)
    positions = select_class(preds, target, mode, max_images, seed)
    if len(positions) == 0:
        raise UserError(empty_selection_message(preds, target, mode, getattr(adapter, "class_names", None)))
    return load_selection(preds, positions, adapter.preprocess, target, mode)


__all__ = ["FilterMode", "empty_selection_message", "load_selection", "select_class", "select_images",
           "selection_fingerprint"]
