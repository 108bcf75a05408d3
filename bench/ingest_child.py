"""The server's ingest (`server.ingest.Ingest`) alone in a process of its own, for the
outbox bench: it stores every edge message on a SQLite store and acknowledges it to its
node, or — `off` — stores without acknowledging, so the acknowledgement's cost shows.

`python -m bench.ingest_child PORT DB CLIENT_ID on|off` prints `READY` once subscribed,
then answers each `mark` line on its stdin with `MARK <cpu_s> <stored> <acks>`: the
process's CPU seconds so far (all threads), the positions stored (each (node, seq)
once) and the acknowledgements published. It ends on `quit` or when its stdin closes
(the bench ended), so that it never outlives the bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from contract.broker import BrokerSettings
from server.acks import AckBatcher
from server.config import IngestSettings
from server.ingest import Ingest
from server.metrics import Metrics
from server.store import Store
from server.store.database import IncomingMessage
from server.store.dead_letters import DeadLetter

ACKS_METRIC = "bondwatch_ingest_acks_total"


class _NoAcks(AckBatcher):
    """Remembers nothing and sends nothing: the ingest as it was before acknowledgements."""

    def add(self, committed: Iterable[IncomingMessage]) -> None:
        return None

    def add_refused(self, letters: Iterable[DeadLetter]) -> None:
        return None

    def take(self, now: datetime, limit: int | None = None) -> list[tuple[str, bytes]]:
        return []


async def _serve(port: int, db: str, client_id: str, acks: bool) -> None:
    store = Store.open(f"sqlite:///{db}")
    metrics = Metrics()
    stored = 0

    async def count(fresh: Sequence[IncomingMessage]) -> None:
        nonlocal stored
        stored += sum(1 for item in fresh if item.channel == "position")

    ingest = Ingest(
        BrokerSettings(host="127.0.0.1", port=port, client_id=client_id),
        IngestSettings(),
        store,
        metrics,
        [count],
        client_id,
    )
    if not acks:
        ingest._acks = _NoAcks()  # the bench's "off": no acknowledgement work at all
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(ingest.run())

    def answer() -> None:
        for line in sys.stdin:
            if line.strip() != "mark":
                break
            print(f"MARK {time.process_time():.4f} {stored} {metrics.value(ACKS_METRIC):.0f}")
            sys.stdout.flush()
        loop.call_soon_threadsafe(task.cancel)

    try:
        await asyncio.wait_for(ingest.connected.wait(), 30)
        print("READY", flush=True)
        threading.Thread(target=answer, daemon=True).start()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        task.cancel()
        store.close()


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[3] not in ("on", "off"):
        print("usage: python -m bench.ingest_child PORT DB CLIENT_ID on|off", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(int(argv[0]), argv[1], argv[2], argv[3] == "on"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
