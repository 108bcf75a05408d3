"""Hostile devices (issue 17): honest trucks drive their trips and pass the gates while
other accounts of the same site attack the server, all through a real Mosquitto with the
SHIPPED production settings — config/mosquitto/mosquitto.conf (TLS, client certificates
of the site CA as the only credential, the client id bound to the account), the shipped
access list config/mosquitto/bondwatch.acl and conf.d/bondwatch.conf (packet and queue
limits) — and a real `bondwatch-server` process whose four broker connections each use a
certificate of their own account.

- Honest: TRK-YUE-A01 drives a clean trip, TRK-YUE-B07 the route deviation of
  tests/server/scenarios/test_incidents.py, both from G-HUANGPU-1 to G-BAIYUN-1, each
  gate under its own account. B07 also sends some of its messages twice (an outbox that
  resends after a lost acknowledgement).
- Hostile, in parallel threads, round after round until the honest trips are over:
  TRK-YUE-C13 (a truck account) and G-NANSHA-2 (a gate account) send every class of
  bad message on their own topics, replay the honest nodes' earlier messages on their
  own topics and on the honest ones, publish on the other kind's topics and on the
  server's, send packets beyond the broker's `max_packet_size`, and connect under the
  client ids of the honest devices and of the server's four connections.

Every hostile message has its expected fate written here: refused by the broker (PUBACK
0x87, or a disconnect 0x95 for an oversize packet) or delivered to the server and refused
there with a given reason. The test then checks that the honest data is stored once and
in order, the alarms and gate decisions are those of a clean run and on time, every
delivered hostile message is counted by channel and reason in `/metrics` (read as a
signed-in account) and kept as a dead letter (admin REST) and nothing of it is stored,
streamed (WebSocket) or answered (gate commands, acknowledgements to the honest nodes),
and the server's broker sessions are never knocked off.

Device time: the simulated trucks run faster than the wall clock (tracks.py), so their
trips are started 90 minutes in the past: every `ts` an honest truck sends lies behind the
server's clock, and the server keeps its default `ingest.max_clock_ahead_s` (120 s), the
bound the hostile `ts` of 2099 breaks. Freshness at the gate is the server's receive time
(docs/gates.md), so an hour-old `ts` changes no decision.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from contract import topics
from contract.broker import DEFAULT_SERVER_CLIENT_ID, server_accounts
from contract.ids import format_ts, parse_ts, utc_now
from contract.limits import REJECT_REASONS
from contract.pki import create_ca, issue_broker, issue_client
from demo.accounts import create_demo_accounts
from devtools.broker import (
    SHIPPED_ACL,
    BrokerSecurity,
    BrokerTls,
    MosquittoBroker,
    find_mosquitto,
)
from devtools.processes import Child
from server.store.dead_letters import RAW_BYTES
from tests.broker_probe import NOT_AUTHORIZED, Credentials, Probe
from tests.lock_reports import write_lock_secrets
from tests.server.gates.conftest import passage_fields
from tests.server.scenarios.harness import Declared, World
from tests.server.scenarios.test_incidents import (
    PROFILE,
    assert_after,
    at,
    clearly_outside,
    detail,
    first_fix,
    the_alarm,
    types,
)
from tests.server.scenarios.tracks import DEMO, SCENARIO_LOCK_SECRETS, Message, Truck

pytestmark = pytest.mark.slow

# Accounts of the shipped site registry (config/mosquitto/site.yaml).
SERVER = DEFAULT_SERVER_CLIENT_ID
SERVER_IDS = server_accounts(SERVER)
CLEAN, DEVIATING = "TRK-YUE-A01", "TRK-YUE-B07"
ORIGIN, DESTINATION = "G-HUANGPU-1", "G-BAIYUN-1"
EVIL_TRUCK, EVIL_GATE = "TRK-YUE-C13", "G-NANSHA-2"
HONEST = (CLEAN, DEVIATING, ORIGIN, DESTINATION)
ACCOUNTS = (*SERVER_IDS.values(), *HONEST, EVIL_TRUCK, EVIL_GATE)

#: The honest trips begin this long before the wall clock (see the module's docstring).
STARTED_AGO = timedelta(minutes=90)
#: A gate decision (passage published → signed command received), as
#: tests/server/gates/test_broker.py bounds it.
DECISION_S = 1.0
#: From the PUBACK of the fix that raises the deviation to the alarm on the stream.
ALARM_S = 5.0
#: MQTT 5 reason codes a client sees when the broker cuts it off for a packet over
#: `max_packet_size`: 0x95 (packet too large) from the broker's DISCONNECT, or 0x80 when
#: the socket was closed while the client was still writing the packet.
CUT_OFF = {0x95, 0x80}

# The fate of a message: at the server (PUBACK 0), or refused by the broker.
DELIVERED = "delivered"
REFUSED_BY_ACL = "not_authorized"
REFUSED_BY_SIZE = "packet_too_large"


@dataclass(frozen=True)
class Sent:
    """One hostile message: what it was, what must become of it, what did."""

    account: str
    topic: str
    payload: bytes
    #: the server's rejection reason, or REFUSED_BY_ACL / REFUSED_BY_SIZE
    expected: str
    outcome: str

    @property
    def fate(self) -> str:
        """What was expected, in the terms of `outcome`."""
        return self.expected if self.expected in (REFUSED_BY_ACL, REFUSED_BY_SIZE) else DELIVERED

    @property
    def channel(self) -> str:
        return topics.parse(self.topic).channel


# ---------------------------------------------------------------- MQTT clients
@dataclass
class Device(Probe):
    """A device's connection (tests/broker_probe.Probe) that tells `on_message` of what
    it receives and reports the fate of what it sends."""

    on_message: Callable[[str, bytes], None] | None = None

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        super()._on_message(client, userdata, message)
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))

    def send(self, topic: str, payload: bytes, timeout: float = 10.0) -> str:
        """Publish at QoS 1: DELIVERED, REFUSED_BY_ACL or another reason code."""
        code = self.publish(topic, payload, timeout=timeout)
        return {0: DELIVERED, NOT_AUTHORIZED: REFUSED_BY_ACL}.get(code, f"puback {code:#x}")


def tls_credentials(pki: Path, account: str, username: str | None = None) -> Credentials:
    """`account`'s certificate; `username` is sent in CONNECT too (the broker ignores it:
    the certificate's common name is the account)."""
    return Credentials(
        username=username,
        ca_file=pki / "ca" / "ca.crt",
        cert_file=pki / "certs" / f"{account}.crt",
        key_file=pki / "certs" / f"{account}.key",
    )


