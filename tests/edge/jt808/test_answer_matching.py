"""Which answer ends which command, which answer stores which report (Hypothesis).

The gateway: a lock command (0x8900) ends only on the lock's result (0x0900) naming its
serial and command code, or on a general response (0x0001) naming its serial and 0x8900
and refusing it (`failed`); answers naming another serial, command or message id, or
from another phone, are ignored. Its serials start at random on every connection.

The terminal stub: it takes the registration answer (0x8100) naming its registration's
serial only, and forgets a kept report only on a 0x8001 result 0 naming its serial
**and** message id (0x0200 / 0x0704); serials wrap without two kept reports sharing one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.cellular_registry import phone_key
from devices.elock import profile
from devices.elock.block import BondWatchBlock, CommandResult
from devices.elock.bodies import (
    MSG_AUTHENTICATION,
    MSG_BATCH_LOCATION,
    MSG_HEARTBEAT,
    MSG_LOCATION,
    MSG_TRANSPARENT_DOWN,
    MSG_TRANSPARENT_UP,
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
from devices.elock.codec import Message, decode, encode
from devices.elock.exchange import SERIAL_SPACE
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from edge.jt808.auth import auth_code
from edge.jt808.session import DeviceSession
from firmware_stubs.jt808_terminal import MAX_KEPT, Jt808Terminal, Report
from tests.edge.jt808.conftest import (
    LOCK_ID,
    LOCK_PHONE,
    GatewayFactory,
    Raw,
    RunningGateway,
    lock_report,
)

COMMANDS = sorted(profile.COMMAND_CODES.values())
RESULTS = sorted(profile.RESULT_CODES.values())
OTHER_PHONE = "13900000000"


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> RunningGateway:
    """One gateway for all examples; answers wait 5 s, so that no command is sent again
    while a loaded machine plays an example."""
    return await start_gateway(downlink={"ack_timeout_s": 5.0, "retries": 0})


# --- the gateway ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoy:
    """An answer that is not the command's: a result (0x0900) or a general response
    (0x0001) naming another serial (`offset` ≠ 0) or another command / message id, or
    coming from another phone."""

    kind: str  # "result" | "response"
    offset: int
    code: int  # the command code (result) or the message id answered (response)
    result: int
    other_phone: bool


def decoys(command: int) -> st.SearchStrategy[Decoy]:
    def not_ours(decoy: Decoy) -> bool:
        ours = decoy.code == (command if decoy.kind == "result" else MSG_TRANSPARENT_DOWN)
        return decoy.other_phone or decoy.offset != 0 or not ours

    offsets = st.integers(0, 3) | st.integers(0, SERIAL_SPACE - 1)
    results = st.builds(
        Decoy,
        st.just("result"),
        offsets,
        st.sampled_from(COMMANDS) | st.integers(0, 255),
        st.sampled_from(RESULTS),
        st.booleans(),
    )
    responses = st.builds(
        Decoy,
        st.just("response"),
        offsets,
        st.sampled_from([MSG_TRANSPARENT_DOWN, 0x8001, 0x8100, 0x8103]) | st.integers(0, 0xFFFF),
        st.integers(1, 3),  # refusals: only a refusal would end the command
        st.booleans(),
    )
    return (results | responses).filter(not_ours)


def result_frame(serial: int, command: int, result: int) -> Transparent:
    block = BondWatchBlock(
        lock_id=LOCK_ID,
        state=profile.STATE_CODES["sealed"],
        command_result=CommandResult(serial, command, result),
    )
    return Transparent(profile.TRANSPARENT_TYPE, block.encode())


async def sync(raw: Raw) -> list[Message]:
    """Every frame the gateway sent until it answered a heartbeat sent now: it handles a
    connection's frames in order, so every frame sent before is handled."""
    await raw.send(raw.frame(Heartbeat()))
    heartbeat, seen = raw.serial, list[Message]()
    while True:
        message = await raw.answer()
        if message.body == PlatformResponse(heartbeat, MSG_HEARTBEAT, 0):
            return seen
        seen.append(message)


