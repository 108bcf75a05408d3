"""Payload models for every topic in docs/contract.md (pydantic v2, unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.ids import NodeId, RecordId, Timestamp
from contract.limits import (
    LARGEST_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES,
    LimitError,
    RejectReason,
    check_raw,
)
from devices import lifecycle
from devices.elock import profile

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, description="WGS-84 latitude, degrees")]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, description="WGS-84 longitude, degrees")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
#: Sequence numbers fit a signed 64-bit column.
Seq = Annotated[int, Field(ge=0, lt=2**63, description="per-node, strictly increasing")]

FixKind = Literal["none", "2d", "3d"]
#: The lock's states and events are the device library's words (the BondWatch lock
#: profile, docs/lock-profile.md), carried as they are: one vocabulary, defined there.
LockState = profile.LockState
LockEvent = profile.LockEventName
#: `outbox`: the node's durable outbox (degraded while it thins old positions, down while
#: it refuses them, ok when it has room again; docs/edge-outbox.md).
HealthDevice = Literal["gnss", "lock", "camera", "barrier", "ocr", "outbox"]
#: A device's health is the device library's word (`devices.lifecycle`).
HealthStatus = lifecycle.HealthStatus
AvailabilityState = Literal["online", "offline", "stopped"]
CommandOutcome = Literal["done", "refused", "expired", "bad_signature", "failed"]
LanePhase = Literal["idle", "reading", "waiting", "hold", "opening", "open", "closing"]
LaneSignal = Literal["red", "green"]


class ContractModel(BaseModel):
    """Base of every payload: unknown fields are an error, instances are immutable, and
    numbers are finite (NaN and Infinity, which JSON parsers accept, are refused)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=False, allow_inf_nan=False
    )

    def to_json(self) -> bytes:
        """The wire form: UTF-8 JSON, `None` fields left out."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class EdgeMessage(ContractModel):
    """Fields every edge→server payload carries."""

    node_id: NodeId = Field(description="the publishing gateway or gate controller")
    seq: Seq = Field(description="per-node sequence number, never reused across restarts")
    ts: Timestamp = Field(description="the event's own time (GNSS time for fixes)")


class Availability(EdgeMessage):
    state: AvailabilityState


class Position(EdgeMessage):
    lat: Latitude | None = None
    lon: Longitude | None = None
    alt_m: float | None = Field(default=None, ge=-1000.0, le=20000.0)
    speed_kmh: float | None = Field(default=None, ge=0.0, le=1000.0)
    course_deg: float | None = Field(default=None, ge=0.0, lt=360.0)
    fix: FixKind
    sats: int | None = Field(default=None, ge=0, le=255)
    hdop: float | None = Field(default=None, ge=0.0, le=99.99)
    systems: list[Annotated[str, Field(min_length=1, max_length=8)]] = Field(
        default_factory=list, max_length=8, description="constellations used, e.g. GPS, BDS"
    )
    replayed: bool = False

    @model_validator(mode="after")
    def _position_needs_fix(self) -> Self:
        if self.fix != "none" and (self.lat is None or self.lon is None):
            raise ValueError(f"fix {self.fix!r} needs both lat and lon")
        return self


class LockReport(EdgeMessage):
    lock_id: RecordId
    state: LockState
    event: LockEvent
    battery_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    lat: Latitude | None = None
    lon: Longitude | None = None
    replayed: bool = False
    counter: int | None = Field(
        default=None,
        ge=0,
        le=2**32 - 1,
        description="the lock's own report counter, one more for every report it sends "
        "(docs/lock-profile.md); absent from locks that do not sign their reports",
    )
    mac: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="the lock's MAC of this report (HMAC-SHA256 truncated to 16 bytes, "
        "lowercase hex) over lock id, counter, ts, state, event and battery, keyed by the "
        "per-lock secret the gateway does not hold (docs/lock-profile.md)",
    )


class Health(EdgeMessage):
    device: HealthDevice = Field(
        description="gnss, lock, camera, barrier, ocr, or outbox (the node's durable outbox)"
    )
    status: HealthStatus
    detail: str = Field(default="", max_length=1000)


class ContainerReading(ContractModel):
    number: Annotated[str, Field(min_length=1, max_length=16)]
    confidence: Fraction
    check_digit_ok: bool
    needs_review: bool
    iso_type: Annotated[str, Field(min_length=4, max_length=4)] | None = None


class PlateReading(ContractModel):
    text: Annotated[str, Field(min_length=1, max_length=16)]
    confidence: Fraction
    needs_review: bool


class Passage(EdgeMessage):
    passage_id: RecordId
    lane: RecordId
    direction: Literal["in", "out"]
    containers: list[ContainerReading] = Field(default_factory=list, max_length=8)
    plate: PlateReading | None
    images: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=32
    )
    replayed: bool = False


class LaneStatus(EdgeMessage):
    """What a gate lane is doing and what its traffic light shows (retained)."""

    lane: RecordId = Field(description="the lane's id, as in passages and commands")
    state: LanePhase = Field(
        description="idle: no truck; reading: cameras and OCR at work; waiting: passage "
        "published, decision due; hold: barrier stays down (hold, timeout, lost broker, "
        "failure); opening: a verified open is carried out; open: barrier open, truck "
        "passing; closing: the truck left, barrier closing"
    )
    passage_id: RecordId | None = Field(
        default=None, description="the lane's current passage (null before it is published)"
    )
    signal: LaneSignal = Field(
        description="the lane's traffic light: green only while the barrier is open for a "
        "verified open command, red otherwise"
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="why the lane is in this state"
    )

    @model_validator(mode="after")
    def _green_only_when_open(self) -> Self:
        if self.signal == "green" and self.state != "open":
            raise ValueError(f"signal green needs state open, not {self.state!r}")
        return self


class CommandResult(EdgeMessage):
    command_id: RecordId
    result: CommandOutcome
    detail: str = Field(default="", max_length=1000)


class SignedCommand(ContractModel):
    """Fields of every server→edge command. `signature` covers all the others."""

    node_id: NodeId = Field(description="the device the command is for; binds the signature")
    command_id: RecordId
    issued_at: Timestamp
    expires_at: Timestamp
    nonce: Annotated[str, Field(min_length=16, max_length=128)]
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="Ed25519 over the canonical JSON of the rest, base64",
    )

    @model_validator(mode="after")
    def _expiry_after_issue(self) -> Self:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


#: Most reasons a gate command carries, and the longest one (`fit_reasons` makes them fit).
MAX_REASONS: Final = 32
MAX_REASON_CHARS: Final = 300


def fit_reasons(reasons: list[str]) -> list[str]:
    """`reasons` within the bounds of `GateCommand.reasons`: each cut to
    `MAX_REASON_CHARS`, and past `MAX_REASONS` the rest summed up in the last one."""
    cut = [r if len(r) <= MAX_REASON_CHARS else r[: MAX_REASON_CHARS - 1] + "…" for r in reasons]
    if len(cut) > MAX_REASONS:
        cut = [*cut[: MAX_REASONS - 1], f"… and {len(cut) - MAX_REASONS + 1} more reasons"]
    return cut


class GateCommand(SignedCommand):
    passage_id: RecordId
    lane: RecordId
    action: Literal["open", "hold"]
    reasons: list[Annotated[str, Field(max_length=MAX_REASON_CHARS)]] = Field(
        default_factory=list, max_length=MAX_REASONS
    )


class TruckCommand(SignedCommand):
    action: Literal["unseal", "query"]
    lock_id: RecordId
    trip_id: RecordId
    lock_token: Annotated[str, Field(min_length=4, max_length=256)] | None = Field(
        default=None,
        description="unseal: the lock's own authorisation token (base64), computed by the "
        "server from the per-lock secret; the gateway passes it on and cannot forge it "
        "(docs/lock-profile.md)",
    )


#: Most open trips one vehicle's `declared` message lists (its newest: a vehicle has one
#: on the road and perhaps the next one declared).
MAX_DECLARED_TRIPS: Final = 8


class DeclaredTrip(ContractModel):
    """One open trip of a vehicle and the locks its declaration names."""

    trip_id: RecordId = Field(description="the trip (its declaration's id)")
    lock_ids: list[RecordId] = Field(
        min_length=1, max_length=8, description="the locks the declaration names"
    )
    started: bool = Field(
        default=False,
        description="the trip has started (`in_transit`, `arrived`, `held`): its locks are "
        "sealed on this truck, and a lock another truck's trip also names stays here",
    )


class Declared(ContractModel):
    """Server→edge (retained): a truck's open trips and their locks, so that a JT/T 808
    gateway maps a cellular lock listed without a node to the truck a declaration names
    it for (docs/jt808-gateway.md). No open trip: the retained message is cleared (an
    empty payload), never a `Declared` with no trips."""

    node_id: NodeId = Field(description="the truck (the declarations' `vehicle_id`)")
    ts: Timestamp = Field(description="when the server published this list")
    trips: list[DeclaredTrip] = Field(
        min_length=1,
        max_length=MAX_DECLARED_TRIPS,
        description="the truck's trips whose locks are not released (`declared`, "
        "`in_transit`, `arrived`, `held`): the started ones first, then the others newest "
        "first",
    )


#: Most seq ranges one acknowledgement carries; more go in several messages.
MAX_ACK_RANGES: Final = 512
SeqRange = Annotated[
    tuple[Seq, Seq], Field(description="[first, last]: every seq from first to last, inclusive")
]


class Ack(ContractModel):
    """Server→edge: which of the node's messages the server has durably stored.

    The explicit set of seqs (as ranges), not a "highest contiguous seq": a node's seqs
    have legitimate gaps (reserved for availability, thinned positions) that only the
    node can tell from a loss, so the server names what it holds and the node removes
    exactly that from its outbox (docs/edge-outbox.md#server-acknowledgement).
    """

    node_id: NodeId = Field(description="the node whose seqs are acknowledged")
    ts: Timestamp = Field(description="when the server published the acknowledgement")
    ranges: list[SeqRange] = Field(
        min_length=1,
        max_length=MAX_ACK_RANGES,
        description="ascending, non-overlapping [first, last] ranges of seqs committed to "
        "the server's store (a duplicate of a stored seq is acknowledged again)",
    )

    @model_validator(mode="after")
    def _ranges_ascending(self) -> Self:
        previous = -1
        for first, last in self.ranges:
            if first > last:
                raise ValueError(f"range [{first}, {last}] ends before it starts")
            if first <= previous:
                raise ValueError(f"range [{first}, {last}] overlaps or precedes the one before")
            previous = last
        return self


M = TypeVar("M", bound=ContractModel)

#: The model for each edge→server channel.
EDGE_PAYLOADS: Final[dict[str, type[EdgeMessage]]] = {
    "availability": Availability,
    "position": Position,
    "lock": LockReport,
    "health": Health,
    "passage": Passage,
    "lane": LaneStatus,
    "command/result": CommandResult,
}


class PayloadError(ValueError):
    """A payload that is not valid JSON or does not fit its model.

    `reason` says why, from `contract.limits.DECODE_REASONS`; `field` names the first
    offending field (dotted path), `errors` all of them.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        errors: list[str] | None = None,
        reason: RejectReason = "invalid",
    ):
        super().__init__(message)
        self.field = field
        self.errors = errors or [message]
        self.reason: RejectReason = reason


