"""Device certificates on the gateway's TLS listener (`listen.tls.ca_file`): real handshakes.

The site CA (`contract.pki`, as `bondwatch-broker` makes it) signs the gateway's server
certificate and the devices' client certificates. With `ca_file` given, a device must
present a certificate of that CA: one without a certificate, or with one of another
CA, is refused in the handshake and never reaches the JT/T 808 session.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from contract.pki import Issued, create_ca, issue_broker, issue_client
from firmware_stubs.jt808_terminal import Jt808Terminal
from tests.edge.jt808.conftest import (
    LOCK_PHONE,
    GatewayFactory,
    RunningGateway,
    lock_report,
    wait_until,
)


@pytest.fixture
def site_ca(tmp_path: Path) -> Path:
    create_ca(tmp_path / "ca", "BondWatch test site CA")
    return tmp_path / "ca"


async def tls_gateway(start_gateway: GatewayFactory, ca: Path, out: Path) -> RunningGateway:
    server = issue_broker(ca, out, ["127.0.0.1"])
    return await start_gateway(
        listen={
            "port": None,
            "tls": {
                "port": 0,
                "cert_file": server.cert,
                "key_file": server.key,
                "ca_file": ca / "ca.crt",
            },
        }
    )


def device_context(ca: Path, client: Issued | None) -> ssl.SSLContext:
    """A device's TLS context: it trusts the site CA, and shows `client` if given."""
    context = ssl.create_default_context(cafile=str(ca / "ca.crt"))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


async def refused(port: int, context: ssl.SSLContext) -> str:
    """How the gateway refuses a device with `context`: the handshake fails, or (TLS 1.3,
    where the client's certificate is checked after the client's handshake ends) the
    first read meets the server's alert or the end of the connection."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), 20
        )
    except ssl.SSLError as err:
        return f"handshake: {err.reason}"
    try:
        writer.write(b"\x7e\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x7e")
        data = await asyncio.wait_for(reader.read(1024), 20)
    except (ssl.SSLError, ConnectionResetError) as err:
        return f"first read: {getattr(err, 'reason', None) or type(err).__name__}"
    finally:
        writer.close()
    assert data == b"", f"the gateway answered a device it should refuse: {data!r}"
    return "closed"


async def reports_once(port: int, context: ssl.SSLContext) -> None:
    """A lock with `context` authenticates over TLS and has one report answered."""
    terminal = Jt808Terminal("127.0.0.1", port, LOCK_PHONE, "EL00101", tls=context)
    task = asyncio.create_task(terminal.run())
    try:
        await asyncio.wait_for(terminal.online.wait(), 20)
        terminal.report(lock_report(1))
        await wait_until(lambda: terminal.answered == 1, 20)
    finally:
        task.cancel()


async def test_a_device_with_a_certificate_of_the_site_ca_reports(
    start_gateway: GatewayFactory, site_ca: Path, tmp_path: Path
) -> None:
    running = await tls_gateway(start_gateway, site_ca, tmp_path / "certs")
    client = issue_client(site_ca, tmp_path / "devices", "EL00101")
    await reports_once(running.gateway.ports["tls"], device_context(site_ca, client))
    assert running.gateway.metrics.connections_total == 1
    assert running.gateway.metrics.reports_stored == 1


async def test_devices_without_a_certificate_or_with_another_cas_are_refused(
    start_gateway: GatewayFactory, site_ca: Path, tmp_path: Path
) -> None:
    running = await tls_gateway(start_gateway, site_ca, tmp_path / "certs")
    port = running.gateway.ports["tls"]
    create_ca(tmp_path / "rogue-ca", "somebody else's CA")
    rogue = issue_client(tmp_path / "rogue-ca", tmp_path / "rogue", "EL00101")

    await refused(port, device_context(site_ca, None))
    await refused(port, device_context(site_ca, rogue))
    # Neither got past the handshake: no connection reached the gateway (its count is
    # of connections accepted after the handshake), nothing authenticated, nothing stored.
    assert running.gateway.metrics.connections_total == 0
    assert running.gateway.metrics.reports_stored == 0
    assert not running.gateway.sessions

    # ...and the listener still serves a good device afterwards.
    good = issue_client(site_ca, tmp_path / "devices", "EL00101")
    await reports_once(port, device_context(site_ca, good))
    assert running.gateway.metrics.connections_total == 1
    assert running.gateway.metrics.reports_stored == 1
