"""Identities at the broker, with the SHIPPED access list (config/mosquitto/bondwatch.acl,
generated from config/mosquitto/site.yaml) and the production listener's options
(config/mosquitto/mosquitto.conf): each test runs against a real Mosquitto twice — with
client certificates from a site CA made by `contract.pki` (the production path) and
with a password file made by `mosquitto_passwd`.

Mosquitto 2 answers an unauthorised QoS 1 publish of an MQTT 5 client with PUBACK
reason 0x87 (not authorised) and drops it; every refusal is asserted both ways: by
the reason code and by a subscriber that sees nothing of it (a permitted message sent
after the refused ones arrives, so the refused ones would have arrived before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract import topics
from contract.broker import DEFAULT_SERVER_CLIENT_ID, BrokerSettings, server_accounts
from contract.broker_acl import load_registry, render
from contract.ids import format_ts, utc_now
from contract.mqtt_client import make_client
from contract.pki import common_name, create_ca, issue_broker, issue_client
from contract.signing import generate_private_key, private_key_to_pem
from contract.version import TOPIC_PREFIX
from devtools.broker import (
    PROJECT_ROOT,
    SHIPPED_ACL,
    BrokerSecurity,
    BrokerTls,
    MosquittoBroker,
    find_mosquitto,
)
from server.app import serve
from server.broker_accounts import BrokerAccount, BrokerAccounts
from server.config import HttpSettings, ServerConfig, StorageSettings
from server.store import Store
from tests.broker_probe import NOT_AUTHORIZED, Credentials, Probe
from tests.server.conftest import demo_geography
from tests.server.gates.conftest import passage_fields

ALL = f"{TOPIC_PREFIX}/#"
REGISTRY = PROJECT_ROOT / "config" / "mosquitto" / "site.yaml"
# Accounts of the shipped registry.
SERVER = DEFAULT_SERVER_CLIENT_ID
SERVER_IDS = server_accounts(SERVER)
TRUCK, OTHER_TRUCK, GATE, OTHER_GATE = "TRK-YUE-A01", "TRK-YUE-B07", "G-BAIYUN-1", "G-NANSHA-2"
UNLISTED = "TRK-NOT-REGISTERED"  # a valid credential, but no line in the access list
#: The JT/T 808 gateway's account and the node of its registry (config/demo/jt808-registry.yaml).
JT808, CELLULAR_TRUCK = "jt808-gateway-1", "TRK-YUE-D21"
ACCOUNTS = [*SERVER_IDS.values(), TRUCK, OTHER_TRUCK, GATE, OTHER_GATE, UNLISTED, JT808]


@dataclass
class Site:
    """One broker with the production access control, and how to connect to it."""

    mode: str
    broker: MosquittoBroker
    folder: Path

    def credentials(self, account: str, username: str | None = None) -> Credentials:
        """`account`'s own credential; `username` overrides the name sent in CONNECT
        (ignored by the broker with certificates, checked against the password file
        without them)."""
        if self.mode == "tls":
            certs = self.folder / "certs"
            return Credentials(
                username=username,
                ca_file=self.folder / "ca" / "ca.crt",
                cert_file=certs / f"{account}.crt",
                key_file=certs / f"{account}.key",
            )
        return Credentials(username=username or account, password=password_of(account))

    def probe(self, account: str, client_id: str | None = None, **over: str) -> Probe:
        probe = Probe(
            self.broker.host,
            self.broker.port,
            client_id or account,
            self.credentials(account, over.get("username")),
        )
        return probe

    def log(self) -> str:
        return self.broker.log_path.read_text()


def password_of(account: str) -> str:
    return f"pw-{account}-{len(account)}"


def _mosquitto_passwd() -> str:
    found = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(found).is_file():
        pytest.fail("mosquitto_passwd is missing: it comes with Debian's mosquitto package")
    return found


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site CA, the broker's certificate and a certificate per account; and a
    certificate for TRUCK from a CA that is not the site's."""
    folder = tmp_path_factory.mktemp("pki")
    create_ca(folder / "ca", "BondWatch test site CA")
    issue_broker(folder / "ca", folder / "certs", ["127.0.0.1", "localhost"])
    for account in ACCOUNTS:
        issue_client(folder / "ca", folder / "certs", account)
    create_ca(folder / "foreign-ca", "Someone else's CA")
    issue_client(folder / "foreign-ca", folder / "foreign", TRUCK)
    return folder


