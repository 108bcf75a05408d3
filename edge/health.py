"""A node's health: one `health` message per change of a device's status, and a log line.

The log says once when a device is lost and once when it returns, with the node and
the device, however often the driver retries in between (STYLE.md, Logging): the
drivers report a status only when it changes, and the same status again is no news
here either. The outbox's own state is reported the same way, as device `outbox`.
"""

from __future__ import annotations

import logging
from typing import Final

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import HealthDevice, HealthStatus
from contract.topics import Kind
from edge.outbox import Outbox, OutboxError, OutboxState

log = logging.getLogger(__name__)

#: Devices on a cable or a network: `down` means lost, leaving `down` means returned.
PLUGGABLE: Final = frozenset({"gnss", "lock", "camera", "barrier"})
#: What the outbox's state means as a health status (docs/edge-outbox.md).
OUTBOX_STATUS: Final[dict[OutboxState, HealthStatus]] = {
    "ok": "ok",
    "thinning": "degraded",
    "full": "down",
}
MAX_DETAIL: Final = 1000


class HealthReporter:
    """Publishes each device's health through the outbox when it changes, and logs it."""

    def __init__(self, kind: Kind, node_id: str, outbox: Outbox, context: str) -> None:
        self.kind: Kind = kind
        self.node_id = node_id
        self.outbox = outbox
        #: Names the node in every line, e.g. `truck TRK-1` or `gate G-1 lane 3`.
        self.context = context
        self._topic = topics.health(kind, node_id)
        self._status: dict[HealthDevice, HealthStatus] = {}

    def status(self, device: HealthDevice) -> HealthStatus | None:
        """The status last reported for `device` (None before the first)."""
        return self._status.get(device)

    def report(self, device: HealthDevice, status: HealthStatus, detail: str) -> bool:
        """Publish `status` of `device` unless it is the one already reported."""
        previous = self._status.get(device)
        if previous == status:
            return False
        self._status[device] = status
        self._log(device, previous, status, detail)
        payload = {
            "ts": format_ts(utc_now()),
            "device": device,
            "status": status,
            "detail": detail[:MAX_DETAIL],
        }
        try:
            self.outbox.enqueue(self._topic, payload)
        except OutboxError as err:
            log.error("%s: health of %s (%s) not stored: %s", self.context, device, status, err)
        return True

    def on_outbox_state(self, state: OutboxState, reason: str) -> None:
        """The outbox's state listener: `thinning` is degraded, `full` is down."""
        stats = self.outbox.stats()
        detail = (
            f"{reason}; {stats.count} messages ({stats.sent} sent, awaiting the server's "
            f"acknowledgement), {stats.bytes} of {stats.max_bytes} bytes, "
            f"{stats.free_disk_bytes} bytes free on disk; so far {stats.thinned_total} "
            f"positions thinned, {stats.refused_total} messages refused"
        )
        self.report("outbox", OUTBOX_STATUS[state], detail)

    def _log(
        self,
        device: HealthDevice,
        previous: HealthStatus | None,
        status: HealthStatus,
        detail: str,
    ) -> None:
        if device in PLUGGABLE and status == "down":
            log.warning("%s: %s lost: %s", self.context, device, detail)
        elif device in PLUGGABLE and previous == "down":
            log.info("%s: %s returned, %s: %s", self.context, device, status, detail)
        elif status == "ok":
            log.info("%s: %s ok: %s", self.context, device, detail)
        else:
            log.warning("%s: %s %s: %s", self.context, device, status, detail)