async def connected(gateway: RunningGateway) -> tuple[Raw, DeviceSession]:
    """A lock logged in over a new connection, and the gateway's session of it."""
    raw = await Raw.connect(gateway.port)
    await raw.login(gateway.gateway)
    return raw, gateway.gateway.sessions[phone_key(LOCK_PHONE)]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_a_command_ends_only_on_its_own_answer(
    gateway: RunningGateway, data: st.DataObject
) -> None:
    code = data.draw(st.sampled_from(COMMANDS), "command")
    stray = data.draw(st.lists(decoys(code), max_size=8), "answers to other commands")
    final = data.draw(
        st.sampled_from(RESULTS) | st.integers(-3, -1), "the answer (< 0: a 0x0001 refusal)"
    )
    stale_before = gateway.gateway.metrics.refused["stale_answer"]
    raw, session = await connected(gateway)
    task = asyncio.create_task(session.command(BondWatchBlock(lock_id=LOCK_ID, command=code)))
    try:
        sent = await raw.answer()
        assert sent.msg_id == MSG_TRANSPARENT_DOWN
        serial = sent.header.serial
        assert isinstance(sent.body, Transparent) and sent.body.bondwatch is not None
        assert sent.body.bondwatch.command == code
        for decoy in stray:
            other = (serial + decoy.offset) % SERIAL_SPACE
            answer: Body = (
                result_frame(other, decoy.code, decoy.result)
                if decoy.kind == "result"
                else TerminalResponse(other, decoy.code, decoy.result)
            )
            await raw.send(raw.frame(answer, OTHER_PHONE if decoy.other_phone else LOCK_PHONE))
        # The lock received the frame (0x0001 ok): not an end either.
        await raw.send(raw.frame(TerminalResponse(serial, MSG_TRANSPARENT_DOWN, 0)))
        await sync(raw)
        assert not task.done(), task.result()
        if final < 0:
            await raw.send(raw.frame(TerminalResponse(serial, MSG_TRANSPARENT_DOWN, -final)))
        else:
            await raw.send(raw.frame(result_frame(serial, code, final)))
        ended, attempts = await asyncio.wait_for(task, 5)
    finally:
        task.cancel()
        raw.writer.close()
    assert attempts == 1
    if final < 0:
        assert ended == TerminalResponse(serial, MSG_TRANSPARENT_DOWN, -final)
    else:
        assert isinstance(ended, BondWatchBlock)
        assert ended.command_result == CommandResult(serial, code, final)
    stale = [d for d in stray if d.kind == "result" and not d.other_phone]
    assert gateway.gateway.metrics.refused["stale_answer"] - stale_before == len(stale)


async def test_each_connection_starts_its_serials_at_random(gateway: RunningGateway) -> None:
    """The first message of a connection (the answer to its authentication) carries the
    session's first serial: not the same on every connection."""
    firsts = set()
    for _ in range(5):
        raw = await Raw.connect(gateway.port)
        await raw.send(raw.frame(Authentication(auth_code(gateway.gateway.secret, LOCK_PHONE))))
        answer = await raw.answer()
        assert answer.body == PlatformResponse(raw.serial, MSG_AUTHENTICATION, 0)
        firsts.add(answer.header.serial)
        raw.writer.close()
    assert len(firsts) > 1  # five draws of 65,536 values: equal with p ≈ 5e-20


# --- the terminal stub ---------------------------------------------------------------------

TERMINAL_PHONE = "13800000999"
GOOD_CODE, BAD_CODE = "GOODCODE01", "STRAYCODE1"
MARK = 0x7F  # a transparent message type the stub hands to `on_message` (a sync mark)