#: Errors named in a `PayloadError`'s message at most (a list of 500 bad items has 500).
_MAX_ERRORS_SHOWN = 5


def describe_validation_error(err: ValidationError) -> tuple[str | None, list[str]]:
    """(first field path, one line per error naming its field) for a pydantic error."""
    lines: list[str] = []
    first: str | None = None
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or None
        if first is None:
            first = path
        kind = item["type"]
        msg = "unknown field" if kind == "extra_forbidden" else item["msg"]
        lines.append(f"{path}: {msg}" if path else msg)
    return first, lines


def decode(
    model: type[M], raw: bytes | str | dict[str, Any], max_bytes: int = LARGEST_PAYLOAD_BYTES
) -> M:
    """Parse raw JSON (or an already-decoded dict) into `model`, or raise `PayloadError`.

    Raw JSON is first held to the contract's bounds (`contract.limits.check_raw`: at most
    `max_bytes`, UTF-8, nesting, digits), then parsed and validated in one pass by
    pydantic-core, whose parser refuses lone surrogates and control characters in strings.
    Nothing but `PayloadError` comes out of a refusal."""
    if isinstance(raw, dict):
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            raise _payload_error(err) from None
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        check_raw(data, max_bytes)
    except LimitError as err:
        raise PayloadError(str(err), reason=err.reason) from None
    try:
        return model.model_validate_json(data)
    except ValidationError as err:
        raise _payload_error(err) from None


