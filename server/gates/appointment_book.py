"""Appointments in the store: booked by integration accounts and supervisors, listed,
cancelled, and used by the passage that they release — each change audited.

The decision on a passage is `server.gates.appointments.decide_appointment` (pure); the
gate service reads the appointments near a passage here (`near`) and marks the one that
released a vehicle used in the passage's own transaction (`mark_used`).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, select, update

from contract.ids import format_ts, utc_now
from devices.iso6346 import why_invalid
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.appointments import Appointment, AppointmentStatus, Direction
from server.gates.decide import normalise_plate
from server.geo import Geography
from server.store import StoreError, schema
from server.store.database import as_utc

log = logging.getLogger(__name__)

#: Appointments whose window ends or starts this far from a passage are read for it: a
#: booked vehicle a little early or late is held with its reason (`appointment_window`),
#: one days away is a vehicle without appointment.
NEAR: Final = timedelta(hours=24)
#: The longest window an appointment may have.
MAX_WINDOW: Final = timedelta(days=7)

_a = schema.appointments.c


@dataclass(frozen=True, slots=True)
class AppointmentQuery:
    gate: str | None = None
    status: AppointmentStatus | None = None
    plate: str | None = None
    #: appointments whose window ends at or after this time
    since: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NewAppointment:
    plate: str
    containers: tuple[str, ...]
    gate_id: str
    direction: Direction
    window_start: datetime
    window_end: datetime
    purpose: str
    enterprise: dict[str, str]
    appointment_id: str | None = None


class AppointmentBook:
    def __init__(self, engine: Engine, geography: Geography) -> None:
        self.engine = engine
        self.geography = geography

    # ---- booking, cancelling ----------------------------------------------------------

    def create(self, new: NewAppointment, actor: str) -> dict[str, Any]:
        """Book a vehicle, audited `appointment.create`; refused (nothing stored) when a
        container number fails its check digit, the gate is unknown or the window wrong."""
        self._check(new)
        now = utc_now()
        if new.window_end <= now:
            raise StoreError("invalid", "window_end is in the past", "window_end")
        appointment_id = new.appointment_id or f"APT-{uuid.uuid4().hex[:12].upper()}"
        row = {
            "appointment_id": appointment_id,
            "plate": new.plate,
            "plate_key": normalise_plate(new.plate),
            "containers": list(new.containers),
            "gate_id": new.gate_id,
            "direction": new.direction,
            "window_start": new.window_start,
            "window_end": new.window_end,
            "purpose": new.purpose,
            "enterprise": new.enterprise,
            "status": "active",
            "created_by": actor,
            "created_at": now,
        }
        with write_transaction(self.engine) as conn:
            taken = conn.execute(
                select(_a.appointment_id).where(_a.appointment_id == appointment_id)
            ).first()
            if taken is not None:
                raise StoreError(
                    "conflict", f"appointment {appointment_id} exists", "appointment_id"
                )
            conn.execute(schema.appointments.insert().values(**row))
            audit_append(
                conn,
                actor,
                "appointment.create",
                "appointment",
                appointment_id,
                {
                    "plate": new.plate,
                    "containers": list(new.containers),
                    "gate_id": new.gate_id,
                    "direction": new.direction,
                    "window_start": format_ts(new.window_start),
                    "window_end": format_ts(new.window_end),
                    "purpose": new.purpose,
                    "enterprise": new.enterprise,
                },
                now,
            )
        log.info(
            "appointment %s: %s at %s %s, %s to %s, by %s",
            appointment_id,
            new.plate,
            new.gate_id,
            new.direction,
            format_ts(new.window_start),
            format_ts(new.window_end),
            actor,
        )
        found = self.get(appointment_id)
        assert found is not None
        return found

    def _check(self, new: NewAppointment) -> None:
        for i, number in enumerate(new.containers):
            why = why_invalid(number)
            if why is not None:
                raise StoreError("invalid", why, f"containers.{i}")
        if len(set(new.containers)) != len(new.containers):
            raise StoreError("invalid", "a container is listed twice", "containers")
        if not normalise_plate(new.plate):
            raise StoreError("invalid", "the plate has no letters or digits", "plate")
        try:
            self.geography.gate(new.gate_id)
        except KeyError:
            raise StoreError("invalid", f"no gate {new.gate_id!r}", "gate_id") from None
        if new.window_end <= new.window_start:
            raise StoreError("invalid", "window_end must be after window_start", "window_end")
        if new.window_end - new.window_start > MAX_WINDOW:
            raise StoreError(
                "invalid", f"a window is at most {MAX_WINDOW.days} days long", "window_end"
            )

    def cancel(self, appointment_id: str, comment: str, actor: str) -> dict[str, Any]:
        """Cancel an active appointment, audited `appointment.cancel`."""
        comment = comment.strip()
        if not comment:
            raise StoreError("invalid", "a cancellation needs a comment", "comment")
        now = utc_now()
        with write_transaction(self.engine) as conn:
            status = conn.execute(
                select(_a.status).where(_a.appointment_id == appointment_id)
            ).scalar_one_or_none()
            if status is None:
                raise StoreError(
                    "not_found", f"no appointment {appointment_id!r}", "appointment_id"
                )
            if status != "active":
                raise StoreError(
                    "conflict", f"appointment {appointment_id} is {status}", "appointment_id"
                )
            conn.execute(
                update(schema.appointments)
                .where(_a.appointment_id == appointment_id)
                .values(
                    status="cancelled",
                    cancelled_by=actor,
                    cancelled_at=now,
                    cancel_comment=comment,
                )
            )
            audit_append(
                conn,
                actor,
                "appointment.cancel",
                "appointment",
                appointment_id,
                {"comment": comment, "previous": status},
                now,
            )
        log.info("appointment %s cancelled by %s: %s", appointment_id, actor, comment)
        found = self.get(appointment_id)
        assert found is not None
        return found

    # ---- reads ------------------------------------------------------------------------

    def get(self, appointment_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.appointments).where(_a.appointment_id == appointment_id)
            ).first()
        return _out(row._mapping) if row is not None else None

    def find(self, query: AppointmentQuery) -> list[dict[str, Any]]:
        stmt = select(schema.appointments)
        if query.gate is not None:
            stmt = stmt.where(_a.gate_id == query.gate)
        if query.status is not None:
            stmt = stmt.where(_a.status == query.status)
        if query.plate is not None:
            stmt = stmt.where(_a.plate_key == normalise_plate(query.plate))
        if query.since is not None:
            stmt = stmt.where(_a.window_end >= query.since)
        stmt = (
            stmt.order_by(_a.window_start.desc(), _a.appointment_id)
            .limit(query.limit)
            .offset(query.offset)
        )
        with self.engine.connect() as conn:
            return [_out(r._mapping) for r in conn.execute(stmt)]

    # ---- for the gate decision ----------------------------------------------------------

    @staticmethod
    def near(conn: Connection, gate_id: str, plate: str | None, at: datetime) -> list[Appointment]:
        """The appointments at `gate_id` not cancelled whose window lies within `NEAR` of
        `at` — of the plate when it was read reliably (`plate`), else all of them."""
        stmt = select(schema.appointments).where(
            _a.gate_id == gate_id,
            _a.status != "cancelled",
            _a.window_end >= at - NEAR,
            _a.window_start <= at + NEAR,
        )
        if plate is not None:
            stmt = stmt.where(_a.plate_key == normalise_plate(plate))
        return [_appointment(r._mapping) for r in conn.execute(stmt)]

    @staticmethod
    def mark_used(conn: Connection, appointment_id: str, passage_id: str, at: datetime) -> bool:
        """The appointment released passage `passage_id`: used (once; False if it was not
        active any more)."""
        changed = conn.execute(
            update(schema.appointments)
            .where(_a.appointment_id == appointment_id, _a.status == "active")
            .values(status="used", used_by_passage=passage_id, used_at=at)
        ).rowcount
        return bool(changed)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _appointment(row: Any) -> Appointment:
    start, end = as_utc(row["window_start"]), as_utc(row["window_end"])
    assert start is not None and end is not None
    return Appointment(
        appointment_id=row["appointment_id"],
        plate=row["plate"],
        containers=tuple(_json(row["containers"])),
        gate_id=row["gate_id"],
        direction=row["direction"],
        window_start=start,
        window_end=end,
        status=row["status"],
        used_by_passage=row["used_by_passage"],
    )


def _out(row: Any) -> dict[str, Any]:
    out = {k: v for k, v in dict(row).items() if k != "plate_key"}
    for key in ("window_start", "window_end", "created_at", "cancelled_at", "used_at"):
        out[key] = as_utc(out[key])
    out["containers"] = _json(out["containers"])
    out["enterprise"] = _json(out["enterprise"])
    end = out["window_end"]
    out["expired"] = out["status"] == "active" and end is not None and end < utc_now()
    return out
