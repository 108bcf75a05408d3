"""Property tests of edge payload decoding (issue 17): whatever arrives on an edge channel,
`decode_edge` returns a model or raises `PayloadError` with a reason from the closed set —
never any other exception — and what it accepts is within the contract's bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.limits import DECODE_REASONS, MAX_DEPTH, MAX_NUMBER_DIGITS, MAX_PAYLOAD_BYTES
from contract.payloads import EDGE_PAYLOADS, EdgeMessage, PayloadError, decode_edge, decode_stored

TS = "2026-11-23T08:15:02.250Z"
NODE = "TRK-1"

#: One valid payload of every edge channel.
VALID: dict[str, dict[str, Any]] = {
    "availability": {"node_id": NODE, "seq": 1, "ts": TS, "state": "online"},
    "position": {
        "node_id": NODE,
        "seq": 2,
        "ts": TS,
        "lat": 23.1,
        "lon": 113.4,
        "alt_m": 12.5,
        "speed_kmh": 61.2,
        "course_deg": 271.0,
        "fix": "3d",
        "sats": 14,
        "hdop": 0.9,
        "systems": ["GPS", "BDS"],
    },
    "lock": {
        "node_id": NODE,
        "seq": 3,
        "ts": TS,
        "lock_id": "EL-1",
        "state": "sealed",
        "event": "status",
        "battery_pct": 80.0,
    },
    "health": {
        "node_id": NODE,
        "seq": 4,
        "ts": TS,
        "device": "gnss",
        "status": "ok",
        "detail": "x",
    },
    "passage": {
        "node_id": NODE,
        "seq": 5,
        "ts": TS,
        "passage_id": "P-1",
        "lane": "L1",
        "direction": "in",
        "containers": [
            {
                "number": "CSQU3054383",
                "confidence": 0.9,
                "check_digit_ok": True,
                "needs_review": False,
                "iso_type": "22G1",
            }
        ],
        "plate": {"text": "粤A·D3K21", "confidence": 0.8, "needs_review": False},
        "images": ["cam1/0001.jpg"],
    },
    "lane": {"node_id": NODE, "seq": 6, "ts": TS, "lane": "L1", "state": "idle", "signal": "red"},
    "command/result": {
        "node_id": NODE,
        "seq": 7,
        "ts": TS,
        "command_id": "C-1",
        "result": "done",
        "detail": "",
    },
}
CHANNELS = sorted(EDGE_PAYLOADS)

channels = st.sampled_from(CHANNELS)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)
node_ids = st.none() | st.sampled_from([NODE, "TRK-2", "trk-1", "GATE-1"])


def outcome(channel: str, raw: bytes | str, node_id: str | None = None) -> str:
    """ "ok" or the `PayloadError` reason; any other exception fails the test. The
    judge's `decode_stored` (no byte bounds) raises nothing else either, and reads what
    `decode_edge` accepts as the same message."""
    stored: EdgeMessage | PayloadError
    try:
        stored = decode_stored(channel, raw)
    except PayloadError as err:
        stored = err
    if isinstance(stored, PayloadError):
        assert stored.reason in DECODE_REASONS, stored.reason
    try:
        message = decode_edge(channel, raw, node_id=node_id)
    except PayloadError as err:
        refused = err
    else:
        check_accepted(channel, message, node_id)
        assert stored == message
        return "ok"
    assert refused.reason in DECODE_REASONS, refused.reason
    assert len(str(refused)) <= 2000  # a refusal's text stays short, whatever came in
    return refused.reason


def check_accepted(channel: str, message: EdgeMessage, node_id: str | None) -> None:
    """What is accepted is its channel's model, names the topic's node, serialises, and
    decodes back to itself within the channel's byte limit."""
    assert isinstance(message, EDGE_PAYLOADS[channel])
    if node_id is not None:
        assert message.node_id == node_id
    wire = message.to_json()
    assert len(wire) <= MAX_PAYLOAD_BYTES[channel]
    assert decode_edge(channel, wire) == message


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_valid_example_decodes(channel: str) -> None:
    assert outcome(channel, dumps(VALID[channel]), NODE) == "ok"


@PROPERTY
@given(channel=channels, raw=st.binary(max_size=3000), node_id=node_ids)
def test_arbitrary_bytes(channel: str, raw: bytes, node_id: str | None) -> None:
    outcome(channel, raw, node_id)


@PROPERTY
@given(channel=channels, value=json_values, node_id=node_ids)
def test_arbitrary_json_values(channel: str, value: Any, node_id: str | None) -> None:
    reason = outcome(channel, dumps(value), node_id)
    if not isinstance(value, dict):
        assert reason in {"not_object", "too_large", "too_deep", "number_too_long"}


@PROPERTY
@given(channel=channels, data=st.data(), value=json_values, drop=st.booleans(), node_id=node_ids)
def test_mutated_fields(
    channel: str, data: st.DataObject, value: Any, drop: bool, node_id: str | None
) -> None:
    """A valid payload with one field (known or not) replaced, added or removed."""
    body = dict(VALID[channel])
    target = data.draw(st.sampled_from(sorted(body)) | st.text(min_size=1, max_size=12))
    if drop:
        body.pop(target, None)
    else:
        body[target] = value
    outcome(channel, dumps(body), node_id)