def _payload_error(err: ValidationError) -> PayloadError:
    """The `PayloadError` of a pydantic refusal, with its reason."""
    items = err.errors()
    kinds = {item["type"] for item in items}
    if "json_invalid" in kinds:
        text = str(items[0].get("ctx", {}).get("error", items[0]["msg"]))
        reason: RejectReason = "too_deep" if "recursion" in text else "not_json"
        return PayloadError(f"not JSON: {text}"[:500], reason=reason)
    if kinds & {"model_type", "model_attributes_type"} and any(not i["loc"] for i in items):
        return PayloadError("payload must be a JSON object", reason="not_object")
    field, lines = describe_validation_error(err)
    shown = "; ".join(lines[:_MAX_ERRORS_SHOWN])
    if len(lines) > _MAX_ERRORS_SHOWN:
        shown += f"; and {len(lines) - _MAX_ERRORS_SHOWN} more"
    reason = "non_finite" if "finite_number" in kinds else "invalid"
    return PayloadError(shown, field=field, errors=lines, reason=reason)


def _edge_model(channel: str) -> type[EdgeMessage]:
    """The payload model of an edge→server `channel`."""
    try:
        return EDGE_PAYLOADS[channel]
    except KeyError:
        raise PayloadError(f"channel {channel!r} carries no edge payload") from None


def decode_stored(channel: str, raw: bytes | str) -> EdgeMessage:
    """An edge message as the server stored it, once `decode_edge` had accepted it:
    parsed and validated again (its model may have changed since), but not held to the
    byte bounds again, which it met when it came in (pydantic's own parser still refuses
    what is not JSON or nests too deep). The judge reads every stored position so; the
    bounds were a sixth of its time. Raises only `PayloadError`."""
    model = _edge_model(channel)
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise _payload_error(err) from None


def decode_edge(channel: str, raw: bytes | str, node_id: str | None = None) -> EdgeMessage:
    """Parse an edge→server payload of `channel`, held to that channel's byte limit;
    with `node_id` (the topic's), a payload naming another node is refused too
    (`node_mismatch`)."""
    message = decode(_edge_model(channel), raw, MAX_PAYLOAD_BYTES[channel])
    if node_id is not None and message.node_id != node_id:
        raise PayloadError(
            f"payload node_id {message.node_id!r} is not the topic's {node_id!r}",
            field="node_id",
            reason="node_mismatch",
        )
    return message
