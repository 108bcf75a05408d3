import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from contract.ids import format_ts, parse_ts
from contract.payloads import (
    EDGE_PAYLOADS,
    LaneStatus,
    LockReport,
    Passage,
    PayloadError,
    Position,
    decode,
    decode_edge,
)

POSITION = {
    "node_id": "T1",
    "seq": 42,
    "ts": "2026-11-23T08:15:02.250Z",
    "lat": 23.1,
    "lon": 113.4,
    "alt_m": 12.5,
    "speed_kmh": 61.2,
    "course_deg": 271.0,
    "fix": "3d",
    "sats": 14,
    "hdop": 0.9,
    "systems": ["GPS", "BDS"],
}


def test_timestamp_format_is_rfc3339_ms_utc():
    moment = datetime(2026, 11, 23, 8, 15, 2, 250999, tzinfo=UTC)
    assert format_ts(moment) == "2026-11-23T08:15:02.250Z"
    assert parse_ts("2026-11-23T16:15:02.250+08:00") == datetime(
        2026, 11, 23, 8, 15, 2, 250000, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="time zone"):
        parse_ts("2026-11-23T08:15:02")


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 23, 8, 15, 2, tzinfo=UTC), "2026-11-23T08:15:02.000Z"),
        (datetime(2026, 11, 23, 8, 15, 2, 999_999, tzinfo=UTC), "2026-11-23T08:15:02.999Z"),
        (  # another offset: the same instant in UTC
            datetime(2026, 11, 24, 0, 15, 2, 1000, tzinfo=timezone(timedelta(hours=8))),
            "2026-11-23T16:15:02.001Z",
        ),
        (datetime(2026, 12, 31, 23, 59, 59, 500, tzinfo=UTC), "2026-12-31T23:59:59.000Z"),
    ],
)
def test_timestamps_are_written_in_one_form(moment: datetime, text: str) -> None:
    assert format_ts(moment) == text
    assert parse_ts(text) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    with pytest.raises(ValueError, match="time zone"):
        format_ts(moment.replace(tzinfo=None))


def test_position_round_trip():
    msg = decode(Position, json.dumps(POSITION))
    assert msg.lat == 23.1 and msg.replayed is False
    wire = json.loads(msg.to_json())
    assert wire["ts"] == "2026-11-23T08:15:02.250Z"
    assert decode(Position, msg.to_json()) == msg


def test_offset_time_normalised_to_utc():
    msg = decode(Position, {**POSITION, "ts": "2026-11-23T16:15:02.250+08:00"})
    assert json.loads(msg.to_json())["ts"] == "2026-11-23T08:15:02.250Z"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": 91.0}, "lat"),
        ({"lon": -180.5}, "lon"),
        ({"seq": -1}, "seq"),
        ({"fix": "4d"}, "fix"),
        ({"hdop": -0.1}, "hdop"),
        ({"course_deg": 360.0}, "course_deg"),
        ({"node_id": "T/1"}, "node_id"),
        ({"colour": "red"}, "colour"),
        ({"ts": "2026-11-23T08:15:02"}, "ts"),
    ],
)
def test_bad_fields_named(change, field):
    with pytest.raises(PayloadError) as info:
        decode(Position, {**POSITION, **change})
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("missing", ["node_id", "seq", "ts", "fix"])
def test_missing_fields_named(missing):
    data = {k: v for k, v in POSITION.items() if k != missing}
    with pytest.raises(PayloadError) as info:
        decode(Position, data)
    assert info.value.field == missing


def test_fix_needs_coordinates_but_no_fix_does_not():
    with pytest.raises(PayloadError, match="lat and lon"):
        decode(Position, {k: v for k, v in POSITION.items() if k != "lat"})
    lost = decode(Position, {"node_id": "T1", "seq": 1, "ts": POSITION["ts"], "fix": "none"})
    assert lost.lat is None


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b"\xff\xfe", b"null"])
def test_not_json_objects_rejected(raw):
    with pytest.raises(PayloadError):
        decode(Position, raw)


def test_lock_and_passage_models():
    lock = decode(
        LockReport,
        {
            "node_id": "T1",
            "seq": 3,
            "ts": POSITION["ts"],
            "lock_id": "L1",
            "state": "sealed",
            "event": "rope_cut",
            "battery_pct": 80,
        },
    )
    assert lock.event == "rope_cut"
    with pytest.raises(PayloadError) as info:
        decode(LockReport, {**lock.model_dump(mode="json"), "event": "exploded"})
    assert info.value.field == "event"
    passage = decode(
        Passage,
        {
            "node_id": "G1",
            "seq": 1,
            "ts": POSITION["ts"],
            "passage_id": "p1",
            "lane": "1",
            "direction": "in",
            "plate": {"text": "粤B12345", "confidence": 0.93, "needs_review": False},
            "containers": [
                {
                    "number": "CSQU3054383",
                    "confidence": 0.97,
                    "check_digit_ok": True,
                    "needs_review": False,
                    "iso_type": "22G1",
                }
            ],
            "images": ["img/1.jpg"],
        },
    )
    assert passage.plate is not None and passage.plate.text == "粤B12345"
    assert json.loads(passage.to_json())["plate"]["text"] == "粤B12345"
    with pytest.raises(PayloadError) as info:
        decode(Passage, {**json.loads(passage.to_json()), "containers": [{"number": "X"}]})
    assert info.value.field is not None and info.value.field.startswith("containers.0")


def test_every_edge_channel_has_a_model():
    assert set(EDGE_PAYLOADS) == {
        "availability",
        "position",
        "lock",
        "health",
        "passage",
        "lane",
        "command/result",
    }
    with pytest.raises(PayloadError, match="channel"):
        decode_edge("command", b"{}")


LANE = {
    "node_id": "G-BAIYUN-1",
    "seq": 12,
    "ts": "2026-11-23T08:15:02.250Z",
    "lane": "L1",
    "state": "open",
    "passage_id": "P-G-BAIYUN-1-L1-20261123T081502-a1b2c3",
    "signal": "green",
    "reason": "passage released",
}


def test_lane_status_round_trips():
    lane = decode_edge("lane", json.dumps(LANE).encode())
    assert isinstance(lane, LaneStatus)
    assert (lane.state, lane.signal, lane.passage_id) == ("open", "green", LANE["passage_id"])
    assert json.loads(lane.to_json()) == LANE
    idle = decode_edge(
        "lane", json.dumps({**LANE, "state": "idle", "signal": "red", "passage_id": None})
    )
    assert isinstance(idle, LaneStatus) and idle.passage_id is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"signal": "green", "state": "waiting"}, None),  # green only while open
        ({"signal": "amber"}, "signal"),
        ({"state": "parked"}, "state"),
        ({"lane": ""}, "lane"),
        ({"colour": "red"}, "colour"),
        ({"reason": "x" * 1001}, "reason"),
    ],
)
def test_bad_lane_status_is_refused_with_its_field(change, field):
    with pytest.raises(PayloadError) as caught:
        decode_edge("lane", json.dumps({**LANE, **change}))
    assert caught.value.field == field
