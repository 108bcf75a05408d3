"""The gate decision as a pure function: a passage and the open trips at its gate →
open or hold, with every reason (DESIGN.md, "The trip", steps 2 and 4).

No I/O and no clock: the caller gathers `TripFacts` from the store and hands in the
passage time. The reasons are the officer's explanation, one line each; `code` names
each reason for filters and tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from contract.payloads import ContainerReading, PlateReading

Action = Literal["open", "hold"]
Phase = Literal["departure", "arrival"]

#: Alarm types that mean the seal did not hold (any status: cleared or not, it happened).
SEAL_ALARMS: Final = ("LOCK_OPENED", "LOCK_TAMPER", "LOCK_REPORT_FORGED")

#: The reason code of an arrival whose trip's messages are not all judged yet.
JUDGING: Final = "judging"

#: Every reason code `decide` may give.
REASON_CODES: Final = (
    "no_declaration",
    "ambiguous",
    "container_review",
    "check_digit",
    "container_undeclared",
    "container_missing",
    "plate_review",
    "plate_mismatch",
    "lock_not_sealed",
    "lock_unreported",
    "lock_unauthenticated",
    "seal_broken",
    "release_missing",
    "inspection_requested",
    "unresolved_alarm",
    "time_limit",
    "dishonest",
    "not_started",
    JUDGING,
    # a passage on an appointment (server/gates/appointments.py)
    "appointment_window",
    "appointment_used",
    "appointment_direction",
    "appointment_containers",
)

#: Reason codes of a reading that differs from its declaration (raising GATE_MISMATCH).
MISMATCH_CODES: Final = frozenset(
    {"no_declaration", "ambiguous", "container_undeclared", "container_missing", "plate_mismatch"}
)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """The declaration system's answer: a release (`release_id`) or `inspect`."""

    release_id: str | None
    released_at: datetime | None
    inspect: bool


@dataclass(frozen=True, slots=True)
class TripFacts:
    """What the decision needs to know about one open trip."""

    trip_id: str
    status: str
    vehicle_id: str
    plate: str
    containers: tuple[str, ...]
    lock_ids: tuple[str, ...]
    origin_gate: str
    destination_gate: str
    credit: str
    time_limit_min: int
    started_at: datetime | None = None
    #: lock id → state of its newest report (`sealed`, `open`, …); absent = never heard.
    lock_states: Mapping[str, str] = field(default_factory=dict)
    #: lock id → why its reports cannot be authenticated (no secret, or its newest report
    #: fails its MAC); such a lock has no entry in `lock_states`.
    unauthenticated_locks: Mapping[str, str] = field(default_factory=dict)
    #: types of every seal alarm the trip ever had (LOCK_OPENED, LOCK_TAMPER).
    seal_alarms: tuple[str, ...] = ()
    #: types of alarms of severity major or above not yet cleared and acknowledged.
    unresolved_alarms: tuple[str, ...] = ()
    release: ReleaseRecord | None = None
    #: why the judging of the trip's messages is not complete yet (the judge lags the
    #: store: `server.judge_marks`); None when it is, or the trip is not in transit.
    unjudged: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...]
    trip_id: str | None = None
    phase: Phase | None = None
    vehicle_id: str | None = None
    #: set when the passage raises GATE_MISMATCH: the alarm's detail.
    mismatch: str | None = None
    #: the appointment the passage was decided on (no declaration matched).
    appointment_id: str | None = None

    @property
    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]

    @property
    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons]


def normalise_plate(text: str) -> str:
    """Plates compare without separators, spaces or case: `粤A·D3K21` = `粤AD3K21`."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def phase_of(trip: TripFacts, gate_id: str) -> Phase | None:
    """Which end of `trip` a passage at `gate_id` is, given the trip's status."""
    if trip.status == "declared" and trip.origin_gate == gate_id:
        return "departure"
    # `released` trips are offered by the store only while their truck has not passed
    # the gate (released by a record after a hold): that truck presents itself again.
    if (
        trip.status in ("in_transit", "arrived", "held", "released")
        and trip.destination_gate == gate_id
    ):
        return "arrival"
    return None


def reliable(reading: ContainerReading) -> bool:
    """A reading the server may match on: its check digit holds and it is not flagged."""
    return reading.check_digit_ok and not reading.needs_review


def reading_reasons(containers: Sequence[ContainerReading]) -> list[Reason]:
    """Holds for the readings themselves: flagged for review, or a failing check digit."""
    out: list[Reason] = []
    if any(c.needs_review for c in containers):
        out.append(Reason("container_review", "container reading needs review"))
    for c in containers:
        if not c.check_digit_ok and not c.needs_review:
            out.append(Reason("check_digit", f"container number {c.number} fails its check digit"))
    return out


def _candidates(
    gate_id: str,
    good: set[str],
    plate: PlateReading | None,
    trips: Sequence[TripFacts],
) -> list[tuple[TripFacts, Phase]]:
    """Trips at this gate whose containers overlap the reliable readings; when no
    reliable container was read, those whose plate matches a reliable plate reading."""
    at_gate = [(t, p) for t in trips if (p := phase_of(t, gate_id)) is not None]
    by_container = [(t, p) for t, p in at_gate if good & set(t.containers)]
    if by_container or good:
        return by_container
    if plate is None or plate.needs_review:
        return []
    wanted = normalise_plate(plate.text)
    return [(t, p) for t, p in at_gate if normalise_plate(t.plate) == wanted]


