"""`gnss.decode_sentences_per_s`: NMEA sentences decoded per second on one core.

Input: every gpsd regression log in tests/data/gpsd (real receivers,
binary packets included), fed in 4 KiB chunks as a serial port would deliver them.
"""

from __future__ import annotations

import time
from typing import Any

from devices.gnss.codec import NmeaStreamDecoder
from devices.gnss.conformance import read_log
from tests.realdata import GPSD_LOGS

DATA = GPSD_LOGS


def run() -> dict[str, dict[str, Any]]:
    stream = b"".join(read_log(p) for p in sorted(DATA.glob("*.log")))
    sentences = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < 3.0:
        decoder = NmeaStreamDecoder()
        for i in range(0, len(stream), 4096):
            decoder.feed(stream[i : i + 4096])
        decoder.flush()
        sentences += decoder.stats.sentences
        elapsed = time.perf_counter() - start
    return {
        "gnss.decode_sentences_per_s": {
            "value": round(sentences / elapsed, 1),
            "unit": "1/s",
            "target": 20000.0,
            "better": "higher",
        }
    }


if __name__ == "__main__":
    print(run())
