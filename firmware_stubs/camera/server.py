"""The camera stub's scene source and its MJPEG-over-HTTP server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
import numpy.typing as npt

from firmware_stubs.camera.render import Scene, render_door

logger = logging.getLogger(__name__)

#: A BGR (or grey) 8-bit image as OpenCV returns it.
Image = npt.NDArray[Any]
_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class SceneSource:
    """What the camera sees now; a trigger moves to the next photo or rendered number."""

    def __init__(
        self,
        numbers: list[str],
        photos: Path | None = None,
        iso_type: str = "22G1",
        out_folder: Path | None = None,
        burst: int = 3,
        size: tuple[int, int] = (1920, 1080),
    ) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.cycle(numbers) if numbers else None
        self._photos = (
            itertools.cycle(sorted(p for p in photos.iterdir() if p.suffix.lower() in _SUFFIXES))
            if photos
            else None
        )
        self._iso_type = iso_type
        self._out = out_folder
        self._burst = burst
        self._count = 0
        self.width, self.height = size
        self.frame: Image = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        self.label = ""
        self.jpeg = b""
        self.trigger()

    def trigger(self, number: str | None = None, iso_type: str | None = None) -> dict[str, str]:
        """Show the next scene (or `number`); write a burst to the folder if configured."""
        with self._lock:
            self._count += 1
            if number is None and self._photos is not None:
                path = next(self._photos)
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                blank = np.zeros((self.height, self.width, 3), np.uint8)
                frame: Image = image if image is not None else blank
                label = path.name
            else:
                if number is None:
                    number = next(self._numbers) if self._numbers else "CSQU3054383"
                scene = Scene(
                    number,
                    iso_type or self._iso_type,
                    width=self.width,
                    height=self.height,
                    seed=self._count,
                )
                frame = render_door(scene)
                label = number
            self.frame, self.label = frame, label
            self.jpeg = bytes(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
            if self._out is not None:
                for i in range(self._burst):
                    name = f"{self._count:06d}-{i:02d}.jpg"
                    tmp = self._out / f".{name}"
                    tmp.write_bytes(self.jpeg)
                    os.replace(tmp, self._out / name)
            return {"scene": str(self._count), "label": label}


def make_server(source: SceneSource, port: int = 0, fps: float = 10.0) -> ThreadingHTTPServer:
    """An HTTP server: /stream.mjpg, /frame.jpg, /trigger[?number=…&iso_type=…]."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            logger.debug(format, *args)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/stream.mjpg":
                self._stream()
            elif url.path == "/frame.jpg":
                self._send(200, "image/jpeg", source.jpeg)
            elif url.path == "/trigger":
                query = parse_qs(url.query)
                shown = source.trigger(
                    query.get("number", [None])[0], query.get("iso_type", [None])[0]
                )
                self._send(200, "application/json", json.dumps(shown).encode())
            else:
                self._send(404, "text/plain", b"not found")

        do_POST = do_GET

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                while True:
                    body = source.jpeg
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                    self.wfile.write(f"Content-Length: {len(body)}\r\n\r\n".encode())
                    self.wfile.write(body + b"\r\n")
                    time.sleep(1.0 / fps)
            except (BrokenPipeError, ConnectionResetError):
                return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server
