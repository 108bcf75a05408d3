"""`python -m firmware_stubs.camera` — a gate camera for tests and the demo.

Serves MJPEG over HTTP on 127.0.0.1 (and optionally writes bursts of JPEGs into a
folder). Prints its URL(s), then READY. Each trigger (``GET /trigger`` or a line
``trigger [NUMBER]`` on stdin) shows the next scene: the next real photo of
``--photos`` or a rendered container door with the next ``--number``.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from firmware_stubs.camera.server import SceneSource, make_server


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
    args = parser.parse_args(argv)
    if args.folder:
        args.folder.mkdir(parents=True, exist_ok=True)
    source = SceneSource(args.number, args.photos, args.iso_type, args.folder, args.burst)
    server = make_server(source, args.port, args.fps)
    threading.Thread(target=server.serve_forever, name="mjpeg", daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", flush=True)
    if args.folder:
        print(f"folder://{args.folder.resolve()}", flush=True)
    print("READY", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if words and words[0] == "trigger":
                print(source.trigger(words[1] if len(words) > 1 else None)["label"], flush=True)
            elif words and words[0] == "quit":
                break
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
