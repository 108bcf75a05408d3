"""OCR speed: a full read (containers + plate) of one 1080p gate frame on this CPU.

Frames: the 1080p gate-camera photos of /work/shared/data/containers when present
(read in place), else rendered container doors. Metrics `ocr.ms_per_image_p50` and
`ocr.ms_per_image_p95`.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy.typing as npt

from devices.ocr.reader import GateReader, load_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "containers"
ROUNDS = 12


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
    return frames


def run() -> dict[str, dict[str, object]]:
    reader = GateReader()
    frames = _frames()
    reader.read(frames[0])  # load the models, warm the engine
    times: list[float] = []
    for i in range(ROUNDS):
        started = time.perf_counter()
        reader.read(frames[i % len(frames)])
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {
        "ocr.ms_per_image_p50": {
            "value": round(statistics.median(times), 1),
            "unit": "ms",
            "target": 800.0,
            "better": "lower",
        },
        "ocr.ms_per_image_p95": {
            "value": round(p95, 1),
            "unit": "ms",
            "target": None,
            "better": "lower",
        },
    }


if __name__ == "__main__":
    for name, metric in run().items():
        print(f"{name:28} {metric['value']:>10} {metric['unit']}")