@pytest.fixture(scope="module", params=["tls", "password"])
def site(request: pytest.FixtureRequest, pki: Path) -> Iterator[Site]:
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed")
    mode = str(request.param)
    workdir = pki / f"broker-{mode}"
    if mode == "tls":
        security = BrokerSecurity(
            tls=BrokerTls(
                pki / "ca" / "ca.crt", pki / "certs" / "broker.crt", pki / "certs" / "broker.key"
            )
        )
    else:
        passwd = pki / "passwd"
        passwd.write_text("")
        for account in ACCOUNTS:
            subprocess.run(
                [_mosquitto_passwd(), "-b", str(passwd), account, password_of(account)], check=True
            )
        security = BrokerSecurity(password_file=passwd)
    assert security.acl_file == SHIPPED_ACL
    broker = MosquittoBroker(workdir, security=security)
    broker.start()
    try:
        yield Site(mode, broker, pki)
    finally:
        broker.stop()


@pytest.fixture
def connect(site: Site) -> Iterator[Callable[..., Probe]]:
    """Connect probes (each closed after the test); the CONNACK must be a success."""
    opened: list[Probe] = []

    def make(account: str, client_id: str | None = None, **over: str) -> Probe:
        probe = site.probe(account, client_id, **over)
        opened.append(probe)
        assert probe.connect() == 0, f"{account} was refused"
        return probe

    yield make
    for probe in opened:
        probe.close()


def _payload() -> bytes:
    return uuid.uuid4().hex.encode()


def test_the_shipped_acl_is_generated_from_the_site_registry() -> None:
    """`bondwatch-broker acl config/mosquitto/site.yaml` writes exactly the shipped file."""
    assert SHIPPED_ACL.read_text() == render(load_registry(REGISTRY), REGISTRY.name)
    text = SHIPPED_ACL.read_text()
    assert "\npattern " not in text and "%u" not in text  # no rule for every account


def test_certificates_name_their_accounts(pki: Path) -> None:
    assert common_name(pki / "certs" / f"{TRUCK}.crt") == TRUCK
    assert common_name(pki / "certs" / f"{SERVER_IDS['passages']}.crt") == SERVER_IDS["passages"]


def _refused_then_sentinel(
    sender: Probe, watcher: Probe, refused: list[str], allowed: str
) -> list[tuple[str, bytes]]:
    """Publish each refused topic at QoS 1 (asserting 0x87) and QoS 0, then `allowed`;
    return what `watcher` received of them once the allowed one has arrived."""
    sent: set[bytes] = set()
    for topic in refused:
        payload = _payload()
        sent.add(payload)
        assert sender.publish(topic, payload) == NOT_AUTHORIZED, topic
        sender.publish(topic, payload + b"-q0", qos=0)
        sent.add(payload + b"-q0")
    sentinel = _payload()
    assert sender.publish(allowed, sentinel) == 0
    watcher.wait_for(allowed, sentinel)
    return [(t, p) for t, p in watcher.messages if p in sent]


def test_a_truck_writes_only_its_own_truck_topics(connect: Callable[..., Probe]) -> None:
    server = connect(SERVER_IDS["ingest"])
    assert server.subscribe(ALL) == 1
    truck = connect(TRUCK)
    for channel in topics.EDGE_CHANNELS["truck"]:
        topic = topics.build("truck", TRUCK, channel)  # type: ignore[arg-type]
        payload = _payload()
        assert truck.publish(topic, payload) == 0, topic
        server.wait_for(topic, payload)
    refused = [
        topics.passage(TRUCK),  # the other kind's topics under its own id
        topics.lane(TRUCK),
        topics.position(OTHER_TRUCK),  # another truck's
        topics.lock(OTHER_TRUCK),
        topics.availability("truck", OTHER_TRUCK),
        topics.passage(GATE),  # a gate's
        topics.command("truck", TRUCK),  # commands and acks are the server's to write
        topics.command("truck", OTHER_TRUCK),
        topics.ack("truck", TRUCK),
        topics.command("gate", GATE),
        "elsewhere/entirely",
    ]
    assert _refused_then_sentinel(truck, server, refused, topics.position(TRUCK)) == []


