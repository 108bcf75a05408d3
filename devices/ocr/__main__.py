"""`python -m devices.ocr read IMAGE…` and `python -m devices.ocr accuracy [DATA_DIR]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from devices.image_file import ImageError
from devices.ocr.accuracy import default_data_dir, run
from devices.ocr.reader import GateReader, load_image


def read_files(paths: list[str]) -> int:
    """One JSON line per image: file, containers, plate, elapsed_ms (or error)."""
    reader = GateReader()
    status = 0
    for path in paths:
        started = time.perf_counter()
        line: dict[str, object] = {"file": path}
        try:
            reading = reader.read(load_image(path))
        except (ImageError, OSError) as err:
            line.update(containers=[], plate=None, error=str(err))
            status = 1
        else:
            line["containers"] = [c.summary() for c in reading.containers]
            line["plate"] = reading.plate.summary() if reading.plate else None
        line["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.ocr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read", help="read container numbers and plates from image files")
    read.add_argument("images", nargs="+", metavar="IMAGE")
    acc = sub.add_parser("accuracy", help="measure accuracy on labelled photos, write the table")
    acc.add_argument("data_dir", nargs="?", type=Path, default=default_data_dir())
    acc.add_argument("--output", type=Path, default=Path("docs/gate-vision-accuracy.md"))
    acc.add_argument(
        "--cache",
        type=Path,
        default=Path("var/ocr-readings.json"),
        help="readings kept between runs, keyed by image and reader code (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.command == "read":
        return read_files(args.images)
    run(args.data_dir, args.output, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
