"""Driver and stub over the 2019 header form, TCP control, line health and port loss."""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.elock.authorisation import make_token
from devices.elock.driver import ElockDriver, Jt808LockConfig
from tests.devices.elock.lockharness import Harness

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_2019_form_tcp_control_health_and_port_loss() -> None:
    control_port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_stubs.elock",
        "--lock-id",
        "GATE-L7",
        "--phone",
        "8613912345678",
        "--secret",
        "s",
        "--interval",
        "0.3",
        "--jt808-2019",
        "--control-port",
        str(control_port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    path = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
    assert (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip() == "READY"
    config = Jt808LockConfig(
        type="jt808",
        port=path,
        lock_ids=["GATE-L7"],
        ack_timeout_s=0.6,
        bad_frames_degraded=1,
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    harness = Harness(ElockDriver(config))
    task = asyncio.create_task(harness.driver.run(harness.on_event, harness.on_health))
    try:
        await harness.wait_for(lambda e: e.event == "status")
        expires = datetime.now(UTC) + timedelta(minutes=5)
        token = make_token(b"s", "GATE-L7", "seal", "T-2019", 1, expires)
        reply = await harness.driver.seal("GATE-L7", "T-2019", token)
        assert (reply.result, reply.state) == ("done", "sealed")
        reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
        writer.write(b"rope_cut\nbad_checksum\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readline(), 5)
        assert first.startswith(b"OK ")
        assert b'"state": "open"' in first
        await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await harness.wait_for(lambda e: e.event == "rope_cut" and e.state == "open")
        await harness.wait_for(lambda e: e.event == "status" and e.state == "open")
        statuses = [status for status, _ in harness.health]
        assert statuses[:3] == ["ok", "degraded", "ok"]
        assert "check code" in harness.health[1][1]
        process.terminate()
        await process.wait()
        for _ in range(50):
            if harness.health[-1][0] == "down":
                break
            await asyncio.sleep(0.1)
        assert harness.health[-1][0] == "down"
        await asyncio.sleep(0.5)  # reopening keeps failing: reported once, not per attempt
        assert [s for s, _ in harness.health].count("down") == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if process.returncode is None:
            process.terminate()
            await process.wait()
