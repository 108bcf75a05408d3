"""A hostile or broken terminal at the gateway's TCP port changes nothing but a counter:
fragments before authentication are refused, not held; an authentication code in any
bytes is a wrong code, not a crash; an impossible place in a lock report does not cost
the lock's event; reports whose times are impossible are not taken for each other; and a
command whose lock's connection closes while it waits is answered, not lost."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from contract import topics
from devices.elock.bodies import (
    Authentication,
    BatchLocation,
    PlatformResponse,
    RawBody,
    Transparent,
)
from devices.elock.codec import encode
from devices.elock.header import Header
from devtools.broker import MosquittoBroker
from edge.jt808.auth import auth_code, check_auth_code
from edge.jt808.reports import report_digest
from tests.edge.conftest import Collector
from tests.edge.jt808.conftest import LOCK_ID, LOCK_PHONE, GatewayFactory, Raw, lock_report
from tests.edge.jt808.test_gateway import publish, signed_command


async def test_fragments_before_authentication_are_refused_not_held(
    start_gateway: GatewayFactory,
) -> None:
    """Each fragment of a message from a connection that has not authenticated is refused
    as a message before authentication (the connection is closed at the limit), so a
    stranger cannot park fragments waiting for the rest of their message."""
    running = await start_gateway(limits={"unauthenticated_max": 3})
    raw = await Raw.connect(running.port)
    parts = [bytes([i]) * 900 for i in range(5)]  # five of a message never completed
    for i, part in enumerate(parts[:3]):
        header = Header(0x0704, LOCK_PHONE, 100 + i, packet_total=5, packet_index=i + 1)
        await raw.send(encode(header, RawBody(0x0704, part)))
        reply = (await raw.answer()).body
        assert isinstance(reply, PlatformResponse) and (reply.reply_serial, reply.result) == (
            100 + i,
            1,
        )
    assert await raw.closed()
    metrics = running.gateway.metrics
    assert metrics.refused["unauthenticated"] == 3
    assert metrics.closed["unauthenticated"] == 1


async def test_a_fragment_sent_with_the_authentication_in_one_write_is_held(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    """A terminal that sends its authentication and, without waiting for the answer, the
    fragments of a batch, in one write: the fragments are held and the batch stored."""
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    body = BatchLocation(0, tuple(lock_report(c) for c in range(30, 34))).encode(None)
    auth = raw.frame(Authentication(auth_code(running.gateway.secret, LOCK_PHONE)))
    fragments = raw.fragments(0x0704, body)
    await raw.send(auth + b"".join(fragments))
    answers = [(await raw.answer()).body for _ in range(1 + len(fragments))]
    assert all(isinstance(a, PlatformResponse) and a.result == 0 for a in answers), answers
    await collector.wait_for(lambda: len(collector.on("lock")) == 4)
    assert [p["counter"] for p in collector.on("lock")] == [30, 31, 32, 33]
    assert running.gateway.metrics.refused["unsupported"] == 0


async def test_an_authentication_code_in_any_bytes_is_a_wrong_code(
    start_gateway: GatewayFactory,
) -> None:
    running = await start_gateway()
    for code in (b"\xc4\xe3\xba\xc3" * 4, b"\xff\xfe\x80"):  # GBK text, and no text at all
        raw = await Raw.connect(running.port)
        await raw.send(raw.frame(RawBody(0x0102, code)))
        reply = (await raw.answer()).body
        assert isinstance(reply, PlatformResponse) and reply.result == 1
        assert await raw.closed()
    assert running.gateway.metrics.refused["bad_auth_code"] == 2
    assert check_auth_code(running.gateway.secret, LOCK_PHONE, "你好") is False


async def test_a_lock_report_at_an_impossible_place_keeps_its_event(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    """The place is not under the lock's MAC: one no receiver can give (latitude field
    0xFFFFFFFF) is left out, and the tamper event reaches the server as a valid message."""
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    await raw.send(raw.frame(lock_report(4, event="rope_cut", lat=4294.967295)))
    assert (await raw.answer()).body == PlatformResponse(raw.serial, 0x0200, 0)
    await collector.wait_for(lambda: len(collector.on("lock")) == 1)
    (lock,) = collector.on("lock")
    assert lock["event"] == "rope_cut" and lock["lock_id"] == LOCK_ID
    assert "lat" not in lock and "lon" not in lock


def test_reports_whose_times_are_impossible_are_told_apart_by_the_bytes_sent() -> None:
    report = lock_report(9)
    month_13, hex_digit = (
        dataclasses.replace(report, time=None, time_bcd=bytes.fromhex(t))
        for t in ("261301080000", "2a1201080000")
    )
    zeros = dataclasses.replace(report, time=None, time_bcd=bytes(6))
    digests = {report_digest(LOCK_PHONE, r) for r in (month_13, hex_digit, zeros)}
    assert len(digests) == 3
    again = dataclasses.replace(month_13, time_bcd=bytes.fromhex("261301080000"))
    assert report_digest(LOCK_PHONE, again) == report_digest(LOCK_PHONE, month_13)
    # a report with a real time keeps the digest it always had (resent ones stay duplicates)
    assert report.time == datetime(2026, 12, 1, 8, 0, 9, tzinfo=UTC)
    assert report_digest(LOCK_PHONE, report) == report_digest(
        LOCK_PHONE, dataclasses.replace(report, time_bcd=b"")
    )


async def test_a_command_whose_connection_closes_while_it_waits_is_answered_failed(
    start_gateway: GatewayFactory, collector: Collector, own_broker: MosquittoBroker
) -> None:
    running = await start_gateway(downlink={"ack_timeout_s": 10.0, "retries": 0})
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    command = signed_command(running, "query")
    await publish(own_broker, topics.command("truck", "TRK-CELL-1"), command)
    sent = await raw.answer(within=10)
    assert isinstance(sent.body, Transparent)  # the command reached the lock, which goes
    raw.writer.close()  # away without answering
    await collector.wait_for(lambda: len(collector.on("command/result")) == 1)
    (result,) = collector.on("command/result")
    assert result["command_id"] == json.loads(command)["command_id"]
    assert result["result"] == "failed"
    assert "closed" in result["detail"] and "whether the lock acted is unknown" in result["detail"]
