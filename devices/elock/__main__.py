"""`python -m devices.elock decode FILE`: one hex frame per line → one JSON line per line.

Blank lines and `#` comments give no output line. Each output line has `msg_id`,
`phone`, `serial`, `checksum_ok` and the body fields, or `error` with the reason
(and `checksum_ok` when the check code could still be read). A wrong check code is
reported as `checksum_ok: false` and the frame is decoded anyway.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from devices.elock.codec import decode
from devices.elock.framing import unwrap
from devices.elock.jsonform import message_json
from devices.errors import FrameError


def decode_line(line: str) -> dict[str, Any]:
    text = "".join(line.split())
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return {"error": "not hexadecimal text", "input": text[:200]}
    try:
        return message_json(decode(raw, strict=False))
    except FrameError as err:
        out: dict[str, Any] = {"error": str(err)}
        try:
            _, received, computed = unwrap(raw)
        except FrameError:
            pass
        else:
            out["checksum_ok"] = received == computed
        return out


def decode_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        yield decode_line(stripped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.elock", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode a file of hex frames (one per line) to JSON lines")
    dec.add_argument("file", help="the file to read, or - for standard input")
    args = parser.parse_args(argv)
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as err:
        print(f"cannot read {args.file}: {err}", file=sys.stderr)
        return 2
    with stream:
        for record in decode_lines(stream):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
