"""A passage on an appointment (网上预约, "车辆自助进出区"), as a pure function.

A vehicle booked in advance — plate, optional containers, gate, direction and a time
window — is released at the gate without a transit declaration when the passage
matches its active appointment. `decide_appointment` is asked only when no declaration
matched (`server.gates.decide`: a declaration always comes first). No I/O, no clock.

Which appointment a passage is: those at the gate that are not cancelled, by a reliable
plate reading; when the plate was not read reliably, by the reliable container readings.
Of several (the same vehicle booked twice in a day), an active one whose window holds
the passage time, else the active one nearest in time, else one already used.

What holds it, every reason listed (docs/gates.md, "Appointments"):

| code | when | GATE_MISMATCH |
|---|---|---|
| `container_review`, `check_digit`, `plate_review` | a reading to review | no |
| `plate_mismatch` | matched by containers, a reliable plate differs | yes |
| `appointment_containers` | containers as read differ from the booked ones | yes |
| `appointment_direction` | booked to enter, the vehicle leaves (or the reverse) | no |
| `appointment_window` | the passage is before or after the window | no |
| `appointment_used` | the appointment released a vehicle before | no |

An appointment without containers is for a vehicle without any: a container read holds.

A vehicle that is known and booked but early, late, or back a second time is a matter
of the booking, not a discrepancy in the goods: the officer sees the hold and its reasons
without an alarm. Containers other than the booked ones are a discrepancy, as on a
declaration, and raise GATE_MISMATCH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contract.ids import format_ts
from contract.payloads import ContainerReading, PlateReading
from server.gates.decide import (
    Action,
    Decision,
    Reason,
    normalise_plate,
    reading_reasons,
    reliable,
)

Direction = Literal["in", "out"]
AppointmentStatus = Literal["active", "used", "cancelled"]
STATUSES: tuple[AppointmentStatus, ...] = ("active", "used", "cancelled")


@dataclass(frozen=True, slots=True)
class Appointment:
    appointment_id: str
    plate: str
    containers: tuple[str, ...]
    gate_id: str
    direction: Direction
    window_start: datetime
    window_end: datetime
    status: AppointmentStatus = "active"
    used_by_passage: str | None = None


def _candidates(
    gate_id: str,
    good: set[str],
    plate: PlateReading | None,
    appointments: Sequence[Appointment],
) -> list[Appointment]:
    at_gate = [a for a in appointments if a.gate_id == gate_id and a.status != "cancelled"]
    if plate is not None and not plate.needs_review:
        wanted = normalise_plate(plate.text)
        return [a for a in at_gate if normalise_plate(a.plate) == wanted]
    return [a for a in at_gate if good & set(a.containers)]


def _choose(found: Sequence[Appointment], at: datetime) -> Appointment:
    def distance(a: Appointment) -> float:
        if a.window_start <= at <= a.window_end:
            return 0.0
        edge = a.window_start if at < a.window_start else a.window_end
        return abs((at - edge).total_seconds())

    return min(found, key=lambda a: (a.status != "active", distance(a), a.appointment_id))


def decide_appointment(
    gate_id: str,
    direction: Direction,
    containers: Sequence[ContainerReading],
    plate: PlateReading | None,
    at: datetime,
    appointments: Sequence[Appointment],
) -> Decision | None:
    """The decision on the vehicle's appointment at `gate_id`; None when the passage is
    no booked vehicle."""
    good = {c.number for c in containers if reliable(c)}
    found = _candidates(gate_id, good, plate, appointments)
    if not found:
        return None
    booking = _choose(found, at)
    reasons = reading_reasons(containers)
    differences: list[str] = []
    if plate is not None and plate.needs_review:
        reasons.append(Reason("plate_review", "plate reading needs review"))
    elif plate is not None and normalise_plate(plate.text) != normalise_plate(booking.plate):
        text = f"plate {plate.text} is not the booked {booking.plate}"
        reasons.append(Reason("plate_mismatch", text))
        differences.append(text)
    booked = set(booking.containers)
    unreliable = any(not reliable(c) for c in containers)
    for number in sorted(good - booked):
        text = f"container {number} is not on appointment {booking.appointment_id}"
        reasons.append(Reason("appointment_containers", text))
        differences.append(text)
    missing = sorted(booked - good)
    if missing and not unreliable:
        text = f"booked container(s) {', '.join(missing)} not seen"
        reasons.append(Reason("appointment_containers", text))
        differences.append(text)
    if booking.direction != direction:
        text = (
            f"appointment {booking.appointment_id} is for direction {booking.direction}, "
            f"the vehicle passes {direction}"
        )
        reasons.append(Reason("appointment_direction", text))
    if not booking.window_start <= at <= booking.window_end:
        when = "before" if at < booking.window_start else "after"
        text = (
            f"passage at {format_ts(at)} is {when} the window of appointment "
            f"{booking.appointment_id} ({format_ts(booking.window_start)} to "
            f"{format_ts(booking.window_end)})"
        )
        reasons.append(Reason("appointment_window", text))
    if booking.status == "used":
        text = (
            f"appointment {booking.appointment_id} was already used "
            f"(passage {booking.used_by_passage})"
        )
        reasons.append(Reason("appointment_used", text))
    action: Action = "hold" if reasons else "open"
    mismatch = "; ".join(differences) or None
    if mismatch is not None:
        mismatch = f"appointment {booking.appointment_id}: {mismatch}"
    return Decision(
        action,
        tuple(reasons),
        vehicle_id=booking.plate,
        mismatch=mismatch,
        appointment_id=booking.appointment_id,
    )
