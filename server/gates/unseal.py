"""The remote unseal: an officer authorises a trip's locks to unseal, only while its truck
is inside the destination site; one signed `TruckCommand` per lock, carrying a
single-use token made with the lock's secret (`server.gates.lock_tokens`).
`RemoteUnseal`, one part of `server.gates.service.GateService`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from contract.ids import format_ts, utc_now
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.lock_tokens import TokenCounter, lock_token_b64
from server.gates.passages import PassageDecisions
from server.store import StoreError

log = logging.getLogger(__name__)


class RemoteUnseal:
    """Unseal commands, over the passages' store, geography, signer and publisher."""

    def __init__(self, passages: PassageDecisions) -> None:
        self._passages = passages
        self.store = passages.store
        self.gates = passages.gates
        self.geography = passages.geography
        self.settings = passages.settings
        self.signer = passages.signer
        self.lock_secrets = passages.lock_secrets
        self._token_counter = TokenCounter()

    # ---- remote unseal ------------------------------------------------------------------

    def unseal(self, trip_id: str, actor: str, comment: str) -> list[dict[str, Any]]:
        """Authorise the trip's locks to unseal, only while the truck is inside the
        destination site; one signed `TruckCommand` per lock."""
        trip = self.store.get_trip(trip_id)
        if trip is None:
            raise StoreError("not_found", f"no trip {trip_id!r}", "trip_id")
        if trip.status in ("declared", "closed"):
            raise StoreError(
                "conflict", f"trip {trip_id} is {trip.status}: nothing to unseal", "status"
            )
        body = self.gates.declaration(trip.declaration_id) or {}
        gate = self.geography.gate(str(body.get("destination_gate")))
        site_id = gate.site_id
        now = utc_now()
        # Fresh by the server's receive time, never by the device's clock.
        max_age = self.settings.unseal_position_max_age_s
        fix = self.gates.last_fix(trip.vehicle_id, now - timedelta(seconds=max_age))
        if fix is None:
            raise StoreError(
                "conflict",
                f"no position of {trip.vehicle_id} was received in the last "
                f"{max_age:.0f} s: unseal refused",
            )
        if not self.geography.inside_site(
            site_id, fix["lon"], fix["lat"], self.settings.unseal_site_margin_m
        ):
            raise StoreError(
                "conflict",
                f"{trip.vehicle_id} is not inside destination site {site_id} "
                f"(last fix {fix['lat']:.6f}, {fix['lon']:.6f}): unseal refused",
            )
        lock_ids = [str(x) for x in body.get("lock_ids", [])]
        missing = [lid for lid in lock_ids if self.lock_secrets.get(lid) is None]
        if missing:
            raise StoreError("conflict", f"no unseal secret for lock(s) {', '.join(missing)}")
        token_expiry = now + timedelta(seconds=self.settings.unseal_token_ttl_s)
        commands = []
        for lock_id in lock_ids:  # SigningUnavailable propagates: nothing is written
            secret = self.lock_secrets.get(lock_id)
            assert secret is not None
            counter = self._token_counter.next()
            token = lock_token_b64(secret, lock_id, "unseal", trip_id, counter, token_expiry)
            commands.append(self.signer.unseal(trip.vehicle_id, lock_id, trip_id, token, now))
        with write_transaction(self.store.engine) as conn:
            for command in commands:
                self.gates.insert_command(conn, "truck", command, "unseal", actor, None, trip_id)
            audit_append(
                conn,
                actor,
                "trip.unseal",
                "trip",
                trip_id,
                {
                    "comment": comment,
                    "locks": lock_ids,
                    "site": site_id,
                    "fix": {"ts": format_ts(fix["ts"]), "lat": fix["lat"], "lon": fix["lon"]},
                    "command_ids": [c.command_id for c in commands],
                },
                now,
            )
        for command in commands:
            self._passages.publish("truck", command)
        log.info("trip %s: unseal of %s authorised by %s", trip_id, ", ".join(lock_ids), actor)
        return [
            {
                "command_id": c.command_id,
                "lock_id": c.lock_id,
                "expires_at": format_ts(c.expires_at),
            }
            for c in commands
        ]
