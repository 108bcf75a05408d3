"""A publisher process for the kill -9 tests: a busy position stream through the outbox.

    python -m tests.edge.outbox_child --db FILE --port PORT --node ID --run N [--drain]

Prints `READY` once connected. Without `--drain` it enqueues positions as fast as
the disk allows until killed; with `--drain` it enqueues nothing, exits 0 once the
outbox is empty and the link has stopped cleanly, printing `DONE`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts, utc_now
from edge.link import MqttLink
from edge.outbox import Outbox


async def main(args: argparse.Namespace) -> int:
    outbox = Outbox(Path(args.db), args.node, 50_000_000)
    settings = BrokerSettings(
        host="127.0.0.1", port=args.port, reconnect_min_s=0.05, reconnect_max_s=0.2
    )

    async def on_command(raw: bytes) -> None:
        return None

    link = MqttLink(settings, "truck", args.node, outbox, on_command, max_inflight=16)
    runner = asyncio.create_task(link.run())
    while not link.connected:  # noqa: ASYNC110 - the link exposes a flag
        await asyncio.sleep(0.01)
    print("READY", flush=True)
    if args.drain:
        while outbox.stats().count:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.02)
        await link.stop()
        await runner
        print("DONE", flush=True)
        return 0
    i = 0
    while True:
        i += 1
        outbox.enqueue(
            topics.position(args.node),
            {
                "ts": format_ts(utc_now()),
                # Distinct per run and message: a reused seq would show as a conflict.
                "lat": 22.5 + args.run * 0.01 + i * 1e-6,
                "lon": 113.9,
                "fix": "3d",
                "sats": 12,
                "hdop": 0.9,
                "systems": ["GPS", "BDS"],
            },
        )
        await asyncio.sleep(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--run", type=int, default=0)
    parser.add_argument("--drain", action="store_true")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(parser.parse_args())))
