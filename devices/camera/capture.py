"""The gate camera: a background reader keeps recent frames; a trigger takes a burst.

`Camera.capture_burst()` returns the frames buffered before the trigger (the truck
was already in view) and the frames that follow it. The reader reconnects with
back-off when the stream drops, logging the loss once and the return once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import numpy.typing as npt

from devices.camera.config import CameraConfig
from devices.camera.focus import sharpness
from devices.camera.sources import FrameSource, open_source
from devices.errors import DeviceError, TransportError
from devices.lifecycle import Backoff

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(eq=False)
class Frame:
    """One captured frame: BGR pixels, capture time (Unix seconds), running index."""

    image: npt.NDArray[Any]
    ts: float
    index: int
    _sharpness: float | None = field(default=None, repr=False)

    @property
    def sharpness(self) -> float:
        """Variance of the Laplacian (computed once)."""
        if self._sharpness is None:
            self._sharpness = sharpness(self.image)
        return self._sharpness


class CaptureTimeout(DeviceError, TimeoutError):
    """Fewer frames than asked for arrived in time."""


class Camera:
    """An OpenCV camera with a frame buffer around triggers."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self._recent: collections.deque[Frame] = collections.deque(
            maxlen=max(1, config.frames_before)
        )
        self._index = 0
        self._new_frame = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._source: FrameSource | None = None
        self._bursts: list[list[Frame]] = []
        # One thread per camera: reads and the final close never overlap (OpenCV is not
        # safe against releasing a capture in the middle of a read).
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"camera-{config.name}"
        )
        self._connected = False
        self.ended = False

    async def __aenter__(self) -> Camera:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._task is None:
            if self._executor._shutdown:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="camera"
                )
            self._task = asyncio.create_task(self._run(), name=f"camera-{self.config.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._source is not None:
            await self._call(self._source.close)
            self._source = None
        self._connected = False
        self._executor.shutdown(wait=False)

    async def _call(self, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def _open(self) -> FrameSource:
        cfg = self.config
        opener = functools.partial(
            open_source, cfg.url, loop=cfg.loop_files, poll_s=cfg.folder_poll_s
        )
        return await self._call(opener)

    async def _run(self) -> None:
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        lost_logged = False
        while True:
            try:
                self._source = await self._open()
                if lost_logged:
                    logger.info("camera %s: back at %s", self.config.name, self.config.url)
                    lost_logged = False
                self._connected = True
                backoff.reset()
                await self._pump(self._source)
                if self._source.ended:
                    logger.info("camera %s: source %s ended", self.config.name, self.config.url)
                    self.ended = True
                    async with self._new_frame:
                        self._new_frame.notify_all()
                    return
            except Exception as err:  # a source's own failure must not end the camera
                self._connected = False
                if not lost_logged:
                    if isinstance(err, TransportError):
                        logger.warning("camera %s: lost (%s); reconnecting", self.config.name, err)
                    else:
                        logger.exception("camera %s: failed; reopening it", self.config.name)
                    lost_logged = True
                if self._source is not None:
                    await self._call(self._source.close)
                    self._source = None
                await backoff.wait()

    async def _pump(self, source: FrameSource) -> None:
        while not source.ended:
            image = await self._call(source.read)
            if image is None:
                await asyncio.sleep(0)
                continue
            frame = Frame(image=image, ts=time.time(), index=self._index)
            self._index += 1
            async with self._new_frame:
                self._recent.append(frame)
                for burst in self._bursts:
                    burst.append(frame)
                self._new_frame.notify_all()

    async def capture_burst(
        self, before: int | None = None, after: int | None = None
    ) -> list[Frame]:
        """Frames from before the trigger (buffered) and `after` frames following it.

        Raises CaptureTimeout when the following frames do not all arrive in
        `burst_timeout_s` and nothing at all was captured.
        """
        before = self.config.frames_before if before is None else before
        after = self.config.frames_after if after is None else after
        frames = list(self._recent)[-before:] if before else []
        deadline = time.monotonic() + self.config.burst_timeout_s
        collected: list[Frame] = []
        async with self._new_frame:
            self._bursts.append(collected)
            try:
                while len(collected) < after and not self.ended:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._new_frame.wait(), timeout=remaining)
                    except TimeoutError:
                        break
            finally:
                self._bursts.remove(collected)
        seen = {f.index for f in frames}
        frames.extend(f for f in collected[:after] if f.index not in seen)
        if not frames:
            raise CaptureTimeout(
                f"camera {self.config.name}: no frame within {self.config.burst_timeout_s} s"
            )
        return frames
