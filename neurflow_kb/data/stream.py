"""Decoding image files lazily, batch by batch: a `torch.utils.data` pipeline over `ImageRecords`.

Worker processes read each file once, hash its bytes (SHA-256, the file's content identity) and decode it
with PIL plus the model's preprocessing; the main process only stacks batches. Memory is bounded by the
batch size and the loader's prefetch, never by the number of files. A file that cannot be read comes back
as an error naming it, so the caller decides whether to stop (one line) or skip it.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError

Preprocessor = Callable[[Image.Image], torch.Tensor]


def open_rgb(source: str | Path | bytes, name: str | None = None, fix: str = "give a PNG or JPEG file"
             ) -> Image.Image:
    """Decode an image file (a path or its bytes) to an RGB PIL image, refusing decompression bombs.

    Pillow only warns between its pixel limit (`PIL.Image.MAX_IMAGE_PIXELS`) and twice that, and decodes
    the image anyway; here both are one-line `UserError`s (ending in `fix`), as is a file Pillow cannot
    read."""
    what = name or (str(source) if isinstance(source, str | Path) else "the image")
    fp = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{what} has more pixels than Pillow's safety limit of {Image.MAX_IMAGE_PIXELS} (a "
                        f"decompression bomb?); {fix}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UserError(f"{what} is corrupt or not an image Pillow can read ({type(exc).__name__}); "
                        f"{fix}") from None


def decode_bytes(data: bytes, preprocess: Preprocessor, name: str | Path) -> torch.Tensor:
    """Decode one image file's bytes and preprocess it to a float [3,H,W] tensor.

    Raises `UserError` naming the file when it is not a readable image, is a decompression bomb (more
    pixels than PIL's limit), or when the preprocessing does not give a [3,H,W] tensor.
    """
    t = preprocess(open_rgb(data, name=f"image file {name}", fix="replace or remove it"))
    if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] != 3:
        shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise UserError(f"preprocess must turn {name} into a [3,H,W] tensor (got {shape}); "
                        "check the preprocessing")
    return t.detach().to(torch.float32)


def read_image(path: str | Path, preprocess: Preprocessor) -> torch.Tensor:
    """Read and preprocess one image file (see `decode_bytes`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read image file {path} ({exc.strerror or type(exc).__name__}); check it "
                        "exists and is readable") from None
    return decode_bytes(data, preprocess, path)


@dataclass
class DecodedBatch:
    """One batch from `stream_images`: record positions, their content hashes, the stacked tensors of the
    files that decoded (`ok` marks which of `positions` they are) and an error line per failed file."""

    positions: np.ndarray
    sha256: list[str]
    images: torch.Tensor
    ok: np.ndarray
    errors: dict[int, str]

    def pin_memory(self) -> DecodedBatch:
        """The same batch with its tensor in page-locked memory (the DataLoader calls this)."""
        self.images = self.images.pin_memory()
        return self


class _FileDataset(torch.utils.data.Dataset):
    """Item i = (position, sha256 hex, tensor or None, error or None) of the i-th listed file."""

    def __init__(self, files: Sequence[Path], positions: Sequence[int], preprocess: Preprocessor) -> None:
        self.files = list(files)
        self.positions = list(positions)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, str, torch.Tensor | None, str | None]:
        path = self.files[i]
        try:
            data = path.read_bytes()
        except OSError as exc:
            msg = (f"cannot read image file {path} ({exc.strerror or type(exc).__name__}); check it exists "
                   "and is readable")
            return self.positions[i], "", None, msg
        digest = hashlib.sha256(data).hexdigest()
        try:
            return self.positions[i], digest, decode_bytes(data, self.preprocess, path), None
        except UserError as exc:
            return self.positions[i], digest, None, str(exc)


def _collate(items: list[tuple[int, str, torch.Tensor | None, str | None]]) -> DecodedBatch:
    ok = np.array([t is not None for _, _, t, _ in items], dtype=bool)
    tensors = [t for _, _, t, _ in items if t is not None]
    odd = next((t for t in tensors if t.shape != tensors[0].shape), None)
    if odd is not None:
        raise UserError(f"preprocess gave {list(odd.shape)} for one image but {list(tensors[0].shape)} for "
                        "another; use a preprocessing with a fixed crop size")
    images = torch.stack(tensors) if tensors else torch.zeros(0)
    return DecodedBatch(np.array([p for p, _, _, _ in items], dtype=np.int64), [h for _, h, _, _ in items],
                        images, ok, {p: e for p, _, _, e in items if e is not None})


def default_workers() -> int:
    """Decoding processes: one core is left to the model; at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def stream_images(files: Sequence[Path], preprocess: Preprocessor, *, positions: Sequence[int] | None = None,
                  batch_size: int = 64, workers: int | None = None, pin_memory: bool = False
                  ) -> Iterator[DecodedBatch]:
    """Decode `files` in order, `batch_size` at a time, in `workers` processes (0: in this process).

    `positions` label the files in the batches (default 0..n-1). With `pin_memory` (when the model sits
    on a GPU) batches arrive in page-locked memory for fast, asynchronous copies.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1 (got {batch_size})")
    positions = list(range(len(files))) if positions is None else list(positions)
    workers = default_workers() if workers is None else int(workers)
    if not files:
        return
    dataset = _FileDataset(files, positions, preprocess)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=2 if workers else None, persistent_workers=False)
    yield from loader


__all__ = ["DecodedBatch", "decode_bytes", "default_workers", "open_rgb", "read_image", "stream_images"]