class PlatformEnd:
    """The platform's end of a terminal's TCP connection, played by the test."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.splitter = FrameSplitter()
        self.received: list[Message] = []
        self.marks: asyncio.Queue[int] = asyncio.Queue()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.serial = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.accepted.put((reader, writer))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            if self.writer is not None:
                self.writer.close()

    async def accept(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(self.accepted.get(), 5)

    async def next(self) -> Message:
        assert self.reader is not None
        async with asyncio.timeout(5):
            while not self.received:
                chunk = await self.reader.read(4096)
                assert chunk, "the terminal closed the connection"
                self.received.extend(decode(raw) for raw in self.splitter.feed(chunk))
        return self.received.pop(0)

    def send(self, body: Body) -> None:
        assert self.writer is not None
        self.serial = (self.serial + 1) % SERIAL_SPACE
        self.writer.write(encode(Header(body.MSG_ID, TERMINAL_PHONE, self.serial), body))

    def on_message(self, header: Header, body: Body) -> None:
        if isinstance(body, Transparent) and body.kind == MARK:
            self.marks.put_nowait(header.serial)

    async def sync(self) -> None:
        """Return once the terminal has handled every frame sent before (it handles
        them in order, and hands the mark to `on_message`)."""
        self.send(Transparent(MARK, b"sync", downlink=True))
        mark = self.serial
        while await asyncio.wait_for(self.marks.get(), 5) != mark:
            pass


@dataclass(frozen=True)
class ReportAnswer:
    """A 0x8001 for the report `target` (None: any serial) at serial offset `offset`,
    naming `reply_id`, with `result`."""

    target: int | None
    offset: int
    reply_id: int
    result: int


def report_answers(reports: int) -> st.SearchStrategy[ReportAnswer]:
    return st.builds(
        ReportAnswer,
        st.none() | st.integers(0, reports - 1),
        st.just(0) | st.integers(0, 3) | st.integers(0, SERIAL_SPACE - 1),
        st.sampled_from(
            [MSG_LOCATION, MSG_BATCH_LOCATION, MSG_HEARTBEAT, MSG_AUTHENTICATION, 0x0001]
        )
        | st.sampled_from([MSG_TRANSPARENT_UP, 0x0100])
        | st.integers(0, 0xFFFF),
        st.just(0) | st.integers(1, 3),
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_terminal_takes_only_answers_naming_what_it_sent(data: st.DataObject) -> None:
    first = data.draw(st.integers(0, SERIAL_SPACE - 1) | st.just(SERIAL_SPACE - 3), "first")
    stray_registrations = data.draw(
        st.lists(st.integers(1, SERIAL_SPACE - 1), max_size=3), "0x8100 with other serials"
    )
    stray_auth = data.draw(
        st.lists(st.integers(1, SERIAL_SPACE - 1), max_size=3), "0x8001 0x0102 other serials"
    )
    batches = data.draw(st.lists(st.booleans(), min_size=1, max_size=6), "0x0704 or 0x0200")
    answers = data.draw(st.lists(report_answers(len(batches)), max_size=12), "0x8001 answers")

    async def scenario() -> None:
        platform = PlatformEnd()
        async with platform.serving() as port:
            terminal = Jt808Terminal(
                "127.0.0.1",
                port,
                TERMINAL_PHONE,
                "T0999",
                on_message=platform.on_message,
                resend_after_s=600,
                heartbeat_s=600,
                first_serial=first,
            )
            task = asyncio.create_task(terminal.run())
            try:
                await platform.accept()
                await exchange(platform, terminal)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def exchange(platform: PlatformEnd, terminal: Jt808Terminal) -> None:
        registration = await platform.next()
        assert isinstance(registration.body, Registration)
        assert registration.header.serial == first
        for offset in stray_registrations:  # another registration's answer: not ours
            other = (first + offset) % SERIAL_SPACE
            platform.send(RegistrationResponse(other, 0, BAD_CODE))
        platform.send(RegistrationResponse(first, 0, GOOD_CODE))
        platform.send(RegistrationResponse(first, 0, BAD_CODE))  # a repeat: taken once
        login = await platform.next()
        assert isinstance(login.body, Authentication) and login.body.auth_code == GOOD_CODE
        for offset in stray_auth:
            platform.send(
                PlatformResponse(
                    (login.header.serial + offset) % SERIAL_SPACE, MSG_AUTHENTICATION, 0
                )
            )
        await platform.sync()
        assert not terminal.online.is_set()
        platform.send(PlatformResponse(login.header.serial, MSG_AUTHENTICATION, 0))
        await asyncio.wait_for(terminal.online.wait(), 5)

        sent: list[tuple[int, int]] = []  # (serial, message id) of each report
        for index, batch in enumerate(batches):
            location = lock_report(index + 1, lock_id="EL-T")
            body: Report = BatchLocation(1, (location,)) if batch else location
            serial = terminal.report(body)
            message = await platform.next()
            assert (message.header.serial, message.msg_id) == (serial, body.MSG_ID)
            sent.append((serial, body.MSG_ID))
        assert len({serial for serial, _ in sent}) == len(sent)

        stored: set[tuple[int, int]] = set()
        for answer in answers:
            base = sent[answer.target][0] if answer.target is not None else 0
            serial = (base + answer.offset) % SERIAL_SPACE
            platform.send(PlatformResponse(serial, answer.reply_id, answer.result))
            if answer.result == 0:
                stored.add((serial, answer.reply_id))
        await platform.sync()
        left = [serial for serial, msg_id in sent if (serial, msg_id) not in stored]
        assert list(terminal.unanswered) == left
        assert terminal.answered == len(sent) - len(left)
        assert terminal.refusals == []

        for serial, msg_id in sent:  # the right answers, once more for the stored ones
            platform.send(PlatformResponse(serial, msg_id, 0))
        await platform.sync()
        assert not terminal.unanswered and terminal.answered == len(sent)

    asyncio.run(scenario())


def test_serials_wrap_past_the_kept_reports() -> None:
    """After 0xFFFF comes 0, but a serial a kept report holds is skipped: its answer
    names it, and two reports under one serial would be one report lost."""
    terminal = Jt808Terminal("127.0.0.1", 9, TERMINAL_PHONE, "T0999", first_serial=0xFFFE)
    kept = [terminal.report(lock_report(n, lock_id="EL-T")) for n in (1, 2, 3)]
    assert kept == [0xFFFE, 0xFFFF, 0]
    heartbeats = [terminal.frame(Heartbeat())[0] for _ in range(SERIAL_SPACE - 3)]
    assert heartbeats[0] == 1 and heartbeats[-1] == 0xFFFD
    assert terminal.report(lock_report(4, lock_id="EL-T")) == 1  # 0xFFFE, 0xFFFF, 0 held
    assert list(terminal.unanswered) == [*kept, 1]


def test_at_most_half_the_serials_are_kept() -> None:
    for bad in (0, MAX_KEPT + 1):
        with pytest.raises(ValueError, match="max_kept"):
            Jt808Terminal("127.0.0.1", 9, TERMINAL_PHONE, "T0999", max_kept=bad)
