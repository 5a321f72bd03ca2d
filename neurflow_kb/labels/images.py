"""Small image helpers shared by labelling, the viewer and debugging (PNG bytes, base64, PIL)."""

from __future__ import annotations

import base64
import io
from typing import Any

from ..data.stream import open_rgb
from ..errors import UserError


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