def test_a_gate_writes_only_its_own_gate_topics(connect: Callable[..., Probe]) -> None:
    server = connect(SERVER_IDS["passages"])
    assert server.subscribe(ALL) == 1
    gate = connect(GATE)
    for channel in topics.EDGE_CHANNELS["gate"]:
        topic = topics.build("gate", GATE, channel)  # type: ignore[arg-type]
        payload = _payload()
        assert gate.publish(topic, payload) == 0, topic
        server.wait_for(topic, payload)
    refused = [
        topics.position(GATE),  # a truck's channels under its own id
        topics.lock(GATE),
        topics.passage(OTHER_GATE),  # another gate's
        topics.lane(OTHER_GATE),
        topics.position(TRUCK),
        topics.command("gate", GATE),
        topics.command("gate", OTHER_GATE),
        topics.ack("gate", GATE),
    ]
    assert _refused_then_sentinel(gate, server, refused, topics.passage(GATE)) == []


def test_devices_read_only_their_own_commands_and_acks(connect: Callable[..., Probe]) -> None:
    devices = {
        ("truck", TRUCK): connect(TRUCK),
        ("truck", OTHER_TRUCK): connect(OTHER_TRUCK),
        ("gate", GATE): connect(GATE),
    }
    for probe in devices.values():
        # Mosquitto grants the subscription and filters each message by the access list.
        assert probe.subscribe(ALL) == 1
    commands = connect(SERVER_IDS["commands"])
    sent: dict[str, bytes] = {}
    for kind, node in [*devices, ("gate", OTHER_GATE)]:
        for topic in (topics.command(kind, node), topics.ack(kind, node)):  # type: ignore[arg-type]
            sent[topic] = _payload()
            assert commands.publish(topic, sent[topic]) == 0
    # And one device's own data, which no other device may read.
    truck_position = _payload()
    assert devices[("truck", TRUCK)].publish(topics.position(TRUCK), truck_position) == 0
    for (kind, node), probe in devices.items():
        last = _payload()  # sent after everything else: once it is in, all the rest is
        assert commands.publish(topics.ack(kind, node), last) == 0  # type: ignore[arg-type]
        probe.wait_for(topics.ack(kind, node), last)  # type: ignore[arg-type]
        own = {topics.command(kind, node), topics.ack(kind, node)}  # type: ignore[arg-type]
        got = [(t, p) for t, p in probe.messages if p != last]
        assert got == [(t, sent[t]) for t in sent if t in own], node


