"""The exception tree of the device libraries.

Codecs raise `FrameError` (a `ValueError`) and its subclasses; each keeps the raw
bytes it could not accept so that the caller can log them with context.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base of every error raised by `devices`."""


class FrameError(DeviceError, ValueError):
    """Bytes that do not form a valid frame or sentence. `raw` holds them."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class ChecksumError(FrameError):
    """A frame whose check code or checksum does not match its content."""


class TransportError(DeviceError, OSError):
    """The port could not be opened or was lost."""
