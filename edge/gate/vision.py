"""One passage's pictures: bursts from every camera → sharpest frames → OCR → fused reading.

OCR takes seconds per frame, so it runs on one worker thread (`OcrWorker`), never on
the event loop; JPEG encoding and writing run there too. A camera that gives no
usable frame, or an OCR failure, is reported as a problem of that device; the passage
is then built from what was read — never from a guess.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy.typing as npt

from contract.evidence import IMAGES_PER_PASSAGE, ImageMeta, TextBox
from devices.camera import Camera, Frame, select_sharpest
from devices.errors import DeviceError
from devices.ocr import GateReader, ImageReading, PassageReading, fuse
from edge.gate.evidence import EvidenceImage, crop_around, texts_of

log = logging.getLogger(__name__)

#: JPEG quality of saved frames: legible numbers at a quarter of the PNG size.
JPEG_QUALITY = 90


@dataclass
class PassageCapture:
    """What one reading produced, and what went wrong on the way."""

    reading: PassageReading
    images: list[str] = field(default_factory=list)
    camera_problems: dict[str, str] = field(default_factory=dict)
    """Camera name → why it gave no usable frame."""
    cameras_ok: list[str] = field(default_factory=list)
    ocr_problem: str | None = None
    """Why (some) frames could not be read; None when every frame was read."""
    frames_read: int = 0
    evidence: list[EvidenceImage] = field(default_factory=list)
    """The saved frames and the crops of the texts read in them, numbered for upload."""


class OcrWorker:
    """The gate reader on its own thread: one read at a time, the event loop stays free."""

    def __init__(self, reader: GateReader) -> None:
        self.reader = reader
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ocr")

    async def warm_up(self) -> None:
        """Load the OCR models now (seconds), not when the first truck waits."""
        await self._run(lambda: self.reader.engine)

    async def read(self, image: npt.NDArray[Any]) -> ImageReading:
        reading: ImageReading = await self._run(lambda: self.reader.read(image))
        return reading

    async def save_jpeg(self, image: npt.NDArray[Any], path: Path) -> None:
        await self._run(lambda: _write_jpeg(image, path))

    async def _run(self, func: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _write_jpeg(image: npt.NDArray[Any], path: Path) -> None:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"cannot encode {path.name} as JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(buffer))
    tmp.replace(path)


async def _burst(camera: Camera, max_age_s: float, trigger: float) -> list[Frame]:
    """The camera's burst around the trigger, without frames older than `max_age_s`."""
    frames = await camera.capture_burst()
    fresh = [f for f in frames if f.ts >= trigger - max_age_s]
    if not fresh:
        newest = max(f.ts for f in frames)
        raise DeviceError(
            f"camera {camera.config.name}: newest frame is {trigger - newest:.1f} s old "
            f"(stream stalled?)"
        )
    return fresh


async def capture_passage(
    cameras: Sequence[Camera],
    worker: OcrWorker,
    *,
    node_id: str,
    passage_id: str,
    images_dir: Path,
    day: str,
    frames_per_camera: int,
    max_frame_age_s: float,
    ocr_timeout_s: float,
) -> PassageCapture:
    """Capture every camera at once, read the sharpest frames, fuse, save the images."""
    trigger = time.time()
    bursts = await asyncio.gather(
        *(_burst(cam, max_frame_age_s, trigger) for cam in cameras), return_exceptions=True
    )
    capture = PassageCapture(reading=PassageReading())
    chosen: list[tuple[str, int, Frame]] = []
    for cam, burst in zip(cameras, bursts, strict=True):
        name = cam.config.name
        if isinstance(burst, BaseException):
            if not isinstance(burst, Exception):
                raise burst
            capture.camera_problems[name] = str(burst) or type(burst).__name__
            log.warning("passage %s: camera %s gave no frame: %s", passage_id, name, burst)
            continue
        capture.cameras_ok.append(name)
        for i, frame in enumerate(select_sharpest(burst, frames_per_camera)):
            chosen.append((name, i, frame))
    readings: list[ImageReading] = []
    read_of: dict[int, ImageReading] = {}  # index in `chosen` → its reading
    problems: list[str] = []
    deadline = time.monotonic() + ocr_timeout_s
    for at, (name, i, frame) in enumerate(chosen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            problems.append(f"reading took longer than {ocr_timeout_s:g} s; frames left unread")
            break
        try:
            async with asyncio.timeout(remaining):
                readings.append(await worker.read(frame.image))
                read_of[at] = readings[-1]
        except TimeoutError:
            problems.append(f"reading took longer than {ocr_timeout_s:g} s")
            break
        except Exception as err:  # the OCR engine failing must not end the agent
            problems.append(f"{name} frame {i}: {type(err).__name__}: {err}")
            log.error("passage %s: OCR failed on %s frame %d: %s", passage_id, name, i, err)
    capture.frames_read = len(readings)
    if problems:
        capture.ocr_problem = "; ".join(problems)
    if readings:
        capture.reading = fuse(readings, worker.reader.config.review_threshold)
    relative = Path(day) / passage_id
    saved: list[tuple[EvidenceImage, Frame]] = []
    for at, (name, i, frame) in enumerate(chosen):
        path = images_dir / relative / f"{name}-{i}.jpg"
        try:
            await worker.save_jpeg(frame.image, path)
        except OSError as err:
            log.error("passage %s: cannot save %s: %s", passage_id, path, err)
            continue
        capture.images.append(f"gate://{node_id}/{(relative / path.name).as_posix()}")
        texts = texts_of(read_of.get(at), frame.image.shape)
        meta = ImageMeta(kind="frame", camera=name, texts=texts)
        saved.append((EvidenceImage(len(capture.evidence), path, meta), frame))
        capture.evidence.append(saved[-1][0])
    for image, frame in saved:
        for k, text in enumerate(image.meta.texts):
            if len(capture.evidence) >= IMAGES_PER_PASSAGE:
                break
            crop = await _save_crop(worker, frame, image, k, text, len(capture.evidence))
            if crop is not None:
                capture.evidence.append(crop)
    return capture


async def _save_crop(
    worker: OcrWorker, frame: Frame, image: EvidenceImage, k: int, text: TextBox, n: int
) -> EvidenceImage | None:
    """Text `k` of a saved frame cut out and saved beside it as `{frame}-crop-{k}.jpg`,
    to be image `n` of the passage."""
    (x0, y0, x1, y1), inner = crop_around(text.box, frame.image.shape)
    path = image.path.with_name(f"{image.path.stem}-crop-{k}.jpg")
    try:
        await worker.save_jpeg(frame.image[y0:y1, x0:x1], path)
    except OSError as err:
        log.error("cannot save %s: %s", path, err)
        return None
    meta = ImageMeta(
        kind="crop",
        camera=image.meta.camera,
        frame=image.n,
        texts=[text.model_copy(update={"box": inner})],
    )
    return EvidenceImage(n, path, meta)
