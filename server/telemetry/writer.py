"""Positions and active-alarm counts to an InfluxDB v2 write API, off the ingest path.

The ingest handler (`on_messages`) only appends stored positions to a bounded queue;
`run` writes them in batches from a worker thread through `influxdb-client` (its
synchronous write API, so every outcome is known here). A failed write keeps its points
for the next try, backing off up to `MAX_BACKOFF_S`; beyond `queue_max` the oldest
points are dropped and counted. An outage is logged once when it starts and once when
it ends, with the number of failed writes in between.

Points (line protocol, millisecond precision):
- `position,vehicle_id=…,fix=3d lat=…,lon=…,speed_kmh=…,course_deg=…,alt_m=…,sats=…i,
  hdop=…,seq=…i,replayed=0i <fix time>`
- `alarms,type=…,severity=… active=…i <now>` per (type, severity) with active alarms,
  and `alarms_total active=…i <now>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from sqlalchemy import func, select

from contract.ids import utc_now
from contract.payloads import Position
from server.alarms.lifecycle import ACTIVE
from server.metrics import Metrics
from server.store import Store, schema
from server.store.database import IncomingMessage
from server.telemetry.config import TelemetrySettings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
POINTS = "bondwatch_telemetry_points_total"
FAILURES = "bondwatch_telemetry_write_failures_total"

Record = Position | Point


def make_point(
    measurement: str, tags: dict[str, str], fields: dict[str, float | int], at: datetime
) -> Point:
    """One point, millisecond precision (influxdb-client does the line-protocol escaping)."""
    point = Point(measurement)  # type: ignore[no-untyped-call]
    for key, tag in tags.items():
        point.tag(key, tag)  # type: ignore[no-untyped-call]
    for key, value in fields.items():
        point.field(key, value)  # type: ignore[no-untyped-call]
    point.time(at, WritePrecision.MS)  # type: ignore[no-untyped-call]
    return point


def position_point(msg: Position) -> Point:
    fields: dict[str, float | int] = {
        "seq": int(msg.seq),
        "replayed": int(bool(msg.replayed)),
    }
    for name in ("lat", "lon", "speed_kmh", "course_deg", "alt_m", "hdop"):
        value = getattr(msg, name)
        if value is not None:
            fields[name] = float(value)
    if msg.sats is not None:
        fields["sats"] = int(msg.sats)
    return make_point("position", {"vehicle_id": msg.node_id, "fix": msg.fix}, fields, msg.ts)


def alarm_points(counts: Sequence[tuple[str, str, int]], at: datetime) -> list[Point]:
    """Points for active alarms counted by (type, severity), and their total."""
    points = [
        make_point("alarms", {"type": kind, "severity": severity}, {"active": int(n)}, at)
        for kind, severity, n in counts
    ]
    points.append(make_point("alarms_total", {}, {"active": sum(n for _, _, n in counts)}, at))
    return points


def active_alarm_counts(store: Store) -> list[tuple[str, str, int]]:
    a = schema.alarms.c
    query = (
        select(a.type, a.severity, func.count())
        .where(a.status.in_(ACTIVE))
        .group_by(a.type, a.severity)
        .order_by(a.type, a.severity)
    )
    with store.engine.connect() as conn:
        return [(str(t), str(s), int(n)) for t, s, n in conn.execute(query)]


class TelemetryWriter:
    def __init__(
        self, settings: TelemetrySettings, metrics: Metrics, token: str | None = None
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        if token is None and settings.token_env:
            token = os.environ.get(settings.token_env)
            if token is None:
                log.warning(
                    "telemetry: %s is not set; writing to %s without a token",
                    settings.token_env,
                    settings.url,
                )
        self._client = InfluxDBClient(
            url=settings.url,
            token=token or "",
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._queue: deque[Record] = deque()
        self._wake = asyncio.Event()
        self.failing_since: datetime | None = None
        self.failures_in_outage = 0
        metrics.describe(POINTS, "telemetry points by outcome (written, dropped)")
        metrics.describe(FAILURES, "failed telemetry write requests")

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ---- the ingest side: never waits -------------------------------------------------

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """Ingest handler: queue the batch's positions (with a fix) for writing."""
        added = 0
        for item in batch:
            msg = item.message
            if isinstance(msg, Position) and msg.fix != "none":
                self._queue.append(msg)
                added += 1
        if added:
            self._trim()
            if len(self._queue) >= self.settings.batch_max:
                self._wake.set()

    def add(self, records: Sequence[Record]) -> None:
        """Queue positions or ready-made points."""
        self._queue.extend(records)
        self._trim()

    def _trim(self) -> None:
        excess = len(self._queue) - self.settings.queue_max
        if excess > 0:
            for _ in range(excess):
                self._queue.popleft()
            self._metrics.inc(POINTS, excess, outcome="dropped")

    # ---- the writer -------------------------------------------------------------------

    async def run(self, store: Store | None = None) -> None:
        """Write until cancelled (then a last flush is attempted); alarm counts too when
        `store` is given."""
        loop = asyncio.get_running_loop()
        next_alarms = loop.time()
        backoff = self.settings.flush_interval_s
        try:
            while True:
                if store is not None and loop.time() >= next_alarms:
                    next_alarms = loop.time() + self.settings.alarm_interval_s
                    try:
                        counts = await asyncio.to_thread(active_alarm_counts, store)
                        self.add(alarm_points(counts, utc_now()))
                    except Exception:
                        log.exception("telemetry: counting active alarms failed")
                ok = await self.flush()
                backoff = self.settings.flush_interval_s if ok else min(backoff * 2, MAX_BACKOFF_S)
                self._wake.clear()
                if not ok:  # an outage: wait out the backoff whatever arrives
                    await asyncio.sleep(backoff)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
        finally:
            self._client.close()  # type: ignore[no-untyped-call]

    async def flush(self) -> bool:
        """Write everything queued, in batches; False when a write failed (points kept)."""
        while self._queue:
            chunk = [
                self._queue.popleft() for _ in range(min(self.settings.batch_max, len(self._queue)))
            ]
            if not await asyncio.to_thread(self._write, chunk):
                self._queue.extendleft(reversed(chunk))
                self._trim()
                return False
        return True

    def _write(self, records: Sequence[Record]) -> bool:
        points = [r if isinstance(r, Point) else position_point(r) for r in records]
        try:
            self._write_api.write(
                bucket=self.settings.bucket,
                org=self.settings.org,
                record=points,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except Exception as err:  # network, HTTP status, anything: the outage path
            self._metrics.inc(FAILURES)
            self.failures_in_outage += 1
            if self.failing_since is None:
                self.failing_since = utc_now()
                log.warning(
                    "telemetry: writing to %s failed, keeping points and retrying: %s",
                    self.settings.url,
                    _short(err),
                )
            return False
        if self.failing_since is not None:
            log.warning(
                "telemetry: %s reachable again after %d failed writes since %s",
                self.settings.url,
                self.failures_in_outage,
                self.failing_since,
            )
            self.failing_since = None
            self.failures_in_outage = 0
        self._metrics.inc(POINTS, len(points), outcome="written")
        return True


def _short(err: Exception) -> Any:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
