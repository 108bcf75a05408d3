"""`bondwatch-jt808` against a real Mosquitto: devices in, contract messages out."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from contract import topics
from contract.ids import utc_now
from contract.payloads import TruckCommand
from contract.pki import create_ca, issue_broker
from contract.signing import load_private_key, new_command_id, new_nonce, sign
from devices.elock import profile
from devices.elock.block import BondWatchBlock, CommandResult
from devices.elock.bodies import (
    Authentication,
    BatchLocation,
    Body,
    Heartbeat,
    PlatformResponse,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
)
from devices.elock.header import Header
from devtools.broker import PROJECT_ROOT, MosquittoBroker
from edge.jt808.auth import auth_code
from edge.jt808.store import GatewayStore, Item, StoreFullError
from firmware_stubs.jt808_terminal import Jt808Terminal
from tests.edge.conftest import Collector, StoringServer
from tests.edge.jt808.conftest import (
    LOCK2_ID,
    LOCK2_PHONE,
    LOCK_ID,
    LOCK_PHONE,
    NODE,
    NODE2,
    TRACKER_PHONE,
    GatewayFactory,
    Raw,
    RunningGateway,
    lock_report,
    wait_until,
)


async def test_lock_reports_reach_the_server_in_seq_order_and_leave_the_store(
    start_gateway: GatewayFactory, collector: Collector, storing_server: StoringServer
) -> None:
    running = await start_gateway()
    terminal = running.terminal()
    task = asyncio.create_task(terminal.run())
    try:
        await asyncio.wait_for(terminal.online.wait(), 10)
        for counter in range(1, 6):
            terminal.report(lock_report(counter))
        await wait_until(lambda: terminal.answered == 5 and not terminal.unanswered)
        await collector.wait_for(lambda: len(collector.on("lock")) == 5)
        await wait_until(lambda: running.gateway.outbox.counts()[0] == 0, 20)
    finally:
        task.cancel()
    locks = collector.on("lock")
    assert [p["counter"] for p in locks] == [1, 2, 3, 4, 5]
    assert {p["lock_id"] for p in locks} == {LOCK_ID}
    assert locks[0]["mac"] == (1).to_bytes(16, "big").hex()
    assert locks[0]["state"] == "sealed" and locks[0]["event"] == "status"
    positions = collector.on("position")
    assert [p["ts"] for p in positions] == [f"2026-12-01T08:00:0{i}.000Z" for i in range(1, 6)]
    assert positions[0]["lat"] == 22.5 and positions[0]["fix"] == "3d"
    assert positions[0]["systems"] == ["BDS"] and positions[0]["sats"] == 9
    online = [p for t, p, retained in collector.messages if t.endswith("/availability")]
    assert online[0]["state"] == "online" and online[0]["node_id"] == NODE
    # One seq space per node, strictly increasing, nothing missing: all stored by the server.
    seqs = [
        p["seq"]
        for t, p, _ in collector.messages
        if topics.parse(t).node_id == NODE and topics.parse(t).channel != "ack"
    ]
    assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1))
    assert storing_server.seqs(NODE) == seqs


# ---- raw devices: refusals, bad frames, limits ---------------------------------------------


async def test_an_unknown_terminal_is_refused_and_disconnected(
    start_gateway: GatewayFactory,
) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    registration = Registration(44, 300, "X", "Y", "Z1", 0, "")
    await raw.send(raw.frame(registration, "13999999999"))
    reply = (await raw.answer()).body
    assert isinstance(reply, RegistrationResponse) and reply.result == 4
    assert await raw.closed()
    # A registered phone with another terminal id is refused too.
    raw = await Raw.connect(running.port)
    await raw.send(raw.frame(Registration(44, 300, "X", "Y", "OTHER", 0, "")))
    reply = (await raw.answer()).body
    assert isinstance(reply, RegistrationResponse) and reply.result == 4
    assert await raw.closed()
    refused = running.gateway.metrics.refused
    assert refused["unknown_terminal"] == 1 and refused["wrong_terminal_id"] == 1


async def test_a_wrong_authentication_code_is_refused(start_gateway: GatewayFactory) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.send(raw.frame(Authentication("0" * 20)))
    reply = (await raw.answer()).body
    assert isinstance(reply, PlatformResponse) and reply.result == 1
    assert await raw.closed()
    assert running.gateway.metrics.refused["bad_auth_code"] == 1
    # Another terminal's (valid) code does not open this one.
    raw = await Raw.connect(running.port)
    await raw.send(raw.frame(Authentication(auth_code(running.gateway.secret, LOCK2_PHONE))))
    assert (await raw.answer()).body == PlatformResponse(raw.serial, 0x0102, 1)


async def test_reports_before_authentication_are_refused_and_not_stored(
    start_gateway: GatewayFactory,
) -> None:
    running = await start_gateway(limits={"unauthenticated_max": 2})
    raw = await Raw.connect(running.port)
    for _ in range(2):
        await raw.send(raw.frame(lock_report(1)))
        reply = (await raw.answer()).body
        assert isinstance(reply, PlatformResponse) and reply.result == 1
    assert await raw.closed()
    assert running.gateway.outbox.last_seq(NODE) == 0
    assert running.gateway.metrics.refused["unauthenticated"] == 2


async def test_bad_frames_are_answered_counted_and_never_break_the_connection(
    start_gateway: GatewayFactory,
) -> None:
    running = await start_gateway(limits={"bad_frames_max": 5})
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    good = raw.frame(lock_report(1))
    corrupt = good[:-2] + bytes([good[-2] ^ 0x01]) + good[-1:]  # wrong check code
    await raw.send(corrupt)
    reply = (await raw.answer()).body
    assert reply == PlatformResponse(raw.serial, 0x0200, 2)  # bad message: send it again
    await raw.send(b"\x00\x13GARBAGE\x7d" + good)  # noise, then the good frame
    reply = (await raw.answer()).body
    assert reply == PlatformResponse(raw.serial, 0x0200, 0)
    bad = running.gateway.metrics.bad_frames
    # The noise ends at the good frame's opening flag: one more bad frame, not answered.
    assert bad["bad_check_code"] == 1 and sum(bad.values()) == 2
    assert running.gateway.outbox.last_seq(NODE) > 0
    # A run of bad frames closes the connection.
    await raw.send(b"\x7e\x01\x02\x7e" * 6)
    assert await raw.closed()
    assert running.gateway.metrics.closed["garbage"] == 1


async def test_slow_loris_and_idle_connections_are_closed(start_gateway: GatewayFactory) -> None:
    running = await start_gateway(limits={"auth_timeout_s": 0.6, "idle_timeout_s": 0.6})
    loris = await Raw.connect(running.port)
    frame = loris.frame(Authentication(auth_code(running.gateway.secret, LOCK_PHONE)))
    started = asyncio.get_running_loop().time()

    async def trickle() -> None:
        for byte in frame[:-1]:  # never the closing flag
            loris.writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    trickler = asyncio.create_task(trickle())
    assert await loris.closed()
    trickler.cancel()
    assert asyncio.get_running_loop().time() - started < 3.0  # 0.6 s and the reaper's turn
    idle = await Raw.connect(running.port)
    await idle.login(running.gateway)
    assert await idle.closed()  # no heartbeat: half-open
    closed = running.gateway.metrics.closed
    assert closed["auth_timeout"] == 1 and closed["idle"] == 1


async def test_a_flooding_device_is_rate_limited_then_cut_off(
    start_gateway: GatewayFactory,
) -> None:
    running = await start_gateway(limits={"frames_per_s": 2, "frame_burst": 5})
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)  # one token
    await raw.send(b"".join(raw.frame(Heartbeat()) for _ in range(30)))
    assert await raw.closed()
    metrics = running.gateway.metrics
    assert metrics.closed["flooding"] == 1
    assert metrics.refused["rate_limited"] == 6  # the 5th token left, 6 over: cut off
    assert metrics.frames["0x0002"] in (4, 5)  # the burst left after login (+ a refill)


async def test_a_report_sent_again_is_answered_but_stored_once(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    for _ in range(2):  # the same report, e.g. after a lost answer, with a new serial
        await raw.send(raw.frame(lock_report(7)))
        assert (await raw.answer()).body == PlatformResponse(raw.serial, 0x0200, 0)
    # ... and once more inside a blind-area batch with a new one
    await raw.send(raw.frame(BatchLocation(1, (lock_report(7), lock_report(8)))))
    assert (await raw.answer()).body == PlatformResponse(raw.serial, 0x0704, 0)
    await collector.wait_for(lambda: len(collector.on("lock")) == 2)
    await asyncio.sleep(0.3)
    locks = collector.on("lock")
    assert [p["counter"] for p in locks] == [7, 8]
    assert "replayed" not in locks[0] and locks[1]["replayed"] is True
    assert running.gateway.metrics.reports_duplicate == 2


async def test_subpackages_are_reassembled_in_any_order_and_answered_after_storing(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    body = BatchLocation(0, tuple(lock_report(c) for c in range(20, 26))).encode(None)
    first = raw.serial + 1
    frames = raw.fragments(0x0704, body)
    await raw.send(b"".join(reversed(frames)))
    answers = [(await raw.answer()).body for _ in frames]
    assert sorted(a.reply_serial for a in answers if isinstance(a, PlatformResponse)) == [
        first + i for i in range(len(frames))
    ]
    await collector.wait_for(lambda: len(collector.on("lock")) == 6)
    assert [p["counter"] for p in collector.on("lock")] == list(range(20, 26))


async def test_a_lock_part_with_a_foreign_lock_id_is_left_out(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    await raw.send(raw.frame(lock_report(3, lock_id=LOCK2_ID)))  # another node's lock
    assert (await raw.answer()).body == PlatformResponse(raw.serial, 0x0200, 0)
    await collector.wait_for(lambda: len(collector.on("position")) == 1)
    assert collector.on("lock") == []
    assert running.gateway.metrics.refused["lock_part_ignored"] == 1


async def test_seq_survives_a_restart_of_the_gateway(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    await raw.send(raw.frame(lock_report(1)))
    await raw.answer()
    before = running.gateway.outbox.last_seq(NODE)
    await running.stop()
    running = await start_gateway()
    raw = await Raw.connect(running.port)
    await raw.login(running.gateway)
    await raw.send(raw.frame(lock_report(2)))
    await raw.answer()
    assert running.gateway.outbox.last_seq(NODE) > before
    await collector.wait_for(lambda: len(collector.on("lock")) == 2)
    # Never a seq for two messages (a message sent again after the restart keeps its seq).
    by_seq: dict[int, set[str]] = {}
    for t, p, _ in collector.messages:
        if NODE in t and not t.endswith("/ack"):
            by_seq.setdefault(p["seq"], set()).add(f"{t} {p['ts']} {p.get('counter')}")
    assert all(len(kinds) == 1 for kinds in by_seq.values()), by_seq


async def test_the_store_refuses_when_full_and_the_device_keeps_its_report(
    tmp_path: Path,
) -> None:
    store = GatewayStore(tmp_path / "s.sqlite3", "gw", max_bytes=4096)
    item = Item(
        [
            (
                topics.position(NODE),
                {"ts": "2026-12-01T08:00:00.000Z", "fix": "none", "systems": [], "pad": "x" * 1500},
                False,
            )
        ]
    )
    assert store.store(NODE, [item]).seqs == [1]
    assert store.store(NODE, [item]).seqs == [2]
    with pytest.raises(StoreFullError):
        store.store(NODE, [item])
    assert store.last_seq(NODE) == 2  # no seq used by the refused one
    assert store.ack_ranges(NODE, [(1, 2)])[0] == 2
    assert store.store(NODE, [item]).seqs == [3]


# ---- commands and TLS ------------------------------------------------------------------------


def signed_command(
    running: RunningGateway, action: str, lock_id: str = LOCK_ID, **extra: Any
) -> bytes:
    now = utc_now()
    command = TruckCommand(
        node_id=NODE,
        command_id=new_command_id(),
        issued_at=now,
        expires_at=now + timedelta(minutes=2),
        nonce=new_nonce(),
        action=action,
        lock_id=lock_id,
        trip_id="TRIP-CELL-1",
        **extra,
    )
    return sign(command, load_private_key(running.private_key)).to_json()


async def test_signed_commands_are_verified_carried_to_the_lock_and_answered(
    start_gateway: GatewayFactory, collector: Collector, own_broker: MosquittoBroker
) -> None:
    running = await start_gateway()
    seen: list[BondWatchBlock] = []
    terminal: Jt808Terminal

    def on_message(header: Header, body: Body) -> None:
        if isinstance(body, Transparent) and (block := body.bondwatch) is not None:
            seen.append(block)
            assert block.command is not None
            answer = BondWatchBlock(
                lock_id=LOCK_ID,
                state=profile.STATE_CODES["sealed"],
                battery_pct=88,
                command_result=CommandResult(header.serial, block.command, 0, 0),
            )
            terminal.send(TerminalResponse(header.serial, header.msg_id, 0))
            terminal.send(Transparent(profile.TRANSPARENT_TYPE, answer.encode()))

    terminal = running.terminal(on_message=on_message)
    task = asyncio.create_task(terminal.run())
    try:
        await asyncio.wait_for(terminal.online.wait(), 10)
        good = signed_command(running, "query")
        forged = bytearray(signed_command(running, "query"))
        forged[forged.index(b'"trip_id":"') + 11] ^= 0x01  # one bit of the signed payload
        foreign = signed_command(running, "query", lock_id=LOCK2_ID)  # another node's lock
        for raw in (good, bytes(forged), foreign):
            await publish(own_broker, topics.command("truck", NODE), raw)
        await collector.wait_for(lambda: len(collector.on("command/result")) == 3)
    finally:
        task.cancel()
    results = {p["command_id"]: p for p in collector.on("command/result")}
    ids = [json.loads(raw)["command_id"] for raw in (good, bytes(forged), foreign)]
    assert (
        results[ids[0]]["result"] == "done"
        and results[ids[0]]["detail"] == f"lock {LOCK_ID} sealed"
    )
    assert results[ids[1]]["result"] == "bad_signature"
    assert results[ids[2]]["result"] == "refused"
    assert [b.command for b in seen] == [profile.COMMAND_CODES["query"]]  # only the good one


async def test_a_stale_answer_is_not_taken_and_a_refused_frame_fails_the_command(
    start_gateway: GatewayFactory, collector: Collector, own_broker: MosquittoBroker
) -> None:
    """The lock answers the first query with another command's result under its serial
    (a stale answer, `unsealed`) before its own (`sealed`), and refuses the second
    query's frame (0x0001 result 3): done `sealed`, then failed with the refusal."""
    running = await start_gateway(downlink={"ack_timeout_s": 5.0, "retries": 0})
    commands: list[int] = []
    terminal: Jt808Terminal

    def on_message(header: Header, body: Body) -> None:
        if not (isinstance(body, Transparent) and (block := body.bondwatch) is not None):
            return
        assert block.command is not None
        commands.append(header.serial)
        if len(commands) == 2:
            terminal.send(TerminalResponse(header.serial, header.msg_id, 3))
            return
        terminal.send(TerminalResponse(header.serial, header.msg_id, 0))
        answers: list[tuple[profile.LockState, int]] = [
            ("unsealed", profile.COMMAND_CODES["unseal"]),  # stale: another command's
            ("sealed", block.command),
        ]
        for state, command in answers:
            answer = BondWatchBlock(
                lock_id=LOCK_ID,
                state=profile.STATE_CODES[state],
                command_result=CommandResult(header.serial, command, 0, 0),
            )
            terminal.send(Transparent(profile.TRANSPARENT_TYPE, answer.encode()))

    terminal = running.terminal(on_message=on_message)
    task = asyncio.create_task(terminal.run())
    try:
        await asyncio.wait_for(terminal.online.wait(), 10)
        for expected in (1, 2):
            await publish(
                own_broker, topics.command("truck", NODE), signed_command(running, "query")
            )
            await collector.wait_for(lambda n=expected: len(collector.on("command/result")) == n)
    finally:
        task.cancel()
    first, second = collector.on("command/result")
    assert (first["result"], first["detail"]) == ("done", f"lock {LOCK_ID} sealed")
    assert (second["result"], second["detail"]) == (
        "failed",
        f"lock {LOCK_ID} rejected the command frame: unsupported (0x0001)",
    )
    assert len(commands) == 2 and commands[0] != commands[1]  # each sent once
    assert running.gateway.metrics.refused["stale_answer"] == 1