def test_the_jt808_gateway_speaks_only_for_the_nodes_of_its_registry(
    connect: Callable[..., Probe],
) -> None:
    server = connect(SERVER_IDS["ingest"])
    assert server.subscribe(ALL) == 1
    gateway = connect(JT808)
    assert gateway.subscribe(ALL) == 1  # granted; each message filtered by the access list
    for channel in topics.EDGE_CHANNELS["truck"]:
        topic = topics.build("truck", CELLULAR_TRUCK, channel)  # type: ignore[arg-type]
        payload = _payload()
        assert gateway.publish(topic, payload) == 0, topic
        server.wait_for(topic, payload)
    refused = [
        topics.position(TRUCK),  # a truck outside its registry
        topics.lock(OTHER_TRUCK),
        topics.availability("truck", TRUCK),
        topics.position(JT808),  # its own account name is no node
        topics.passage(GATE),
        topics.command("truck", CELLULAR_TRUCK),  # commands and acks are the server's
        topics.ack("truck", CELLULAR_TRUCK),
    ]
    assert _refused_then_sentinel(gateway, server, refused, topics.position(CELLULAR_TRUCK)) == []
    commands = connect(SERVER_IDS["commands"])
    sent = {}
    for topic in (
        topics.command("truck", CELLULAR_TRUCK),
        topics.ack("truck", CELLULAR_TRUCK),
        topics.command("truck", TRUCK),
        topics.ack("truck", TRUCK),
    ):
        sent[topic] = _payload()
        assert commands.publish(topic, sent[topic]) == 0
    last = _payload()
    assert commands.publish(topics.ack("truck", CELLULAR_TRUCK), last) == 0
    gateway.wait_for(topics.ack("truck", CELLULAR_TRUCK), last)
    got = [(t, p) for t, p in gateway.messages if p in sent.values()]
    assert got == [(t, p) for t, p in sent.items() if CELLULAR_TRUCK in t]


def test_only_the_server_writes_declared_lists_and_only_the_gateway_reads_them(
    connect: Callable[..., Probe],
) -> None:
    """The trucks' `declared` lists (server.declared): the server writes them, the JT/T
    808 gateway reads those of its registry's nodes, a truck account reads none (its
    locks are wired to it) and nobody else writes them."""
    gateway, truck = connect(JT808), connect(TRUCK)
    assert gateway.subscribe(ALL) == 1 and truck.subscribe(ALL) == 1
    commands = connect(SERVER_IDS["commands"])
    sent = {}
    for node in (CELLULAR_TRUCK, TRUCK, OTHER_TRUCK):
        sent[topics.declared(node)] = _payload()
        assert commands.publish(topics.declared(node), sent[topics.declared(node)]) == 0
    for node, probe in ((CELLULAR_TRUCK, gateway), (TRUCK, truck)):
        last = _payload()  # after the lists: once it is in, so is everything it may read
        assert commands.publish(topics.ack("truck", node), last) == 0
        probe.wait_for(topics.ack("truck", node), last)
    gateway_got = [(t, p) for t, p in gateway.messages if p in sent.values()]
    assert gateway_got == [(topics.declared(CELLULAR_TRUCK), sent[topics.declared(CELLULAR_TRUCK)])]
    assert [t for t, p in truck.messages if p in sent.values()] == []
    server = connect(SERVER_IDS["ingest"])
    assert server.subscribe(ALL) == 1
    mine = [topics.declared(TRUCK), topics.declared(OTHER_TRUCK)]
    assert _refused_then_sentinel(truck, server, mine, topics.position(TRUCK)) == []
    theirs = [topics.declared(CELLULAR_TRUCK), topics.declared(TRUCK)]
    assert _refused_then_sentinel(gateway, server, theirs, topics.position(CELLULAR_TRUCK)) == []