def match_candidates(
    gate_id: str,
    containers: Sequence[ContainerReading],
    plate: PlateReading | None,
    trips: Sequence[TripFacts],
) -> list[TripFacts]:
    """The trips a passage could be (before any check): the ones to gather facts for."""
    good = {c.number for c in containers if reliable(c)}
    return [t for t, _ in _candidates(gate_id, good, plate, trips)]


def decide(
    gate_id: str,
    containers: Sequence[ContainerReading],
    plate: PlateReading | None,
    at: datetime,
    trips: Sequence[TripFacts],
) -> Decision:
    """Decide a passage at `gate_id` at time `at` against the open `trips`."""
    good = {c.number for c in containers if reliable(c)}
    unreliable = [c for c in containers if not reliable(c)]
    found = _candidates(gate_id, good, plate, trips)
    if not found:
        if unreliable:  # ask an officer rather than guess (and raise no alarm)
            return Decision("hold", tuple(reading_reasons(containers)))
        read = ", ".join(sorted(good)) or "none"
        plate_text = plate.text if plate is not None else "not read"
        text = f"no declaration at gate {gate_id} matches (containers {read}, plate {plate_text})"
        return Decision("hold", (Reason("no_declaration", text),), mismatch=text)
    if len(found) > 1:
        ids = ", ".join(sorted(t.trip_id for t, _ in found))
        text = f"passage matches several declarations: {ids}"
        return Decision("hold", (Reason("ambiguous", text),), mismatch=text)
    trip, phase = found[0]
    reasons, mismatch = _match_reasons(trip, good, unreliable, containers, plate)
    if phase == "departure":
        reasons += _departure_reasons(trip)
    else:
        reasons += _arrival_reasons(trip, at)
    action: Action = "hold" if reasons else "open"
    return Decision(action, tuple(reasons), trip.trip_id, phase, trip.vehicle_id, mismatch or None)


def _match_reasons(
    trip: TripFacts,
    good: set[str],
    unreliable: Sequence[ContainerReading],
    containers: Sequence[ContainerReading],
    plate: PlateReading | None,
) -> tuple[list[Reason], str]:
    """Reasons the passage differs from the trip's declaration, and the mismatch detail
    (empty when the differences are only readings an officer must review)."""
    reasons = reading_reasons(containers)
    differences: list[str] = []
    declared = set(trip.containers)
    for number in sorted(good - declared):
        text = f"container {number} is not declared on {trip.trip_id}"
        reasons.append(Reason("container_undeclared", text))
        differences.append(text)
    missing = sorted(declared - good)
    if missing and not unreliable:
        text = f"declared container(s) {', '.join(missing)} not seen"
        reasons.append(Reason("container_missing", text))
        differences.append(text)
    if plate is not None:
        if plate.needs_review:
            reasons.append(Reason("plate_review", "plate reading needs review"))
        elif normalise_plate(plate.text) != normalise_plate(trip.plate):
            text = f"plate {plate.text} is not the declared {trip.plate}"
            reasons.append(Reason("plate_mismatch", text))
            differences.append(text)
    return reasons, "; ".join(differences)


def _lock_reasons(trip: TripFacts) -> list[Reason]:
    out: list[Reason] = []
    for lock_id in trip.lock_ids:
        state = trip.lock_states.get(lock_id)
        why = trip.unauthenticated_locks.get(lock_id)
        if why is not None:
            text = f"lock {lock_id} cannot be authenticated: {why}"
            out.append(Reason("lock_unauthenticated", text))
        elif state is None:
            out.append(Reason("lock_unreported", f"lock {lock_id} has not reported"))
        elif state != "sealed":
            out.append(Reason("lock_not_sealed", f"lock {lock_id} is {state}, not sealed"))
    return out


def _departure_reasons(trip: TripFacts) -> list[Reason]:
    return _lock_reasons(trip)


def _arrival_reasons(trip: TripFacts, at: datetime) -> list[Reason]:
    reasons: list[Reason] = []
    release = trip.release
    if release is None:
        reasons.append(Reason("release_missing", "no electronic release record"))
    elif release.inspect:
        reasons.append(Reason("inspection_requested", "the declaration system asks for inspection"))
    if trip.seal_alarms:
        kinds = ", ".join(sorted(set(trip.seal_alarms)))
        reasons.append(Reason("seal_broken", f"the seal did not hold during the trip ({kinds})"))
    reasons += _lock_reasons(trip)
    for alarm_type in sorted(set(trip.unresolved_alarms)):
        reasons.append(Reason("unresolved_alarm", f"unresolved alarm {alarm_type}"))
    if trip.started_at is None:
        reasons.append(Reason("not_started", "the trip never started at its departure gate"))
    else:
        deadline = trip.started_at + timedelta(minutes=trip.time_limit_min)
        if at > deadline:
            late = (at - deadline).total_seconds() / 60
            reasons.append(
                Reason(
                    "time_limit",
                    f"time limit of {trip.time_limit_min} min exceeded by {late:.0f} min",
                )
            )
    if trip.unjudged is not None:
        text = f"the trip's alarms are not complete yet: {trip.unjudged}"
        reasons.append(Reason(JUDGING, text))
    if trip.credit == "dishonest":
        reasons.append(Reason("dishonest", "the enterprise is in the dishonest class (失信)"))
    return reasons
