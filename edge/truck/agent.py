"""The truck agent: GNSS and e-lock drivers → reporting policy → outbox → MQTT.

Lock events are published at once, with the lock's report counter and MAC when it signs
its reports (the server checks them; this gateway holds no lock secret); fixes when the
reporting policy says so; device health on every change (`edge.health`: a lost device is
logged once, its return once).
Signed `unseal` and `query` commands are verified by `edge.commands` and carried out
through the e-lock driver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from pydantic import BaseModel

from contract import topics
from contract.fit import Groups, fit
from contract.ids import format_ts
from contract.log_throttle import LogThrottle, and_more
from contract.payloads import HealthStatus, LockReport, Position, SignedCommand, TruckCommand
from devices.elock.driver import ElockDriver, LockEvent
from devices.gnss.codec import GnssFix
from devices.gnss.driver import GnssDriver
from edge.commands import ExecOutcome, unseal_token
from edge.config import TruckConfig
from edge.node import NodePlumbing
from edge.outbox import OutboxError, OutboxFullError
from edge.truck.policy import Sample, should_report
from edge.truck.position import has_valid_fix, position_payload, sample_of

log = logging.getLogger(__name__)


#: What a truck's messages may lose rather than be refused whole.
POSITION_FIT: Groups = (("alt_m",), ("speed_kmh",), ("course_deg",), ("sats",), ("hdop",))
LOCK_FIT: Groups = (("lat", "lon"), ("battery_pct",))


class TruckAgent:
    def __init__(self, config: TruckConfig) -> None:
        self.config = config
        plumbing = NodePlumbing.build(config, "truck", self._execute)
        self.outbox, self.commands, self.link = plumbing.outbox, plumbing.commands, plumbing.link
        self.health = plumbing.health
        self.gnss = GnssDriver(config.gnss)
        #: a device's values left out of a message because the contract refuses them
        self.dropped_fields: Counter[str] = Counter()
        self._drop_log = LogThrottle()
        self.lock = ElockDriver(config.lock) if config.lock is not None else None
        self._last: Sample | None = None
        self._last_fix: GnssFix | None = None

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.link.run(), name="mqtt-link")
                group.create_task(self.gnss.run(self._on_fix, self._on_gnss_health), name="gnss")
                if self.lock is not None:
                    group.create_task(
                        self.lock.run(self._on_lock, self._on_lock_health), name="lock"
                    )
        finally:
            self.outbox.close()

    # ---- devices → outbox -----------------------------------------------------------

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            self.outbox.enqueue(topic, payload)
        except OutboxFullError as err:
            # Counted by the outbox (`refused_total`); the change to `full` was logged
            # and published as `outbox` health once, not once per refused position.
            log.debug("truck %s: %s not stored: %s", self.config.node_id, topic, err)
        except OutboxError as err:  # unusable: a bug or a broken file, said every time
            log.error("truck %s: %s not stored: %s", self.config.node_id, topic, err)

    async def _on_fix(self, fix: GnssFix) -> None:
        sample = sample_of(fix, time.monotonic())
        if has_valid_fix(fix):  # never a position the receiver called invalid
            self._last_fix = fix
        if not should_report(self.config.reporting, self._last, sample):
            return
        self._last = sample
        payload = self._fitted(Position, position_payload(self.config.node_id, fix), POSITION_FIT)
        self._publish(topics.position(self.config.node_id), payload)

    async def _on_lock(self, event: LockEvent) -> None:
        payload: dict[str, Any] = {
            "ts": format_ts(event.time),
            "lock_id": event.lock_id,
            "state": event.state,
            "event": event.event,
        }
        if event.battery_pct is not None:
            payload["battery_pct"] = event.battery_pct
        if event.counter is not None and event.mac is not None:
            # Passed through untouched: the server checks them with the lock's secret.
            payload["counter"], payload["mac"] = event.counter, event.mac.hex()
        lat, lon = event.lat, event.lon
        if (lat is None or lon is None) and self._last_fix is not None:
            lat, lon = self._last_fix.lat, self._last_fix.lon
        if lat is not None and lon is not None:
            payload["lat"], payload["lon"] = round(lat, 7), round(lon, 7)
        self._publish(topics.lock(self.config.node_id), self._fitted(LockReport, payload, LOCK_FIT))

    def _fitted(
        self, model: type[BaseModel], payload: dict[str, Any], groups: Groups
    ) -> dict[str, Any]:
        """`payload` without a device's value the contract would refuse (`contract.fit`),
        counted in `dropped_fields` and logged once a minute per field."""
        fitted, dropped = fit(model, payload, groups)
        for name in dropped:
            self.dropped_fields[name] += 1
            left_out = self._drop_log.admit(name)
            if left_out is not None:
                log.warning(
                    "truck %s: %s %s=%r is out of the contract's bounds: left out%s",
                    self.config.node_id,
                    model.__name__,
                    name,
                    payload.get(name),
                    and_more(left_out, self._drop_log.window_s),
                )
        return fitted

    async def _on_gnss_health(self, status: HealthStatus, detail: str) -> None:
        self.health.report("gnss", status, detail)

    async def _on_lock_health(self, status: HealthStatus, detail: str) -> None:
        self.health.report("lock", status, detail)

    # ---- verified commands → e-lock --------------------------------------------------

    async def _execute(self, command: SignedCommand) -> tuple[ExecOutcome, str]:
        assert isinstance(command, TruckCommand)
        if self.lock is None:
            return "refused", "this gateway has no e-lock configured"
        if command.action == "query":
            reply = await self.lock.query(command.lock_id)
        else:
            try:
                token = unseal_token(command)
            except ValueError as err:
                return "refused", str(err)
            reply = await self.lock.unseal(command.lock_id, command.trip_id, token)
        detail = reply.reason or f"lock {reply.lock_id} {reply.state}"
        return reply.result, detail
