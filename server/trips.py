"""Trip lifecycle on the ingest path.

Foundation scope: a registered declaration opens a trip (`declared`); the first fix of
its vehicle after registration starts it (`in_transit`). The departure-gate rule of
DESIGN.md (passage matches and lock sealed → open command → trip starts) replaces
this trigger in the gate-decision work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from contract.payloads import Position
from server.store import Store
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)


class TripTracker:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        await asyncio.to_thread(self._apply, batch)

    def _apply(self, batch: Sequence[IncomingMessage]) -> None:
        first_fix: dict[str, Position] = {}
        for item in batch:
            msg = item.message
            if isinstance(msg, Position) and msg.fix != "none":
                known = first_fix.get(msg.node_id)
                if known is None or msg.ts < known.ts:
                    first_fix[msg.node_id] = msg
        for vehicle_id, fix in first_fix.items():
            trip = self._store.open_trip_for_vehicle(vehicle_id)
            if trip is not None and trip["status"] == "declared":
                self._store.start_trip(trip["trip_id"], fix.ts)
                log.info("trip %s of %s started at %s", trip["trip_id"], vehicle_id, fix.ts)