@PROPERTY
@given(
    channel=channels,
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(["flip", "drop", "insert"]),
            st.integers(min_value=0, max_value=255),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_byte_mutations_of_valid_payloads(channel: str, edits: list[tuple[int, str, int]]):
    raw = bytearray(dumps(VALID[channel]))
    for where, how, byte in edits:
        at = where % max(len(raw), 1)
        if how == "flip" and raw:
            raw[at] ^= byte or 1
        elif how == "drop" and raw:
            del raw[at]
        else:
            raw.insert(at, byte)
    outcome(channel, bytes(raw), NODE)


@PROPERTY
@given(
    channel=channels,
    depth=st.integers(min_value=1, max_value=120_000),
    opener=st.sampled_from(["[", '{"a":']),
)
def test_deep_nesting(channel: str, depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = dict(VALID[channel])
    nested = opener * depth + "1" + closer * depth
    raw = dumps(body)[:-1] + b', "deep": ' + nested.encode() + b"}"
    reason = outcome(channel, raw, NODE)
    if depth + 1 > MAX_DEPTH:
        assert reason in {"too_deep", "too_large"}
    else:
        assert reason == "invalid"  # an unknown field, at a depth that is allowed


@PROPERTY
@given(
    channel=channels,
    digits=st.integers(min_value=1, max_value=6000),
    field=st.sampled_from(["seq", "lat", "extra"]),
)
def test_huge_numbers(channel: str, digits: int, field: str) -> None:
    body = {k: v for k, v in VALID[channel].items() if k != field}
    raw = dumps(body)[:-1] + f', "{field}": {"9" * digits}'.encode() + b"}"
    reason = outcome(channel, raw, NODE)
    if digits > MAX_NUMBER_DIGITS:
        assert reason in {"number_too_long", "too_large"}
    else:
        assert reason in {"ok", "invalid"}


@PROPERTY
@given(
    channel=st.sampled_from(["position", "lock", "passage"]),
    literal=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]),
)
def test_non_finite_numbers(channel: str, literal: str) -> None:
    field = {"position": "lat", "lock": "battery_pct", "passage": None}[channel]
    if field is None:
        raw = dumps(VALID[channel]).replace(
            b'"confidence": 0.9', f'"confidence": {literal}'.encode()
        )
    else:
        raw = dumps(VALID[channel]).replace(
            f'"{field}": {VALID[channel][field]}'.encode(), f'"{field}": {literal}'.encode()
        )
    assert literal.encode() in raw
    assert outcome(channel, raw, NODE) == "non_finite"


@PROPERTY
@given(
    count=st.integers(min_value=0, max_value=60_000),
    item=st.text(min_size=1, max_size=10),
)
def test_long_lists_and_strings(count: int, item: str) -> None:
    systems = dict(VALID["position"], systems=[item] * count)
    reason = outcome("position", dumps(systems), NODE)
    if count > 8 or (count and len(item) > 8):
        assert reason in {"invalid", "too_large"}
    detail = dict(VALID["health"], detail=item * count)
    reason = outcome("health", dumps(detail), NODE)
    if len(item * count) > 1000:
        assert reason in {"invalid", "too_large"}


@PROPERTY
@given(channel=channels, payload_node=st.sampled_from([NODE, "TRK-2", "x" * 64, "bad/id", ""]))
def test_wrong_node_ids(channel: str, payload_node: str) -> None:
    raw = dumps(dict(VALID[channel], node_id=payload_node))
    reason = outcome(channel, raw, NODE)
    if payload_node == NODE:
        assert reason == "ok"
    elif payload_node in ("bad/id", ""):
        assert reason == "invalid"
    else:
        assert reason == "node_mismatch"


def test_reasons_of_the_issue_examples() -> None:
    """The messages of issue 17, each refused for its own reason before parsing."""
    assert outcome("position", b"[" * 100_000 + b"]" * 100_000, NODE) == "too_large"
    assert outcome("health", b"[" * 1000 + b"]" * 1000, NODE) == "too_deep"
    seq = dumps(VALID["health"]).replace(b'"seq": 4', b'"seq": ' + b"7" * 5000)
    assert outcome("health", seq, NODE) == "number_too_long"
    assert outcome("position", b'{"node_id": "\xff"}', NODE) == "not_utf8"
    assert outcome("position", '{"x": "\ud800"}', NODE) == "not_utf8"
    assert outcome("position", b'{"node_id": "\\ud800"}', NODE) == "not_json"
    assert outcome("position", b"[1, 2]", NODE) == "not_object"
    # digits inside strings are text, not numbers
    long_text = dict(VALID["health"], detail="1" * 900)
    assert outcome("health", dumps(long_text), NODE) == "ok"
    brackets = dict(VALID["health"], detail="[" * 900)
    assert outcome("health", dumps(brackets), NODE) == "ok"
