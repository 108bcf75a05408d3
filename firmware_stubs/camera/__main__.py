"""`python -m firmware_stubs.camera` — a gate camera for tests and the demo.

Serves MJPEG over HTTP on 127.0.0.1 (and optionally writes bursts of JPEGs into a
folder). Prints its URL(s), then READY. Each trigger (``GET /trigger`` or a line
``trigger [NUMBER]`` on stdin) shows the next scene: the next real photo of
``--photos`` or a rendered container door with the next ``--number``, drawn at
``--size`` (default 1920x1080; a smaller frame reads several times faster).

With stdin a pipe or a terminal, the stub ends at ``quit`` or at the end of its input
(a test closing the pipe); with stdin ``/dev/null`` or a file (the demo, CI) it serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
from pathlib import Path

from firmware_stubs.camera.server import SceneSource, make_server

MIN_SIDE, MAX_SIDE = 160, 4096


def frame_size(text: str) -> tuple[int, int]:
    """`WxH` (e.g. 960x540) → (width, height), each side 160..4096 pixels."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 960x540") from None
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise argparse.ArgumentTypeError(
            f"{text!r}: each side must be {MIN_SIDE}..{MAX_SIDE} pixels"
        )
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_stubs.camera", description=__doc__)
    parser.add_argument(
        "--number", action="append", default=[], help="container number to render (repeatable)"
    )
    parser.add_argument("--iso-type", default="22G1", help="size/type code to render")
    parser.add_argument("--photos", type=Path, help="serve these photos instead of rendering")
    parser.add_argument(
        "--folder", type=Path, help="also write each trigger's frames into this folder"
    )
    parser.add_argument(
        "--burst", type=int, default=3, help="frames written per trigger to --folder"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="HTTP port on 127.0.0.1 (0: any free one)"
    )
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument(
        "--size",
        type=frame_size,
        default=(1920, 1080),
        metavar="WxH",
        help="size of the rendered frames (default 1920x1080; photos keep their own)",
    )
    args = parser.parse_args(argv)
    if args.folder:
        args.folder.mkdir(parents=True, exist_ok=True)
    source = SceneSource(
        args.number, args.photos, args.iso_type, args.folder, args.burst, size=args.size
    )
    server = make_server(source, args.port, args.fps)
    threading.Thread(target=server.serve_forever, name="mjpeg", daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", flush=True)
    if args.folder:
        print(f"folder://{args.folder.resolve()}", flush=True)
    # Signal handlers before READY: a parent may stop the stub as soon as it is ready.
    stop = None if _stdin_is_a_channel() else _stop_on_signal()
    print("READY", flush=True)
    try:
        if stop is None:
            _serve_stdin(source)
        else:
            stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


def _stdin_is_a_channel() -> bool:
    """Whether stdin is a pipe, socket or terminal (not /dev/null, not a file)."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


def _serve_stdin(source: SceneSource) -> None:
    for line in sys.stdin:
        words = line.split()
        if words and words[0] == "trigger":
            print(source.trigger(words[1] if len(words) > 1 else None)["label"], flush=True)
        elif words and words[0] == "quit":
            return


def _stop_on_signal() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


if __name__ == "__main__":
    sys.exit(main())
