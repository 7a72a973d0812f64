"""Safe decoding of untrusted image bytes into RGB PIL images.

Owns the rules every image passes before it reaches a tower: an allow-list of container formats
(sniffed from magic bytes, not from the file name), a pixel cap checked from the header before any
pixel is decoded, EXIF orientation, first frame of animations, conversion to RGB. Knows nothing of
models, FAISS or HTTP.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from encoders.errors import InputError

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

# Our cap replaces Pillow's decompression-bomb check: it is applied from the header, before any
# decode, on every path through decode_image, with a message that names the limit the caller set.
Image.MAX_IMAGE_PIXELS = None


def sniff_format(head: bytes) -> str | None:
    """The allowed format whose magic bytes start `head`, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    return None


def read_capped(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a file's bytes, refusing missing files and files over `max_bytes`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    size = p.stat().st_size
    if size > max_bytes:
        raise InputError(f"{p}: {size} bytes is over the limit of {max_bytes} bytes")
    return p.read_bytes()


def input_bytes(data: bytes | str | os.PathLike, name: str | None, what: str,
                max_bytes: int) -> tuple[bytes, str]:  # fmt: skip
    """An input given as bytes or a path, as bytes and the name its errors use (the path, else
    `name`, else `what`); refused when missing, empty or over `max_bytes`."""
    if isinstance(data, (str, os.PathLike)):
        name = name or str(data)
        data = read_capped(data, max_bytes)
    name = name or what
    if not data:
        raise InputError(f"{name}: empty file")
    if len(data) > max_bytes:
        raise InputError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    return data, name


def decode_image(
    data: bytes | str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode one image from bytes or a path into a fully loaded RGB image.

    Raises InputError with a one-line message naming the input for anything not a sane image of an
    allowed format. `draft_size` lets JPEG decode at a reduced scale (libjpeg's DCT scaling) when
    the caller will resize to at most that many pixels on the short side anyway.
    """
    if isinstance(data, (str, os.PathLike)):
        name = name or str(data)
        data = read_capped(data)
    name = name or "image"
    if not data:
        raise InputError(f"{name}: empty file")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise InputError(
            f"{name}: not a supported image format (allowed: {', '.join(ALLOWED_FORMATS)})"
        )
    try:
        # Image.open reads only the header; no pixel data is decoded here.
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InputError(f"{name}: corrupt {fmt} header") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: {fmt} header gives an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, "
            f"over the limit of {max_pixels / 1e6:g}"
        )
    if fmt == "GIF":
        img.seek(0)
    if fmt == "JPEG" and draft_size:
        img.draft("RGB", (draft_size, draft_size))
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise InputError(f"{name}: truncated or corrupt {fmt} data") from None
    return to_rgb(ImageOps.exif_transpose(img))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white rather than black."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