def send_oversize(
    broker: MosquittoBroker, pki: Path, account: str, topic: str, data: bytes
) -> tuple[str, int | None]:
    """Publish one packet on a connection of its own, driven by hand (no automatic
    reconnect that would send it again): (REFUSED_BY_SIZE, the DISCONNECT's reason code)
    when the broker cuts the connection before acknowledging it — 0x95 (packet too large),
    or 0x80 when the broker closed the socket while the client was still writing the
    packet; the broker's log says why (checked by the test)."""
    creds = tls_credentials(pki, account)
    probe = Probe(broker.host, broker.port, account, creds)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=account, protocol=mqtt.MQTTv5)
    context = ssl.create_default_context(cafile=str(creds.ca_file))
    context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
    client.tls_set_context(context)
    client.on_connect = probe._on_connect
    client.on_disconnect = probe._on_disconnect
    client.on_publish = probe._on_publish
    client.connect(broker.host, broker.port, clean_start=False)
    deadline = time.monotonic() + 10
    while probe.connack is None and not probe.disconnects:
        assert time.monotonic() < deadline, "no CONNACK"
        client.loop(0.05)
    assert probe.connack == 0, probe.connack
    info = client.publish(topic, data, qos=1)
    while info.mid not in probe._acks and not probe.disconnects:
        assert time.monotonic() < deadline, "neither PUBACK nor DISCONNECT"
        client.loop(0.05)
    if probe.disconnects:
        return REFUSED_BY_SIZE, probe.disconnects[0]
    client.disconnect()
    code = probe._acks[info.mid]
    return {0: DELIVERED, NOT_AUTHORIZED: REFUSED_BY_ACL}.get(code, f"puback {code:#x}"), None


# ---------------------------------------------------------------- the world
@dataclass
class SecureWorld(World):
    """The scenario world (tests/server/scenarios/harness.py) on the production broker:
    every device and each server connection under its own certificate."""

    pki: Path = field(default_factory=Path)
    devices: dict[str, Device] = field(default_factory=dict)
    #: every passage the honest gates published, as sent
    passages_sent: list[tuple[str, bytes]] = field(default_factory=list)

    def device(self, account: str, subscribe: tuple[str, ...] = ()) -> Device:
        device = Device(
            self.broker.host,
            self.broker.port,
            account,
            tls_credentials(self.pki, account),
            on_message=self._on_device_message,
        )
        assert device.connect() == 0, account
        for topic in subscribe:
            assert device.subscribe(topic) == 1, topic
        self.devices[account] = device
        return device

    def _on_device_message(self, topic: str, payload: bytes) -> None:
        info = topics.parse(topic)
        if (info.kind, info.channel) == ("gate", "command"):
            self.commands.put((topic, payload))

    def start(self) -> SecureWorld:
        credentials = create_demo_accounts(f"sqlite:///{self.db}")
        self.token = credentials.integration_token
        self.passwords = credentials.passwords
        lock_secrets = write_lock_secrets(self.root / "lock-secrets.yaml", SCENARIO_LOCK_SECRETS)
        certs = self.pki / "certs"
        config = self.root / "server.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "broker": {
                        "host": self.broker.host,
                        "port": self.broker.port,
                        "client_id": SERVER,
                        "tls": True,
                        "ca_file": str(self.pki / "ca" / "ca.crt"),
                    },
                    "broker_accounts": {
                        name: {
                            "cert_file": str(certs / f"{account}.crt"),
                            "key_file": str(certs / f"{account}.key"),
                        }
                        for name, account in SERVER_IDS.items()
                    },
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "storage": {"url": f"sqlite:///{self.db}"},
                    "signing_key_file": str(self.key_file),
                    "gates": {"lock_secrets_file": str(lock_secrets)},
                    "geography": {
                        "profiles": str(DEMO / "profiles.yaml"),
                        "routes": [str(p) for p in sorted((DEMO / "routes").glob("*.geojson"))],
                        "zones": [str(DEMO / "zones.geojson")],
                    },
                    # ingest.max_clock_ahead_s stays at its default (120 s)
                    "ingest": {"batch_wait_ms": 5},
                }
            ),
            encoding="utf-8",
        )
        self.server = Child.python(
            "server", ["-m", "server", "--config", str(config)], self.root / "logs"
        ).start(ready="bondwatch-server")
        self.api = httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=20,
        )
        self.officer = self.login("officer")
        self.admin = self.login("admin")
        for gate in (ORIGIN, DESTINATION):
            self.device(gate, (topics.command("gate", gate),))
        self.wait_for(lambda: self.api.get("/healthz").json()["broker_connected"], 30)
        return self

    def stop(self) -> None:
        for device in self.devices.values():
            device.close()
        if getattr(self, "admin", None) is not None:
            self.admin.close()
        super().stop()

    def _publish_raw(self, topic: str, body: dict[str, Any]) -> None:
        """A gate's passage, on the gate's own connection."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        gate = topics.parse(topic).node_id
        assert self.devices[gate].send(topic, payload) == DELIVERED
        self.passages_sent.append((topic, payload))

    @property
    def server_log(self) -> str:
        assert self.server is not None
        return self.server.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        """/metrics, as a signed-in account (of any role) reads it: nobody else may."""
        assert httpx.get(f"{self.base}/metrics", timeout=10).status_code == 401
        res = self.officer.get(f"{self.base}/metrics")
        assert res.status_code == 200, res.text
        return res.text

    def dead_letters(self, node: str, reason: str) -> list[dict[str, Any]]:
        res = self.admin.get(
            "/dead-letters", params={"node": node, "reason": reason, "limit": 1000}
        )
        assert res.status_code == 200, res.text
        found: list[dict[str, Any]] = res.json()
        assert len(found) < 1000, "more than one page: send fewer"
        return found

    def stored_rows(self) -> list[tuple[str, int, str]]:
        """(node, seq, payload) of every stored edge message, in key order."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(
                "SELECT node_id, seq, payload FROM edge_messages ORDER BY node_id, seq"
            ).fetchall()


