"""The driver reports its health once per change: `ok` (fixes), `degraded` (data but no
fix, positions the receiver calls invalid included), `down` (no data for
`no_data_timeout_s`, or the device gone). The receiver is a TCP server in the test
(`socket://`), so the test decides what it sends and when."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.devices.gnss.feeds import TcpReceiver, fix_epoch, invalid_epoch, no_fix_epoch
from tests.firmware_stubs.gnss.harness import Reader, free_port, reading

NO_DATA_S = 0.4


class Script:
    """Plays 1 Hz epochs to the receiver's clients, seconds counting on."""

    def __init__(self, server: TcpReceiver, reader: Reader) -> None:
        self.server = server
        self.reader = reader
        self.second = 0

    async def play(self, epoch: Callable[[int], bytes], count: int) -> None:
        for _ in range(count):
            self.server.write(epoch(self.second))
            self.second += 1
            await asyncio.sleep(0.02)

    async def settle(self, fixes: int) -> None:
        """Wait until the driver has passed on `fixes` fixes in all."""
        await self.reader.wait_for(lambda: len(self.reader.fixes) >= fixes)


async def test_ok_degraded_ok_down_ok_each_reported_once() -> None:
    server = TcpReceiver(free_port())
    await server.start()
    loop = asyncio.get_running_loop()
    try:
        async with reading(
            f"socket://127.0.0.1:{server.port}",
            no_data_timeout_s=NO_DATA_S,
            reconnect_min_s=0.05,
            reconnect_max_s=0.1,
        ) as r:
            script = Script(server, r)
            await server.wait_connected(1)
            await script.play(fix_epoch, 4)
            await script.settle(4)
            assert r.health == ["ok"]
            # jammed: the receiver talks, without fix; then with positions it calls
            # invalid (no fix either): still `degraded`, not reported again
            await script.play(no_fix_epoch, 4)
            await script.play(invalid_epoch, 3)
            await script.settle(10)
            assert r.health == ["ok", "degraded"]
            await script.play(fix_epoch, 4)
            await script.settle(15)
            assert r.health == ["ok", "degraded", "ok"]
            # silence: `down` after the timeout, once however long it lasts
            silent_from = loop.time()
            await r.wait_for(lambda: r.health[-1] == "down")
            assert loop.time() - silent_from >= NO_DATA_S - 0.05
            await asyncio.sleep(3 * NO_DATA_S)
            assert r.health == ["ok", "degraded", "ok", "down"]
            await script.play(fix_epoch, 3)
            await script.settle(18)
            assert r.health == ["ok", "degraded", "ok", "down", "ok"]
            # the device gone (the connection drops, reconnects are refused): `down`
            # once for the loss and all the failed attempts, `ok` when it is back
            await server.unplug()
            await r.wait_for(lambda: r.health[-1] == "down")
            await asyncio.sleep(0.5)
            await server.start()
            await server.wait_connected(2)
            await script.play(fix_epoch, 3)
            await script.settle(21)
    finally:
        await server.close()
    assert r.health == ["ok", "degraded", "ok", "down", "ok", "down", "ok"]
    assert r.details[1] == "receiver sends data but has no fix"
    assert r.details[3] == f"no NMEA data for {NO_DATA_S:g} s"
    assert "hangup" in r.details[5]
    # what the fixes were, epoch by epoch: the health followed them
    kinds = ["fix" if f.mode >= 2 and f.receiver_valid else "none" for f in r.fixes]
    assert kinds == ["fix"] * 4 + ["none"] * 4 + ["none"] * 3 + ["fix"] * 10
    assert all(f.lat is None for f in r.fixes[4:11])  # nor the invalid epochs' guesses
    seconds = [f.time.second for f in r.fixes if f.time is not None]
    assert seconds == list(range(21))
