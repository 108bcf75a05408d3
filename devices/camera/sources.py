"""Frame sources opened by URL: OpenCV VideoCapture, or a folder of image files."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import cv2
import numpy.typing as npt

from devices.errors import TransportError
from devices.image_file import ImageError, read_file

logger = logging.getLogger(__name__)

#: A BGR (or grey) 8-bit image as OpenCV returns it.
Image = npt.NDArray[Any]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class FrameSource(Protocol):
    def read(self) -> Image | None:
        """The next frame; None when none is available now (or the source ended)."""

    @property
    def ended(self) -> bool:
        """True when a finite source (file, folder without new images) has nothing more."""

    def close(self) -> None: ...


class VideoSource:
    """Anything OpenCV's VideoCapture opens: rtsp/http streams, V4L2 devices, video files."""

    def __init__(self, target: str | int, loop: bool = False) -> None:
        if isinstance(target, int) or target.startswith("/dev/video"):
            self._cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        else:
            self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise TransportError(f"cannot open camera {target!r}")
        self._target = target
        self._loop = loop
        self._is_file = isinstance(target, str) and os.path.isfile(target)
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def read(self) -> Image | None:
        ok, frame = self._cap.read()
        if ok and frame is not None:
            image: Image = frame
            return image
        if self._is_file:
            if self._loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                return None
            self._ended = True
            return None
        raise TransportError(f"camera {self._target!r} stopped sending frames")

    def close(self) -> None:
        self._cap.release()


class FolderSource:
    """Images in a folder, in name order; new files are picked up as they appear."""

    def __init__(self, folder: Path, loop: bool = False, poll_s: float = 0.05) -> None:
        if not folder.is_dir():
            raise TransportError(f"image folder {str(folder)!r} does not exist")
        self._folder = folder
        self._seen: set[str] = set()
        self._loop = loop
        self._poll_s = poll_s
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def _pending(self) -> list[Path]:
        try:
            names = sorted(
                p
                for p in self._folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        except OSError as err:
            raise TransportError(f"image folder {str(self._folder)!r} unreadable: {err}") from err
        return [p for p in names if p.name not in self._seen]

    def read(self) -> Image | None:
        pending = self._pending()
        if not pending and self._loop and self._seen:
            self._seen.clear()
            pending = self._pending()
        if not pending:
            time.sleep(self._poll_s)
            return None
        path = pending[0]
        self._seen.add(path.name)
        try:  # its declared size checked before any pixel is decoded
            frame: Image = read_file(str(path))
        except (ImageError, OSError) as err:
            logger.warning(
                "camera folder %s: skipping unreadable image %s: %s", self._folder, path.name, err
            )
            return None
        return frame

    def close(self) -> None:
        self._seen.clear()


def open_source(url: str, loop: bool = False, poll_s: float = 0.05) -> FrameSource:
    """Open a frame source from its URL (see `CameraConfig.url`)."""
    parsed = urlparse(url)
    if parsed.scheme == "folder":
        return FolderSource(Path(parsed.path), loop=loop, poll_s=poll_s)
    if parsed.scheme == "v4l2":
        return VideoSource(parsed.path, loop=loop)
    if parsed.scheme in ("", "file") and os.path.isdir(parsed.path or url):
        return FolderSource(Path(parsed.path or url), loop=loop, poll_s=poll_s)
    if parsed.scheme == "file":
        return VideoSource(parsed.path, loop=loop)
    if url.isdigit():
        return VideoSource(int(url), loop=loop)
    return VideoSource(url, loop=loop)