_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of metric `name` in Prometheus text format, by label set."""
    out: dict[frozenset[tuple[str, str]], float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and found.group(1) == name:
            out[frozenset(_LABEL.findall(found.group(2) or ""))] = float(found.group(3))
    return out


# ---------------------------------------------------------------- hostile messages
def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def fix(node: str, seq: int, ts: datetime, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_id": node,
        "seq": seq,
        "ts": format_ts(ts),
        "lat": 22.95,
        "lon": 113.52,
        "fix": "3d",
        "sats": 12,
        "hdop": 0.8,
        "systems": ["GPS", "BDS"],
    }
    body.update(over)
    return body


def passage(node: str, seq: int, ts: datetime, passage_id: str, **over: Any) -> dict[str, Any]:
    return {"node_id": node, "seq": seq, "ts": format_ts(ts), **passage_fields(passage_id, **over)}


DEEP_UNDER_LIMIT = b"[" * 1_000 + b"]" * 1_000  # 2,000 bytes: within every channel's size
DEEP_OVER_PACKET = b"[" * 100_000 + b"]" * 100_000  # 200 KB: beyond max_packet_size
DIGITS = b"7" * 5_000
Y2099 = datetime(2099, 1, 1, tzinfo=UTC)


def truck_round(
    n: int, replays: list[Message], passages: list[tuple[str, bytes]]
) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected fate) of one round of the hostile truck account."""
    node = EVIL_TRUCK
    own, health = topics.position(node), topics.health("truck", node)
    ts = utc_now() - timedelta(seconds=30)
    seq = 1_000 * n
    health_body = {
        "node_id": node,
        "seq": seq,
        "ts": format_ts(ts),
        "device": "gnss",
        "status": "ok",
    }
    out: list[tuple[str, bytes, str]] = [
        (own, raw(fix(node, seq + 1, ts)).replace(b'"fix"', b'"fix\xff"'), "not_utf8"),
        (own, b'{"node_id": "TRK-YUE-C13", "seq": ', "not_json"),
        (topics.command_result("truck", node), b"\x00garbage\x01", "not_json"),
        (own, DEEP_UNDER_LIMIT, "too_deep"),
        (health, raw(health_body)[:-1] + b', "x": ' + DEEP_UNDER_LIMIT + b"}", "too_deep"),
        (
            health,
            raw(health_body).replace(b'"seq": %d' % seq, b'"seq": ' + DIGITS),
            "number_too_long",
        ),
        (
            own,
            raw(fix(node, seq + 2, ts)).replace(b'"seq": %d' % (seq + 2), b'"seq": ' + DIGITS),
            "too_large",
        ),
        (own, raw(fix(node, seq + 3, ts)).replace(b"22.95", b"NaN"), "non_finite"),
        (own, raw(fix(node, seq + 4, ts)).replace(b"113.52", b"Infinity"), "non_finite"),
        (own, raw(fix(node, seq + 5, ts, sats="many", lat="north")), "invalid"),
        (own, raw(fix(node, seq + 6, ts, colour="red")), "invalid"),
        (own, raw(fix(node, seq + 7, ts, systems=["GPS"] * 9)), "invalid"),
        (
            topics.availability("truck", node),
            raw({"node_id": node, "seq": seq + 8, "ts": format_ts(ts), "state": "hacked"}),
            "invalid",
        ),
        (own, raw(fix(node, seq + 9, Y2099)), "clock_ahead"),
        (own, b"[1, 2]", "not_object"),
        (own, raw(fix(node, seq + 10, ts, pad="x" * 10_000)), "too_large"),
        # impersonation: another node id in the payload; the other kind's topics; the server's
        (own, raw(fix(CLEAN, seq + 11, ts)), "node_mismatch"),
        (topics.passage(node), raw(passage(node, seq + 12, ts, f"P-EVIL-{n}")), REFUSED_BY_ACL),
        (
            topics.passage(DESTINATION),
            raw(passage(DESTINATION, 9_000 + n, ts, f"P-EVIL-{n}")),
            REFUSED_BY_ACL,
        ),
        (topics.lane(node), b"{}", REFUSED_BY_ACL),
        (topics.command("truck", node), b"{}", REFUSED_BY_ACL),
        (topics.command("truck", CLEAN), b"{}", REFUSED_BY_ACL),
        (topics.ack("truck", CLEAN), b"{}", REFUSED_BY_ACL),
        # beyond the broker's packet size
        (own, DEEP_OVER_PACKET, REFUSED_BY_SIZE),
        (own, raw(fix(node, seq + 13, ts, systems=["GPS"] * 50_000)), REFUSED_BY_SIZE),
        (own, raw(fix(node, seq + 14, ts, pad="x" * 100_000)), REFUSED_BY_SIZE),
    ]
    # replays of the honest trucks' earlier messages: on this account's own topic (the
    # payload names the honest node) and on the honest node's topic
    for message in replays:
        mine = topics.build("truck", node, message.channel)  # type: ignore[arg-type]
        out.append((mine, message.body(), "node_mismatch"))
        out.append((message.topic, message.body(), REFUSED_BY_ACL))
    for topic, body in passages:
        out.append((topic, body, REFUSED_BY_ACL))
    return out


