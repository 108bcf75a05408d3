"""OCR speed: a full read (containers + plate) of one 1080p gate frame on this CPU.

Frames: the 1080p gate-camera photos of `$BONDWATCH_DATA/containers` (default
`../shared/data`) when present
(read in place), else rendered container doors. Because the machine may be shared,
the same frames are also read by the *full* pipeline (detection at the frame's own
resolution, every text box recognised — what the reader did before staged
recognition) in the same run, interleaved, and the ratio is reported as well.

Metrics: `ocr.ms_per_image_p50`, `ocr.ms_per_image_p95` (default configuration, plate
included), `ocr.ms_per_image_p50_no_plate` (a container camera: `read_plates=False`),
`ocr.ms_per_image_p50_full` (the full pipeline) and `ocr.speed_ratio_vs_full`
(default p50 / full p50; lower is better).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy.typing as npt

from devices.ocr.accuracy import default_data_dir
from devices.ocr.reader import GateReader, ReaderConfig, load_image

DATA = default_data_dir() / "containers"
FRAMES = 6

#: The reader before staged recognition: detection at full 1080p, every box read.
FULL = ReaderConfig(detect_side=2048, first_boxes=1000)


def _frames() -> list[npt.NDArray[Any]]:
    frames = []
    if DATA.is_dir():
        for path in sorted(DATA.glob("*-OCR-*.jpg")):
            image = load_image(str(path))
            if image.shape[:2] == (1080, 1920):
                frames.append(image)
    if not frames:
        from firmware_stubs.camera.render import Scene, render_door

        frames = [render_door(Scene("CSQU3054383", seed=s)) for s in range(4)]
    # Spread over the set: different cameras (front, side, back) and containers.
    step = max(1, len(frames) // FRAMES)
    return frames[::step][:FRAMES]


def _ms(reader: GateReader, frame: npt.NDArray[Any]) -> float:
    started = time.perf_counter()
    reader.read(frame)
    return (time.perf_counter() - started) * 1000.0


def measure(frames: list[npt.NDArray[Any]]) -> dict[str, list[float]]:
    """Milliseconds per frame of each configuration, reading the frames interleaved."""
    readers = {
        "default": GateReader(),
        "no_plate": GateReader(ReaderConfig(read_plates=False)),
        "full": GateReader(FULL),
    }
    readers["full"].read(frames[0])  # load the models, warm the engine
    times: dict[str, list[float]] = {name: [] for name in readers}
    for frame in frames:
        for name, reader in readers.items():
            times[name].append(_ms(reader, frame))
    return times


def run() -> dict[str, dict[str, object]]:
    times = measure(_frames())
    default = sorted(times["default"])
    p50 = statistics.median(default)
    p95 = default[min(len(default) - 1, round(0.95 * (len(default) - 1)))]
    full = statistics.median(times["full"])
    return {
        "ocr.ms_per_image_p50": {
            "value": round(p50, 1),
            "unit": "ms",
            "target": 500.0,
            "better": "lower",
        },
        "ocr.ms_per_image_p95": {
            "value": round(p95, 1),
            "unit": "ms",
            "target": None,
            "better": "lower",
        },
        "ocr.ms_per_image_p50_no_plate": {
            "value": round(statistics.median(times["no_plate"]), 1),
            "unit": "ms",
            "target": 500.0,
            "better": "lower",
        },
        "ocr.ms_per_image_p50_full": {
            "value": round(full, 1),
            "unit": "ms",
            "target": None,
            "better": "lower",
        },
        "ocr.speed_ratio_vs_full": {
            "value": round(p50 / full, 3),
            "unit": "ratio",
            "target": None,
            "better": "lower",
        },
    }


if __name__ == "__main__":
    for name, metric in run().items():
        print(f"{name:32} {metric['value']:>10} {metric['unit']}")
