"""Is an upload a real JPEG? Magic bytes first, then Pillow decodes its header."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: SOI marker followed by the first marker's 0xFF.
JPEG_MAGIC = b"\xff\xd8\xff"


class NotJpeg(ValueError):
    """The bytes are not a JPEG image the server accepts."""


@dataclass(frozen=True, slots=True)
class JpegInfo:
    width: int
    height: int


def check_jpeg(data: bytes, max_pixels: int) -> JpegInfo:
    """Width and height of a JPEG; raises NotJpeg with the reason for anything else."""
    if not data.startswith(JPEG_MAGIC):
        raise NotJpeg("not a JPEG image (it does not start with the JPEG marker FF D8 FF)")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise NotJpeg("the JPEG image is cut short (no end-of-image marker)")
    try:
        with warnings.catch_warnings():
            # Pillow's own warning limit (89.5 Mpx) is not ours: `max_pixels` is checked
            # below, from the same header, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise NotJpeg(f"{width}×{height} pixels is more than {max_pixels} allowed")
                image.verify()
    except NotJpeg:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise NotJpeg(f"not a readable JPEG image: {err}") from err
    except Image.DecompressionBombError as err:
        raise NotJpeg(f"the image is too large: {err}") from err
    if width < 1 or height < 1:
        raise NotJpeg("the JPEG image has no pixels")
    return JpegInfo(width, height)