def gate_round(n: int, passages: list[tuple[str, bytes]]) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected fate) of one round of the hostile gate account."""
    node = EVIL_GATE
    own, lane = topics.passage(node), topics.lane(node)
    ts = utc_now() - timedelta(seconds=30)
    seq = 1_000 * n
    pid = f"P-EVIL-{node}-{n}"
    out: list[tuple[str, bytes, str]] = [
        (own, raw(passage(node, seq + 1, ts, pid, images=["gate://x.jpg"] * 1_000)), "invalid"),
        (
            own,
            raw(passage(node, seq + 2, ts, pid)).replace(
                b'"seq": %d' % (seq + 2), b'"seq": ' + DIGITS
            ),
            "number_too_long",
        ),
        (
            own,
            raw(passage(node, seq + 3, ts, pid))[:-1] + b', "x": ' + DEEP_UNDER_LIMIT + b"}",
            "too_deep",
        ),
        (lane, b"[" * 30_000 + b"]" * 30_000, "too_large"),  # 60 KB: under the packet limit
        (
            own,
            raw(passage(node, seq + 4, ts, pid)).replace(b'"direction"', b'"dir\xc3\x28"'),
            "not_utf8",
        ),
        (own, raw(passage(node, seq + 5, ts, pid)).replace(b"0.98", b"NaN"), "non_finite"),
        (own, raw(passage(node, seq + 6, ts, pid, lane=["L1"])), "invalid"),
        (
            lane,
            raw(
                {
                    "node_id": node,
                    "seq": seq + 7,
                    "ts": format_ts(ts),
                    "lane": "L1",
                    "state": "hold",
                    "signal": "green",
                }
            ),
            "invalid",
        ),
        (own, raw(passage(node, seq + 8, Y2099, pid)), "clock_ahead"),
        (own, b"null", "not_object"),
        (own, raw(passage(DESTINATION, seq + 9, ts, pid)), "node_mismatch"),
        (topics.passage(DESTINATION), raw(passage(DESTINATION, seq + 10, ts, pid)), REFUSED_BY_ACL),
        (topics.position(node), raw(fix(node, seq + 11, ts)), REFUSED_BY_ACL),
        (topics.position(CLEAN), raw(fix(CLEAN, seq + 12, ts)), REFUSED_BY_ACL),
        (topics.command("gate", node), b"{}", REFUSED_BY_ACL),
        (topics.command("gate", DESTINATION), b"{}", REFUSED_BY_ACL),
        (
            own,
            raw(passage(node, seq + 13, ts, pid, images=["gate://x.jpg"] * 50_000)),
            REFUSED_BY_SIZE,
        ),
        (own, DEEP_OVER_PACKET, REFUSED_BY_SIZE),
    ]
    # the honest gates' passages again: on this gate's topic, and on theirs
    for topic, body in passages:
        out.append((own, body, "node_mismatch"))
        out.append((topic, body, REFUSED_BY_ACL))
    return out


@dataclass
class Attacker:
    """One hostile account sending round after round until told to stop."""

    world: SecureWorld
    account: str
    kind: str
    stop: threading.Event
    sent: list[Sent] = field(default_factory=list)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    impostor_ids: list[str] = field(default_factory=list)
    #: connections the account made (each one shows in the broker's log under its name)
    connections: int = 0
    #: the broker's DISCONNECT reason codes for the oversize packets
    disconnect_codes: list[int | None] = field(default_factory=list)

    def connect(self, client_id: str | None = None, username: str | None = None) -> Device:
        device = Device(
            self.world.broker.host,
            self.world.broker.port,
            client_id or self.account,
            tls_credentials(self.world.pki, self.account, username),
            on_message=lambda t, p: self.received.append((t, p)),
        )
        assert device.connect() == 0, (self.account, client_id)
        self.connections += 1
        return device

    def record(self, topic: str, payload: bytes, expected: str, outcome: str) -> None:
        self.sent.append(Sent(self.account, topic, payload, expected, outcome))

    def run(
        self, rounds: Callable[[int], list[tuple[str, bytes, str]]], victims: list[str]
    ) -> None:
        device = self.connect()
        # what the server would answer this node with, were it to answer
        assert device.subscribe(topics.command(self.kind, self.account)) == 1  # type: ignore[arg-type]
        n = 0
        while n < 3 or not self.stop.is_set():
            n += 1
            batch = rounds(n)
            for topic, payload, expected in batch:
                if expected != REFUSED_BY_SIZE:
                    self.record(topic, payload, expected, device.send(topic, payload))
            # one connection per account: the oversize ones go on a connection of their own
            device.close()
            for topic, payload, expected in batch:
                if expected == REFUSED_BY_SIZE:
                    outcome, code = send_oversize(
                        self.world.broker, self.world.pki, self.account, topic, payload
                    )
                    self.connections += 1
                    self.disconnect_codes.append(code)
                    self.record(topic, payload, expected, outcome)
            if n == 2:
                self.impersonate(victims, batch)
            device = self.connect()
            time.sleep(0.3)
        device.close()

    def impersonate(self, victims: list[str], batch: list[tuple[str, bytes, str]]) -> None:
        """Connect under each victim's client id (and user name, which the broker ignores
        with certificates): the account's own session; the victim's is not touched."""
        replay = next((t, p) for t, p, e in batch if e == "node_mismatch")
        for victim in victims:
            device = self.connect(client_id=victim, username=victim)
            self.impostor_ids.append(victim)
            victim_topic = (
                topics.position(victim) if victim.startswith("TRK") else topics.passage(victim)
            )
            self.record(
                victim_topic, replay[1], REFUSED_BY_ACL, device.send(victim_topic, replay[1])
            )
            self.record(*replay, "node_mismatch", device.send(*replay))
            time.sleep(0.2)  # stays a moment, as a session takeover would
            device.close()


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def world(tmp_path: Path) -> Iterator[SecureWorld]:
    """A site CA with a certificate per account, Mosquitto with the production listener
    options and the shipped ACL, and the server."""
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed")
    pki = tmp_path / "pki"
    create_ca(pki / "ca", "BondWatch hostile-devices site CA")
    issue_broker(pki / "ca", pki / "certs", ["127.0.0.1", "localhost"])
    for account in ACCOUNTS:
        issue_client(pki / "ca", pki / "certs", account)
    security = BrokerSecurity(
        tls=BrokerTls(
            pki / "ca" / "ca.crt", pki / "certs" / "broker.crt", pki / "certs" / "broker.key"
        )
    )
    assert security.acl_file == SHIPPED_ACL
    with MosquittoBroker(tmp_path / "mosquitto", security=security) as broker:
        running = SecureWorld(tmp_path, broker, pki=pki)
        try:
            yield running.start()
        finally:
            running.stop()


# ---------------------------------------------------------------- helpers of the test
@dataclass
class Honest:
    """An honest truck: its simulation, declaration, connection, and when each of its
    messages was acknowledged by the broker."""

    truck: Truck
    declared: Declared
    device: Device
    sent: list[Message] = field(default_factory=list)
    acked_at: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0

    def publish(self, messages: list[Message], *, again: bool = False) -> None:
        for message in messages:
            assert self.device.send(message.topic, message.body()) == DELIVERED
            if again:
                self.duplicates += 1
            else:
                self.acked_at[message.seq] = time.monotonic()
                self.sent.append(message)


def decide(world: SecureWorld, declared: Declared, gate: str, at: datetime) -> tuple[Any, float]:
    """A passage of the declared truck at `gate`: the verified command and its latency."""
    started = time.monotonic()
    command = world.pass_gate(declared, gate, at)
    return command, time.monotonic() - started


def drive(car: Honest, chunk: int = 5, pause_s: float = 0.2) -> None:
    """Publish the rest of the trip a few messages at a time; every tenth chunk, the one
    before is sent once more (duplicates, as an outbox resends them)."""
    messages = car.truck.take()
    previous: list[Message] = []
    for n, start in enumerate(range(0, len(messages), chunk), start=1):
        part = messages[start : start + chunk]
        car.publish(part)
        if n % 10 == 0:
            car.publish(previous, again=True)
        previous = part
        time.sleep(pause_s)


@dataclass
class Watch:
    """The server seen from outside while the attack goes on: /healthz sampled, the
    WebSocket stream recorded."""

    world: SecureWorld
    stop: threading.Event = field(default_factory=threading.Event)
    health: list[bool] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def sample_health(self) -> None:
        with httpx.Client(base_url=self.world.base, timeout=5) as client:
            while not self.stop.is_set():
                self.health.append(client.get("/healthz").json()["broker_connected"] is True)
                time.sleep(0.1)

    def follow_stream(self, ready: threading.Event) -> None:
        url = f"ws://127.0.0.1:{self.world.http_port}/api/v1/stream?token={self.world.token}"
        with ws_connect(url, open_timeout=10) as ws:
            ready.set()
            while not self.stop.is_set():
                try:
                    text = ws.recv(timeout=0.2)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    raise AssertionError("the stream was closed") from None
                self.events.append((time.monotonic(), json.loads(text)))

    def alarm_seen(self, trip_id: str, alarm_type: str) -> float | None:
        for when, event in list(self.events):
            data = event["data"]
            if (
                event["type"] == "alarm"
                and data["trip_id"] == trip_id
                and data["type"] == alarm_type
            ):
                return when
        return None


# ---------------------------------------------------------------- the test
@pytest.mark.timeout(240)
def test_hostile_devices_change_nothing_but_counters(world: SecureWorld) -> None:
    start = (utc_now() - STARTED_AGO).replace(microsecond=0)
    watch = Watch(world)
    attack_over = threading.Event()
    evil_truck = Attacker(world, EVIL_TRUCK, "truck", attack_over)
    evil_gate = Attacker(world, EVIL_GATE, "gate", attack_over)
    cars: dict[str, Honest] = {}
    replayable: list[Message] = []  # the honest trucks' messages sent so far

    def truck_batch(n: int) -> list[tuple[str, bytes, str]]:
        return truck_round(n, replayable[-3:], world.passages_sent[-2:])

    def gate_batch(n: int) -> list[tuple[str, bytes, str]]:
        return gate_round(n, world.passages_sent[-2:])

    pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="hostile-devices")
    ready = threading.Event()
    watching = [pool.submit(watch.follow_stream, ready), pool.submit(watch.sample_health)]
    decisions: list[float] = []
    try:
        assert ready.wait(10)
        logs_before = len(world.server_log), len(world.broker.log_path.read_text())
        # The attackers start before the first departure and go on until the last arrival.
        victims = list(SERVER_IDS.values())
        attackers = [
            pool.submit(evil_truck.run, truck_batch, [CLEAN, DEVIATING, *victims]),
            pool.submit(evil_gate.run, gate_batch, [ORIGIN, DESTINATION, *victims]),
        ]
        try:
            # ---- departures: both trucks sealed, queueing in the Huangpu site, then its gate
            for queued, (node, seed) in enumerate(((CLEAN, 3), (DEVIATING, 21))):
                truck = Truck(node, "R-HP-BY", start, seed=seed)
                truck.lock("sealed", "sealed")
                truck.park(60 + 90 * queued)
                declared = world.declare(truck)
                subscribe = (topics.ack("truck", node), topics.command("truck", node))
                car = cars[node] = Honest(truck, declared, world.device(node, subscribe))
                car.publish(truck.take())
                world.wait_for(lambda c=car: world.stored(c.truck.node_id, c.sent[-1].seq), 20)
                command, took = decide(world, declared, ORIGIN, truck.now)
                assert (command.action, command.reasons) == ("open", []), node
                decisions.append(took)
                replayable.extend(car.sent)

            # ---- the trips: one clean, one with the route deviation of test_incidents
            clean, deviating = cars[CLEAN], cars[DEVIATING]
            clean.truck.along(clean.truck.route.length_m, 72).park(20)
            dev = deviating.truck
            dev.along(12_000, 70)
            left = dev.now
            dev.sidestep(1_500, 3_000, 50)  # a parallel road 1.5 km away, 3 km long
            back = dev.now
            dev.along(dev.s + 6_000, 70)  # type: ignore[operator]
            dev.along(dev.route.length_m, 70).park(20)
            assert max(c.truck.now for c in cars.values()) < utc_now() - timedelta(minutes=5)
            for future in [pool.submit(drive, car) for car in cars.values()]:
                future.result(timeout=120)
            replayable.extend(m for car in cars.values() for m in car.sent[-3:])

            # ---- all judged: nothing for the clean trip, the deviation raised on time
            judged = sum(len(car.sent) for car in cars.values())
            world.wait_for(lambda: judged_count(world) == judged, 30, interval=0.2)
            assert world.alarms(clean.declared.declaration_id) == []
            alarm_latency = check_deviation(world, watch, deviating, left, back)

            # ---- arrivals at Baiyun, release records on file
            for car in cars.values():
                world.release(car.declared, car.truck.now)
            command, took = decide(world, clean.declared, DESTINATION, clean.truck.now)
            assert (command.action, command.reasons) == ("open", [])
            decisions.append(took)
            command, took = decide(world, deviating.declared, DESTINATION, dev.now)
            assert (command.action, command.reasons) == (
                "hold",
                ["unresolved alarm ROUTE_DEVIATION"],
            )
            decisions.append(took)
        finally:
            attack_over.set()
            for future in attackers:
                future.result(timeout=120)
    finally:
        watch.stop.set()
        attack_over.set()
        pool.shutdown(wait=True)
    for future in watching:
        future.result()
    assert max(decisions) < DECISION_S, decisions
    sent = evil_truck.sent + evil_gate.sent
    print(
        f"hostile messages: {len(sent)} ({Counter(s.outcome for s in sent)}); gate decisions "
        f"{[round(d, 3) for d in decisions]} s; deviation alarm {alarm_latency:.3f} s"
    )

    reached = check_fates(sent)
    check_refused_counted_and_kept(world, reached, cars)
    check_honest_data(world, cars)
    check_alarms(world, watch, deviating.declared.declaration_id)
    check_nothing_answered(world, cars, [evil_truck, evil_gate])
    check_sessions(world, watch, reached, [evil_truck, evil_gate], *logs_before)


def judged_count(world: SecureWorld) -> float | None:
    """Messages the judge worker has judged (every fresh one of the judged channels)."""
    return samples(world.metrics(), "bondwatch_judge_messages_total").get(frozenset())


def check_deviation(
    world: SecureWorld, watch: Watch, car: Honest, left: datetime, back: datetime
) -> float:
    """The deviation alarm as tests/server/scenarios/test_incidents.py checks it (raised
    within its persistence of the first clearly outside fix, cleared once back); and on
    time on the wall clock: the seconds from the broker's PUBACK of the fix that raised
    it to the alarm on the WebSocket stream."""
    trip_id = car.declared.declaration_id
    world.wait_for(lambda: watch.alarm_seen(trip_id, "ROUTE_DEVIATION") is not None, 10)
    alarms = world.alarms(trip_id)
    assert types(alarms) == {"ROUTE_DEVIATION"}
    alarm = the_alarm(alarms, "ROUTE_DEVIATION")
    out = first_fix(car.truck, left, clearly_outside)
    assert detail(alarm)["outside_since"] == out.ts.isoformat()
    assert_after(at(alarm), out.ts, PROFILE.deviation_persistence_s)
    assert alarm["status"] == "cleared_unack" and back < at(alarm, "cleared_at")
    raised_by = next(m for m in car.sent if m.channel == "position" and m.ts == at(alarm))
    seen = watch.alarm_seen(trip_id, "ROUTE_DEVIATION")
    assert seen is not None
    latency = seen - car.acked_at[raised_by.seq]
    assert 0 < latency < ALARM_S, latency
    return latency


def check_fates(sent: list[Sent]) -> list[Sent]:
    """Every hostile message met its expected fate at the broker; those that reached the
    server, and they cover every class of bad payload."""
    assert [(s.topic, s.expected, s.outcome) for s in sent if s.outcome != s.fate] == []
    fates = Counter(s.outcome for s in sent)
    assert fates[REFUSED_BY_ACL] > 0 and fates[REFUSED_BY_SIZE] > 0 and fates[DELIVERED] > 0
    reached = [s for s in sent if s.outcome == DELIVERED]
    every_class = {r for r in REJECT_REASONS if r not in ("bad_topic", "internal")}
    assert {s.expected for s in reached} == every_class
    return reached


def check_refused_counted_and_kept(
    world: SecureWorld, reached: list[Sent], cars: dict[str, Honest]
) -> None:
    """Each hostile message that reached the server is counted in /metrics by channel and
    reason, and kept as a dead letter with its raw bytes (cut at RAW_BYTES); the honest
    messages are counted as stored, their resent copies as duplicates."""

    def refused() -> dict[tuple[str, str], float]:
        found = samples(world.metrics(), "bondwatch_ingest_rejected_total")
        return {(dict(k)["channel"], dict(k)["reason"]): v for k, v in found.items()}

    world.wait_for(lambda: sum(refused().values()) >= len(reached), 20, interval=0.2)
    time.sleep(0.5)  # nothing more comes
    assert refused() == dict(Counter((s.channel, s.expected) for s in reached))
    text = world.metrics()
    assert sum(samples(text, "bondwatch_passages_dropped_total").values()) == 0
    outcomes = {
        dict(k).get("outcome"): v
        for k, v in samples(text, "bondwatch_ingest_messages_total").items()
        if "reason" not in dict(k)
    }
    assert outcomes.get("stored") == sum(len(car.sent) for car in cars.values())
    assert outcomes.get("duplicate") == sum(car.duplicates for car in cars.values()) > 0

    for account in (EVIL_TRUCK, EVIL_GATE):
        mine = [s for s in reached if s.account == account]
        letters = [
            d for reason in {s.expected for s in mine} for d in world.dead_letters(account, reason)
        ]
        kept = Counter(
            (d["topic"], d["channel"], d["reason"], base64.b64decode(d["raw_base64"]), d["size"])
            for d in letters
        )
        assert kept == Counter(
            (s.topic, s.channel, s.expected, s.payload[:RAW_BYTES], len(s.payload)) for s in mine
        )
        assert all(d["truncated"] == (d["size"] > RAW_BYTES) for d in letters)


def check_honest_data(world: SecureWorld, cars: dict[str, Honest]) -> None:
    """The honest data is stored, once and as sent, and the trips' tracks in fix-time
    order; nothing of the hostile accounts is stored."""
    rows = world.stored_rows()
    assert {node for node, _, _ in rows} == set(HONEST)
    for node, car in cars.items():
        stored = [(seq, json.loads(p)) for n, seq, p in rows if n == node]
        assert stored == [(m.seq, m.payload) for m in sorted(car.sent, key=lambda m: m.seq)]
        assert [m.seq for m in car.sent] == sorted(m.seq for m in car.sent)  # sent in order
        trip = world.trip(car.declared.declaration_id, track=1)
        since, until = parse_ts(trip["started_at"]), parse_ts(trip["ended_at"] or format_ts(Y2099))
        track = trip["track"]
        assert [p["seq"] for p in track] == [
            m.seq for m in car.truck.fixes() if since <= m.ts <= until
        ]
        assert [p["ts"] for p in track] == sorted(p["ts"] for p in track)
    stored_passages = [json.loads(p) for n, _, p in rows if n in (ORIGIN, DESTINATION)]
    assert sorted(json.dumps(p, sort_keys=True) for p in stored_passages) == sorted(
        json.dumps(json.loads(b), sort_keys=True) for _, b in world.passages_sent
    )


def check_alarms(world: SecureWorld, watch: Watch, deviation_trip: str) -> None:
    """The alarms of the whole server, over REST and on the stream: the deviation, and one
    DEVICE_CLOCK_AHEAD per hostile account (their `ts` of 2099: a health alarm on
    `node:{id}`, docs/contract.md); and nothing else of the hostile accounts streamed."""
    expected = {
        ("ROUTE_DEVIATION", deviation_trip),
        ("DEVICE_CLOCK_AHEAD", f"node:{EVIL_TRUCK}"),
        ("DEVICE_CLOCK_AHEAD", f"node:{EVIL_GATE}"),
    }
    everything = world.api.get("/alarms", params={"limit": 1000}).json()
    assert sorted((a["type"], a["trip_id"], a["count"]) for a in everything) == sorted(
        (*pair, 1) for pair in expected
    )
    honest_passages = {json.loads(b)["passage_id"] for _, b in world.passages_sent}
    by_kind = Counter(e["type"] for _, e in watch.events)
    assert by_kind["position"] > 0 and by_kind["lane"] == 0
    for _, event in watch.events:
        data = event["data"]
        if event["type"] == "position":
            assert data["vehicle_id"] in (CLEAN, DEVIATING), data
        elif event["type"] == "passage":
            assert data["passage_id"] in honest_passages, data
        else:
            assert (data["type"], data["trip_id"]) in expected, data
    streamed = {e["data"]["passage_id"] for _, e in watch.events if e["type"] == "passage"}
    assert streamed == honest_passages


def acked_seqs(device: Device, kind: str) -> set[int]:
    """Every seq the server's acknowledgements to `device` so far name."""
    seqs: set[int] = set()
    for topic, payload in list(device.messages):
        if topic == topics.ack(kind, device.client_id):  # type: ignore[arg-type]
            for first, last in json.loads(payload)["ranges"]:
                seqs.update(range(first, last + 1))
    return seqs


