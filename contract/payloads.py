"""Payload models for every topic in docs/contract.md (pydantic v2, unknown fields rejected)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.ids import NodeId, RecordId, Timestamp

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, description="WGS-84 latitude, degrees")]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, description="WGS-84 longitude, degrees")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
#: Sequence numbers fit a signed 64-bit column.
Seq = Annotated[int, Field(ge=0, lt=2**63, description="per-node, strictly increasing")]

FixKind = Literal["none", "2d", "3d"]
LockState = Literal["sealed", "unsealed", "open", "unknown"]
LockEvent = Literal[
    "status",
    "sealed",
    "unsealed",
    "shackle_opened",
    "rope_cut",
    "shell_tampered",
    "low_battery",
    "wrong_password",
    "unseal_refused_outside_area",
    "motor_stuck",
]
#: `outbox`: the node's durable outbox (degraded while it thins old positions, down while
#: it refuses them, ok when it has room again; docs/edge-outbox.md).
HealthDevice = Literal["gnss", "lock", "camera", "barrier", "ocr", "outbox"]
HealthStatus = Literal["ok", "degraded", "down"]
AvailabilityState = Literal["online", "offline", "stopped"]
CommandOutcome = Literal["done", "refused", "expired", "bad_signature", "failed"]
LanePhase = Literal["idle", "reading", "waiting", "hold", "opening", "open", "closing"]
LaneSignal = Literal["red", "green"]


class ContractModel(BaseModel):
    """Base of every payload: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

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
    systems: list[Annotated[str, Field(min_length=1, max_length=8)]] = Field(default_factory=list)
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
        default=None, description="Ed25519 over the canonical JSON of the rest, base64"
    )

    @model_validator(mode="after")
    def _expiry_after_issue(self) -> Self:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


class GateCommand(SignedCommand):
    passage_id: RecordId
    lane: RecordId
    action: Literal["open", "hold"]
    reasons: list[str] = Field(default_factory=list)


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

    `field` names the first offending field (dotted path), `errors` all of them.
    """

    def __init__(self, message: str, field: str | None = None, errors: list[str] | None = None):
        super().__init__(message)
        self.field = field
        self.errors = errors or [message]


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


def decode(model: type[M], raw: bytes | str | dict[str, Any]) -> M:
    """Parse raw JSON (or an already-decoded dict) into `model`, or raise `PayloadError`."""
    data: Any
    if isinstance(raw, dict):
        data = raw
    else:
        try:  # parsed and validated in one pass (pydantic-core): the common case
            return model.model_validate_json(raw)
        except ValidationError:
            pass  # parsed again below, for the same error messages as a dict gets
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PayloadError(f"not UTF-8 JSON: {err}") from err
    if not isinstance(data, dict):
        raise PayloadError(f"payload must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        field, lines = describe_validation_error(err)
        raise PayloadError("; ".join(lines), field=field, errors=lines) from err


def decode_edge(channel: str, raw: bytes | str) -> EdgeMessage:
    """Parse an edge→server payload of `channel`."""
    try:
        model = EDGE_PAYLOADS[channel]
    except KeyError:
        raise PayloadError(f"channel {channel!r} carries no edge payload") from None
    return decode(model, raw)