async def publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=f"cmd-{uuid.uuid4().hex[:8]}"
    ) as client:
        await client.publish(topic, payload, qos=1)


async def test_devices_connect_over_tls(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    create_ca(tmp_path / "ca", "test CA")
    issued = issue_broker(tmp_path / "ca", tmp_path / "certs", ["127.0.0.1"])
    running = await start_gateway(
        listen={"port": None, "tls": {"port": 0, "cert_file": issued.cert, "key_file": issued.key}}
    )
    context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.crt"))
    terminal = Jt808Terminal(
        "127.0.0.1", running.gateway.ports["tls"], LOCK_PHONE, "EL00101", tls=context
    )
    task = asyncio.create_task(terminal.run())
    try:
        await asyncio.wait_for(terminal.online.wait(), 10)
        terminal.report(lock_report(1))
        await wait_until(lambda: terminal.answered == 1)
    finally:
        task.cancel()
    assert "tcp" not in running.gateway.ports
    # A plain-text client on the TLS port gets nowhere and breaks nothing.
    raw = await Raw.connect(running.gateway.ports["tls"])
    await raw.send(raw.frame(Heartbeat()))
    assert await raw.closed()


ROUTE = PROJECT_ROOT / "config" / "demo" / "routes" / "R-HP-BY.geojson"


async def test_a_tracker_stub_speaking_2019_reports_its_route(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway()
    route = ROUTE
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_stubs.tracker",
        "--gateway",
        f"127.0.0.1:{running.port}",
        "--phone",
        TRACKER_PHONE,
        "--route",
        str(route),
        "--interval",
        "0.2",
        "--time-scale",
        "10",
        "--jt808-2019",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await collector.wait_for(lambda: len(collector.on("position")) >= 5)
    finally:
        process.terminate()
        await process.wait()
    positions = collector.on("position")
    assert {p["node_id"] for p in positions} == {NODE2}
    assert all(p["fix"] == "3d" and p["systems"] == ["GPS", "BDS"] for p in positions)
    assert positions[-1]["lat"] != positions[0]["lat"]  # it moves along the route
    assert collector.on("lock") == []  # a tracker reports no lock


async def test_counters_are_served_as_prometheus_metrics(start_gateway: GatewayFactory) -> None:
    running = await start_gateway(metrics={"host": "127.0.0.1", "port": 0})
    raw = await Raw.connect(running.port)
    await raw.send(raw.frame(Authentication("WRONG")))
    assert await raw.closed()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.gateway.ports["metrics"])
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    text = (await reader.read()).decode()
    writer.close()
    assert text.startswith("HTTP/1.1 200 OK")
    assert 'bondwatch_jt808_refused_total{reason="bad_auth_code"} 1' in text
    assert 'bondwatch_jt808_closed_total{reason="bad_auth_code"} 1' in text
    assert "bondwatch_jt808_mqtt_connected 1.0" in text