def test_a_node_has_one_writer(tmp_path: Path) -> None:
    """A node served by a JT/T 808 gateway cannot also be a truck account."""
    registry = tmp_path / "jt808.yaml"
    registry.write_text(
        "devices:\n  - {phone: '1', node_id: TRK-YUE-A01, kind: tracker}\n", encoding="utf-8"
    )
    site = tmp_path / "site.yaml"
    site.write_text(
        "trucks: [TRK-YUE-A01]\njt808_gateways:\n  - {account: gw-1, registry: jt808.yaml}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="TRK-YUE-A01 of jt808 gateway gw-1"):
        render(load_registry(site), site.name)


def test_the_server_cannot_speak_for_a_device(connect: Callable[..., Probe]) -> None:
    server = connect(SERVER_IDS["ingest"])
    assert server.subscribe(ALL) == 1
    commands = connect(SERVER_IDS["commands"])
    refused = [topics.position(TRUCK), topics.passage(GATE), topics.lane(GATE)]
    assert _refused_then_sentinel(commands, server, refused, topics.command("gate", GATE)) == []


def test_an_account_outside_the_registry_can_do_nothing(connect: Callable[..., Probe]) -> None:
    server = connect(SERVER_IDS["ingest"])
    assert server.subscribe(ALL) == 1
    stranger = connect(UNLISTED)
    assert stranger.subscribe(ALL) == 1
    for topic in (topics.position(UNLISTED), topics.passage(UNLISTED)):
        assert stranger.publish(topic, _payload()) == NOT_AUTHORIZED
    command = _payload()
    assert connect(SERVER_IDS["commands"]).publish(topics.command("truck", UNLISTED), command) == 0
    truck = connect(TRUCK)
    sentinel = _payload()
    assert truck.publish(topics.position(TRUCK), sentinel) == 0
    server.wait_for(topics.position(TRUCK), sentinel)
    assert stranger.messages == []
    assert [p for _, p in server.messages] == [command, sentinel]


def test_client_ids_are_bound_to_accounts(site: Site, connect: Callable[..., Probe]) -> None:
    """A device presenting a server connection's client id, or another device's, gets
    its own account's session: the others stay connected and keep receiving."""
    servers = {name: connect(account) for name, account in SERVER_IDS.items()}
    assert servers["ingest"].subscribe(ALL) == 1
    other = connect(OTHER_TRUCK)
    impostors = []
    for victim in [*SERVER_IDS.values(), OTHER_TRUCK]:
        # With certificates it may even send the victim's user name: the broker takes
        # the certificate's. With passwords it cannot (it has not the victim's).
        over = {"username": victim} if site.mode == "tls" else {}
        impostor = connect(TRUCK, client_id=victim, **over)
        impostors.append(impostor)
        assert impostor.publish(topics.position(victim), _payload()) == NOT_AUTHORIZED
    payload = _payload()
    assert other.publish(topics.position(OTHER_TRUCK), payload) == 0
    servers["ingest"].wait_for(topics.position(OTHER_TRUCK), payload)
    for name, probe in {**servers, "other truck": other}.items():
        assert probe.connected and probe.disconnects == [], name
    log = site.log()
    for victim in [*SERVER_IDS.values(), OTHER_TRUCK]:
        assert f" as {victim} (" in log  # the victims' own connections
    assert log.count(f" as {TRUCK} (") >= len(impostors)  # every impostor was TRUCK


def test_an_accounts_session_persists_whatever_client_id_it_sends(
    connect: Callable[..., Probe], site: Site
) -> None:
    """The agents' persistent sessions: a command queued while a truck is away is
    delivered when it comes back, under any configured client id (the account's)."""
    truck = site.probe(OTHER_TRUCK, client_id="configured-id-1")
    assert truck.connect() == 0
    assert truck.subscribe(topics.command("truck", OTHER_TRUCK)) == 1
    truck.close()
    queued = _payload()
    assert (
        connect(SERVER_IDS["commands"]).publish(topics.command("truck", OTHER_TRUCK), queued) == 0
    )
    back = site.probe(OTHER_TRUCK, client_id="another-configured-id")
    try:
        assert back.connect() == 0
        back.wait_for(topics.command("truck", OTHER_TRUCK), queued)
    finally:
        back.close()


def test_wrong_credentials_are_refused(site: Site, pki: Path) -> None:
    attempts: list[Probe] = []
    if site.mode == "tls":
        no_cert = Credentials(ca_file=pki / "ca" / "ca.crt")
        foreign = Credentials(
            ca_file=pki / "ca" / "ca.crt",
            cert_file=pki / "foreign" / f"{TRUCK}.crt",
            key_file=pki / "foreign" / f"{TRUCK}.key",
        )
        plain = Credentials(username=TRUCK, password="whatever")  # no TLS at all
        attempts = [
            Probe(site.broker.host, site.broker.port, TRUCK, c) for c in (no_cert, foreign, plain)
        ]
    else:
        wrong = Credentials(username=TRUCK, password=password_of(OTHER_TRUCK))
        anonymous = Credentials()
        server_name = Credentials(username=SERVER_IDS["passages"], password=password_of(TRUCK))
        attempts = [
            Probe(site.broker.host, site.broker.port, TRUCK, wrong),
            Probe(site.broker.host, site.broker.port, TRUCK, anonymous),
            Probe(site.broker.host, site.broker.port, SERVER_IDS["passages"], server_name),
        ]
    for probe in attempts:
        try:
            assert probe.connect(timeout=3.0) != 0, probe.credentials
        finally:
            probe.close()


# ---- the server's connections, each under its own account --------------------------


def _edge_settings(site: Site, account: str) -> BrokerSettings:
    """How a device connects with the project's own client (`contract.mqtt_client`)."""
    creds = site.credentials(account)
    if site.mode == "tls":
        return BrokerSettings(
            host=site.broker.host,
            port=site.broker.port,
            tls=True,
            ca_file=creds.ca_file,
            cert_file=creds.cert_file,
            key_file=creds.key_file,
        )
    secret = site.folder / "secrets" / account
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(password_of(account))
    return BrokerSettings(
        host=site.broker.host, port=site.broker.port, username=account, password_file=secret
    )


def _server_config(site: Site, tmp_path: Path) -> ServerConfig:
    key_file = tmp_path / "server.pem"
    key_file.write_bytes(private_key_to_pem(generate_private_key()))
    accounts: dict[str, BrokerAccount] = {}
    for name, account in SERVER_IDS.items():
        creds = _edge_settings(site, account)
        accounts[name] = BrokerAccount(
            password_file=creds.password_file, cert_file=creds.cert_file, key_file=creds.key_file
        )
    return ServerConfig(
        broker=BrokerSettings(
            host=site.broker.host,
            port=site.broker.port,
            client_id=SERVER,
            tls=site.mode == "tls",
            ca_file=site.folder / "ca" / "ca.crt" if site.mode == "tls" else None,
        ),
        broker_accounts=BrokerAccounts(**accounts),
        http=HttpSettings(port=0),
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
        signing_key_file=key_file,
    )


@pytest.mark.timeout(90)
async def test_the_server_works_under_its_connections_accounts(site: Site, tmp_path: Path) -> None:
    """The whole server (`serve`) on the secured broker: its four connections come up
    under their own accounts; a truck's position is stored; a gate's passage is
    answered on the gate's command topic (passage ingest → gate command publisher)."""
    config = _server_config(site, tmp_path)
    ready = asyncio.Event()
    server = asyncio.create_task(serve(config, ready))
    store = Store.open(config.storage.url)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with (
            make_client(_edge_settings(site, GATE), f"ignored-{uuid.uuid4().hex[:6]}") as gate,
            make_client(_edge_settings(site, TRUCK), TRUCK) as truck,
        ):
            await gate.subscribe(topics.command("gate", GATE), qos=1)
            now = format_ts(utc_now())
            position = {
                "node_id": TRUCK,
                "seq": 1,
                "ts": now,
                "fix": "3d",
                "lat": 23.1,
                "lon": 113.4,
            }
            await truck.publish(topics.position(TRUCK), json.dumps(position).encode(), qos=1)
            passage = {"node_id": GATE, "seq": 1, "ts": now, **passage_fields("P-SEC-1")}
            await gate.publish(topics.passage(GATE), json.dumps(passage).encode(), qos=1)
            async with asyncio.timeout(10):
                async for message in gate.messages:
                    # The account's persistent session may also hold what earlier
                    # tests sent it (other topics, payloads that are not JSON).
                    assert isinstance(message.payload, bytes)
                    if message.topic.value == topics.command("gate", GATE) and (
                        b'"P-SEC-1"' in message.payload
                    ):
                        break
            deadline = asyncio.get_running_loop().time() + 10
            while store.message_count() < 2:  # the position and the passage
                assert asyncio.get_running_loop().time() < deadline, "not stored in time"
                await asyncio.sleep(0.05)
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        store.close()
    log = site.log()
    for account in SERVER_IDS.values():
        assert f" as {account} (" in log and f"u'{account}'" in log, account
