"""DEVICE_CLOCK_AHEAD: one health alarm per episode of a device whose clock runs ahead.

The ingest refuses a message whose `ts` is too far ahead of the server's receive time
(`clock_ahead`, server.ingest) and tells `on_rejected`. The first such refusal of a node
opens an episode and raises the alarm — against the node's open trip, or `node:{id}` when
it has none; further refusals of the episode add nothing (a device sending thousands of
them costs no database write). The episode ends, and the alarm is cleared, when a message
of that node is accepted again (`on_messages`, an ingest handler) or after `quiet_s`
without a refusal (`tick`).

Database work runs on one worker thread of its own, in the order the events came, so the
ingest's event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select

from contract.ids import format_ts, utc_now
from server.alarms.service import AlarmService
from server.ingest import Rejected
from server.rules.alarms import DEFAULT_SEVERITY, AlarmType
from server.store import Store, schema
from server.store.database import IncomingMessage, as_utc

log = logging.getLogger(__name__)

ALARM: Final[AlarmType] = "DEVICE_CLOCK_AHEAD"
REASON: Final = "clock_ahead"
#: Without a refusal for this long, an episode ends even if the device stays silent.
DEFAULT_QUIET_S: Final = 600.0


@dataclass
class Episode:
    started_at: datetime
    last_at: datetime
    refused: int
    #: the trip the alarm was raised against, once raised
    trip_id: str | None = None


class ClockAheadAlarms:
    def __init__(
        self, store: Store, alarms: AlarmService, quiet_s: float = DEFAULT_QUIET_S
    ) -> None:
        self._store = store
        self._alarms = alarms
        self._quiet = timedelta(seconds=quiet_s)
        self._episodes: dict[str, Episode] = {}
        self._lock = threading.Lock()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clock-ahead")
        self._db.submit(self._adopt_active)

    # ---- the ingest's hooks (the event loop: quick, no I/O) -----------------------------

    def on_rejected(self, rejected: Rejected) -> None:
        """`Ingest(on_rejected=[…])`: a refusal; only `clock_ahead` ones with a node count."""
        if rejected.reason != REASON or rejected.node_id is None:
            return
        node, at = rejected.node_id, rejected.received_at
        with self._lock:
            episode = self._episodes.get(node)
            if episode is not None:
                episode.last_at = max(episode.last_at, at)
                episode.refused += 1
                return
            episode = Episode(at, at, 1)
            self._episodes[node] = episode
        ahead_s = (
            round((rejected.device_ts - at).total_seconds())
            if rejected.device_ts is not None
            else None
        )
        detail = {"reason": "clock_ahead", "device_ts": rejected.device_ts, "ahead_s": ahead_s}
        self._db.submit(self._raise, node, episode, at, detail)

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """An ingest handler: an accepted message of a node ends its episode."""
        ended: list[tuple[str, Episode, datetime]] = []
        with self._lock:
            if not self._episodes:
                return
            for item in batch:
                node = item.message.node_id
                episode = self._episodes.pop(node, None)
                if episode is not None:
                    ended.append((node, episode, item.received_at))
        for node, episode, at in ended:
            self._db.submit(self._clear, node, episode, at, "a message was accepted again")

    def tick(self, now: datetime | None = None) -> list[Future[Any]]:
        """End the episodes without a refusal for `quiet_s`."""
        now = now or utc_now()
        with self._lock:
            quiet = [n for n, e in self._episodes.items() if now - e.last_at >= self._quiet]
            ended = [(n, self._episodes.pop(n)) for n in quiet]
        return [
            self._db.submit(self._clear, n, e, now, f"no clock_ahead for {self._quiet}")
            for n, e in ended
        ]

    async def run_forever(self, interval_s: float = 30.0) -> None:
        try:
            while True:
                await asyncio.sleep(interval_s)
                self.tick()
        finally:
            self._db.shutdown(wait=False)

    def flush(self) -> None:
        """Wait for the database work submitted so far (tests, shutdown)."""
        self._db.submit(lambda: None).result()

    # ---- the database (the worker thread) -----------------------------------------------

    def _adopt_active(self) -> None:
        """After a restart: the episodes whose alarm is still active are open."""
        a = schema.alarms.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(a.vehicle_id, a.trip_id, a.first_at, a.last_at).where(
                    a.type == ALARM, a.status.in_(("active_unack", "active_ack"))
                )
            ).all()
        with self._lock:
            for row in rows:
                first, last = _utc(row.first_at), _utc(row.last_at)
                self._episodes.setdefault(row.vehicle_id, Episode(first, last, 0, row.trip_id))

    def _raise(self, node: str, episode: Episode, at: datetime, detail: dict[str, Any]) -> None:
        try:
            trip = self._store.open_trips_for_vehicles([node]).get(node)
            trip_id = str(trip.trip_id) if trip is not None else f"node:{node}"[:64]
            text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=_json_time)
            outcome = self._alarms.raise_(
                trip_id, node, ALARM, DEFAULT_SEVERITY[ALARM], at, None, text
            )
            episode.trip_id = trip_id
            self._alarms.notify([outcome.alarm_id])
            log.warning(
                "%s: clock ahead of the server (%s); alarm %s", node, text, outcome.alarm_id
            )
        except Exception:
            log.exception("%s: DEVICE_CLOCK_AHEAD could not be raised", node)

    def _clear(self, node: str, episode: Episode, at: datetime, why: str) -> None:
        if episode.trip_id is None:
            return  # never raised (its raise failed)
        detail = json.dumps({"reason": why, "refused": episode.refused}, sort_keys=True)
        try:
            cleared = self._alarms.clear(episode.trip_id, ALARM, at, detail)
        except Exception:
            log.exception("%s: DEVICE_CLOCK_AHEAD could not be cleared", node)
            return
        if cleared is not None:
            self._alarms.notify([cleared])
            log.info("%s: clock no longer ahead (%s)", node, why)


def _utc(value: datetime) -> datetime:
    out = as_utc(value)
    assert out is not None
    return out


def _json_time(value: object) -> str:
    if isinstance(value, datetime):
        return format_ts(value)
    return str(value)
