"""Container-number (ISO 6346) and licence-plate OCR for gate cameras.

Public API: `GateReader` (`read(image) -> ImageReading`), `fuse(readings) -> PassageReading`,
`ImageError`, and the pure modules `iso6346` and `plates`.
"""

from devices.image_file import ImageError
from devices.ocr.reader import GateReader, ReaderConfig, fuse, load_image
from devices.ocr.results import ContainerResult, ImageReading, PassageReading, PlateResult

__all__ = [
    "ContainerResult",
    "GateReader",
    "ImageError",
    "ImageReading",
    "PassageReading",
    "PlateResult",
    "ReaderConfig",
    "fuse",
    "load_image",
]
