"""Image bytes from outside — a file a camera wrote into its folder, a photo handed to the
reader — decoded only after the size their header declares has been checked.

A compressed image says how large it is before any pixel is decoded, and a few hundred
bytes may declare 30,000 × 30,000 pixels: OpenCV's `imdecode` would first allocate the
whole frame (2.7 GB for that one) and only then could the caller find it too large; past
OpenCV's own limit (2^30 pixels) it raises `cv2.error` instead of returning None. Pillow
reads the header alone (`Image.open` is lazy), so the declared size is checked first and
the pixels are decoded by OpenCV afterwards, as before.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from devices.errors import DeviceError

#: The smallest side of an image worth reading (pixels).
MIN_SIDE: Final = 16
#: The most pixels an image may have (width × height): a 40-megapixel camera's frame.
MAX_PIXELS: Final = 40_000_000
#: The largest image file read (bytes): ten times a 40-megapixel JPEG of good quality.
MAX_FILE_BYTES: Final = 128 * 1024 * 1024


class ImageError(DeviceError, ValueError):
    """An image that cannot be read: empty, corrupt, too small or too large."""


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) that the image's header declares, without decoding it; ImageError
    for bytes that are no image format known here."""
    if not data:
        raise ImageError("empty image file")
    try:
        with warnings.catch_warnings():
            # Pillow's bomb limits are not ours: the caller checks the size itself.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as err:  # its size is past Pillow's hard limit
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(f"image too large: more than {limit} pixels declared") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"not a decodable image (corrupt or unknown format): {err}") from err
    return int(width), int(height)


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> npt.NDArray[Any]:
    """The image's pixels as OpenCV decodes them (BGR, EXIF orientation applied), once its
    header has declared a size within `max_pixels` and `MIN_SIDE`; else ImageError."""
    width, height = declared_size(data)
    if width * height > max_pixels:
        raise ImageError(f"image too large: {width}x{height} (at most {max_pixels} pixels)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image too small: {width}x{height} (need at least {MIN_SIDE} px a side)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise ImageError(f"not a decodable image: {str(err).strip()[:200]}") from err
    if image is None:
        raise ImageError("not a decodable image (corrupt or unknown format)")
    decoded: npt.NDArray[Any] = image
    return decoded


def read_file(path: str, max_pixels: int = MAX_PIXELS) -> npt.NDArray[Any]:
    """`decode` of a file's bytes; ImageError as there, and for a file larger than
    `MAX_FILE_BYTES` (OSError for a file that cannot be read)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"image file larger than {MAX_FILE_BYTES} bytes")
    return decode(data, max_pixels)
