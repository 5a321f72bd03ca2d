"""Small image helpers shared by labelling, the viewer and debugging (PNG bytes, base64, PIL)."""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError


def open_rgb(source: str | Path | bytes, name: str | None = None) -> Any:
    """Decode an image file (a path or its bytes) to an RGB PIL image, refusing decompression bombs.

    Pillow only warns between its pixel limit (`PIL.Image.MAX_IMAGE_PIXELS`) and twice that, and decodes
    the image anyway; here both are one-line `UserError`s, as is a file Pillow cannot read."""
    from PIL import Image

    what = name or (str(source) if isinstance(source, str | Path) else "the image")
    fp = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{what} has more pixels than Pillow's safety limit of {Image.MAX_IMAGE_PIXELS} (a "
                        "decompression bomb?); give a smaller image") from None
    except (OSError, ValueError, SyntaxError):
        raise UserError(f"{what} is not an image Pillow can read; give a PNG or JPEG file") from None


def to_pil(image: Any) -> Any:
    """PNG/JPEG bytes, a base64 string, a PIL image or an HxWx3 uint8 array -> RGB PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, str):
        image = base64.b64decode(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return open_rgb(bytes(image))
    if hasattr(image, "shape"):
        return Image.fromarray(image).convert("RGB")
    raise UserError(f"cannot read an image from an object of type {type(image).__name__}")


def png_base64(png: bytes | str) -> str:
    """PNG bytes (or an already base64 string) -> base64 text for a data URI."""
    return png if isinstance(png, str) else base64.b64encode(bytes(png)).decode("ascii")


def pil_png(image: Any) -> bytes:
    """A PIL image -> PNG bytes."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()