def check_nothing_answered(
    world: SecureWorld, cars: dict[str, Honest], attackers: list[Attacker]
) -> None:
    """Gate commands only for the honest passages, and none to the hostile accounts;
    acknowledgements to the honest trucks for exactly what they sent."""
    honest_passages = {json.loads(b)["passage_id"] for _, b in world.passages_sent}
    for gate in (ORIGIN, DESTINATION):
        got = [json.loads(p)["passage_id"] for _, p in world.devices[gate].messages]
        assert len(got) == 2 and set(got) <= honest_passages, gate
    for attacker in attackers:
        assert attacker.received == [], attacker.account
    for node, car in cars.items():
        sent = {m.seq for m in car.sent}
        world.wait_for(lambda d=car.device, s=sent: acked_seqs(d, "truck") >= s, 10)
        assert acked_seqs(car.device, "truck") == sent, node
        assert {t for t, _ in car.device.messages} == {topics.ack("truck", node)}


def check_sessions(
    world: SecureWorld,
    watch: Watch,
    reached: list[Sent],
    attackers: list[Attacker],
    server_log_before: int,
    broker_log_before: int,
) -> None:
    """The server's four broker sessions were never knocked off, nor the honest devices';
    every impostor got its own account's session; every oversize packet cost its sender
    the connection; the server's log stayed small."""
    assert len(watch.health) > 50 and all(watch.health), Counter(watch.health)
    server_log = world.server_log[server_log_before:]
    for sign in ("lost the broker", "cannot reach the broker", "subscribed at", "connected to"):
        assert sign not in server_log, sign
    # each refusal logged at most once a minute per node and reason, in each of the two
    # processes that take edge messages (the gate worker takes the passages)
    pairs = {(s.account, s.expected) for s in reached}
    refusal_lines = server_log.count("refused a message on ")
    assert len(pairs) <= refusal_lines <= 2 * len(pairs), (refusal_lines, len(pairs))
    assert len(server_log) < 100_000, "the log grows with the attack"
    broker_log = world.broker.log_path.read_text()
    for account in SERVER_IDS.values():
        assert broker_log.count(f" as {account} (") == 1, account
        assert f"Client {account} " not in broker_log, account  # no takeover, no disconnect
    for account in HONEST:
        assert f"Client {account} " not in broker_log[broker_log_before:], account
    for attacker in attackers:
        assert len(attacker.impostor_ids) == 2 + len(SERVER_IDS)
        assert broker_log.count(f" as {attacker.account} (") == attacker.connections
        oversize = sum(1 for s in attacker.sent if s.outcome == REFUSED_BY_SIZE)
        assert set(attacker.disconnect_codes) <= CUT_OFF, attacker.disconnect_codes
        cut = f"Client {attacker.account} disconnected due to oversize packet"
        assert broker_log.count(cut) == oversize
