"""The JT/T 808 gateway: device listeners → sessions → store → MQTT, and commands back down.

One asyncio process, one `TaskGroup` of named tasks: the group committer of the store,
the MQTT uplink, the plain and TLS listeners, and housekeeping. Each node's
`availability` (retained) and device `health` go through the store like its reports:
`online` when its first device authenticates, `offline` when its last one leaves.
Signed truck commands are verified per node by `edge.commands.CommandHandler` (the
truck agent's verifier: signature, addressee, expiry, nonce) and carried to the lock as
the lock profile's 0x8900 command; its answer (matched by serial and command code,
`edge.jt808.session`) becomes `command/result`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Any

from contract import topics
from contract.cellular_registry import (
    CellularDevice,
    CellularRegistry,
    DeclaredLocks,
    map_declared_locks,
    phone_key,
)
from contract.ids import format_ts, utc_now
from contract.payloads import SignedCommand, TruckCommand
from contract.signing import load_verify_key
from devices.elock import profile
from devices.elock.block import BondWatchBlock
from devices.elock.bodies import TerminalResponse
from devices.elock.exchange import TERMINAL_RESULTS
from edge.commands import CommandHandler, ExecOutcome, unseal_token
from edge.jt808.config import GatewayConfig
from edge.jt808.declared import DeclaredLists
from edge.jt808.metrics import Metrics, metrics_text
from edge.jt808.session import Closed, DeviceSession
from edge.jt808.store import GatewayStore, GroupCommitter, Item, Message, Stored
from edge.jt808.uplink import Uplink
from edge.nonces import SqliteNonceStore

log = logging.getLogger(__name__)

#: Housekeeping period: digests pruned, counters logged.
HOUSEKEEPING_S = 60.0


class NodeResults:
    """A node's `command/result` sink (`edge.commands.ResultSink`) in the gateway store."""

    def __init__(self, store: GatewayStore, node_id: str) -> None:
        self.store, self.node_id = store, node_id

    def enqueue(self, topic: str, payload: dict[str, Any]) -> int:
        return self.store.store(self.node_id, [Item([(topic, payload, False)])]).seqs[0]


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (one per connection)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Jt808Gateway:
    def __init__(self, config: GatewayConfig, registry: CellularRegistry) -> None:
        self.config = config
        self.registry = registry
        #: The devices that report for a node (a lock listed without one: once a
        #: declaration names it, `map_declared_locks`), by phone key, and the locks by id.
        self.devices: dict[str, CellularDevice] = registry.mapped({})
        self.locks = {d.lock_id: d for d in self.devices.values() if d.lock_id is not None}
        self.limits = config.limits
        self.secret = config.auth_secret_file.read_bytes().strip()
        if len(self.secret) < 16:
            raise ValueError(f"{config.auth_secret_file}: the secret needs at least 16 bytes")
        self.metrics = Metrics()
        settings = config.store
        self.outbox = GatewayStore(
            settings.path,
            config.gateway_id,
            settings.max_bytes,
            dedupe_window_s=settings.dedupe_window_s,
        )
        self.committer = GroupCommitter(self.outbox, settings.commit_window_s)
        key = load_verify_key(config.server_public_key)
        nonces = SqliteNonceStore(settings.nonce_path)
        self.handlers: dict[str, CommandHandler] = {}
        for node in registry.nodes():

            async def execute(
                command: SignedCommand, node_id: str = node
            ) -> tuple[ExecOutcome, str]:
                return await self._execute(node_id, command)

            self.handlers[node] = CommandHandler(
                "truck", node, key, nonces, NodeResults(self.outbox, node), execute
            )
        #: the open declarations of the fleet's trucks, from the server (`declared` lists)
        self.declared = DeclaredLists(self.map_declared_locks, self.metrics.declared_refused)
        self.uplink = Uplink(
            config.broker,
            config.gateway_id,
            self.outbox,
            registry.nodes(),
            self._on_command,
            declared=self.declared,
            fleet=registry.fleet,
            max_inflight=settings.max_inflight,
            ack_timeout_s=settings.ack_timeout_s,
            replay_after_s=settings.replay_after_s,
        )
        self.sessions: dict[str, DeviceSession] = {}
        #: Every open connection, authenticated or not (the reaper's list).
        self.connections: set[DeviceSession] = set()
        self._node_devices: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ports: dict[str, int] = {}
        self.ready = asyncio.Event()

    # -- the hub of the sessions ----------------------------------------------------------

    async def store(self, node_id: str, items: Sequence[Item]) -> Stored:
        return await self.committer.submit(node_id, items)

    def _background_store(self, node_id: str, messages: list[Message]) -> None:
        """Queue the gateway's own messages for `node_id` (in order with its reports)."""
        future = self.committer.enqueue(node_id, [Item(messages)])

        def report(done: asyncio.Future[Stored]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("node %s: availability/health not stored: %s", node_id, done.exception())

        future.add_done_callback(report)

    def _node_state(self, device: CellularDevice, online: bool, detail: str) -> list[Message]:
        now = format_ts(utc_now())
        node = device.node
        health = {
            "ts": now,
            "device": "lock" if device.kind == "lock" else "gnss",
            "status": "ok" if online else "down",
            "detail": detail[:1000],
        }
        messages: list[Message] = [(topics.health("truck", node), health, False)]
        devices = self._node_devices.setdefault(node, set())
        first_or_last = not devices
        if first_or_last:
            availability = {"ts": now, "state": "online" if online else "offline"}
            messages.insert(
                0 if online else 1, (topics.availability("truck", node), availability, True)
            )
        return messages

    def attach(self, session: DeviceSession) -> None:
        device = session.device
        assert device is not None
        key = phone_key(device.phone)
        old = self.sessions.get(key)
        if old is not None and old is not session:
            log.info("%r replaces %r", session, old)
            old.abort("replaced")  # its run() ends; detach leaves the node to the new one
        self.sessions[key] = session
        self.metrics.authenticated = len(self.sessions)
        devices = self._node_devices.setdefault(device.node, set())
        if key not in devices:
            messages = self._node_state(device, True, f"connected from {session.peer}")
            devices.add(key)
            self._background_store(device.node, messages)
        log.info(
            "node %s: %s %s connected from %s",
            device.node,
            device.kind,
            device.phone,
            session.peer,
        )

    def detach(self, session: DeviceSession, reason: str) -> None:
        device = session.device
        assert device is not None
        key = phone_key(device.phone)
        if self.sessions.get(key) is not session:
            return  # replaced by a newer connection of the same device
        del self.sessions[key]
        self.metrics.authenticated = len(self.sessions)
        devices = self._node_devices.setdefault(device.node, set())
        devices.discard(key)
        messages = self._node_state(device, False, f"connection closed: {reason}")
        self._background_store(device.node, messages)
        log.info("node %s: %s %s disconnected (%s)", device.node, device.kind, device.phone, reason)

    def map_declared_locks(self, declarations: Iterable[DeclaredLocks]) -> list[str]:
        """Map the registry's locks listed without a node to the trucks the open
        `declarations` name them for (`contract.cellular_registry.map_declared_locks`);
        a connected lock whose node changes is disconnected, to authenticate again for
        its new node (its unanswered reports go there). Returns the problems, logged."""
        current = {lock: d.node_id for lock, d in self.locks.items() if d.node_id is not None}
        mapping, problems = map_declared_locks(self.registry, declarations, current)
        for problem in problems:
            log.warning("gateway %s: %s", self.config.gateway_id, problem)
        devices = self.registry.mapped(mapping)
        for key, session in list(self.sessions.items()):
            device, now = session.device, devices.get(key)
            if device is not None and (now is None or now.node_id != device.node_id):
                log.info(
                    "lock %s: declared for %s now, was %s: reconnects",
                    device.lock_id,
                    now.node_id if now is not None else "no truck",
                    device.node_id,
                )
                session.abort("remapped")
        self.devices = devices
        self.locks = {d.lock_id: d for d in devices.values() if d.lock_id is not None}
        return problems

    # -- commands -------------------------------------------------------------------------

    async def _on_command(self, node_id: str, raw: bytes) -> None:
        handler = self.handlers.get(node_id)
        if handler is None:
            return
        # Run apart: a lock taking seconds to answer must not hold up the acks.
        task = asyncio.get_running_loop().create_task(handler.handle(raw))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, node_id: str, command: SignedCommand) -> tuple[ExecOutcome, str]:
        assert isinstance(command, TruckCommand)
        device = self.locks.get(command.lock_id)
        if device is None or device.node != node_id:
            return "refused", f"lock {command.lock_id} is not a cellular lock of {node_id}"
        session = self.sessions.get(phone_key(device.phone))
        if session is None:
            return "failed", f"lock {command.lock_id} is not connected to the gateway"
        if command.action == "query":
            block = BondWatchBlock(lock_id=command.lock_id, command=profile.COMMAND_CODES["query"])
        else:
            try:
                token = unseal_token(command)
            except ValueError as err:
                return "refused", str(err)
            block = BondWatchBlock(
                lock_id=command.lock_id,
                command=profile.COMMAND_CODES["unseal"],
                trip_id=command.trip_id,
                token=token,
            )
        try:
            answer, attempts = await session.command(block)
        except Closed as closed:
            return "failed", (
                f"the connection of lock {command.lock_id} closed ({closed.reason}) while the "
                "command waited for its answer: whether the lock acted is unknown"
            )
        if answer is None:
            return "failed", f"no answer from lock {command.lock_id} after {attempts} attempts"
        if isinstance(answer, TerminalResponse):
            name = TERMINAL_RESULTS.get(answer.result, f"result {answer.result}")
            return "failed", f"lock {command.lock_id} rejected the command frame: {name} (0x0001)"
        result = answer.command_result
        assert result is not None  # a result block of this command (`is_result_of`)
        outcome: ExecOutcome = profile.RESULT_BY_CODE.get(result.result, "failed")
        return outcome, result.reason_name or f"lock {command.lock_id} {answer.state_name}"

    # -- running --------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics = self.metrics
        if metrics.connections_open >= self.limits.max_connections:
            metrics.closed["too_many_connections"] += 1
            writer.close()
            return
        metrics.connections_open += 1
        metrics.connections_total += 1
        session = DeviceSession(
            self,
            reader,
            writer,
            command_timeout_s=self.config.downlink.ack_timeout_s,
            command_retries=self.config.downlink.retries,
        )
        self.connections.add(session)
        try:
            await session.run()
        except Exception:  # a bug in one session must not take the listener down
            log.exception("%r: session failed", session)
        finally:
            self.connections.discard(session)
            metrics.connections_open -= 1

    async def _metrics_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """`GET /metrics` → Prometheus text; anything else → 404. One request per connection."""
        try:
            async with asyncio.timeout(5.0):
                request = await reader.readuntil(b"\r\n\r\n")
            if request.startswith(b"GET /metrics "):
                count, size = self.outbox.counts()
                extra = {
                    "store_messages": float(count),
                    "store_bytes": float(size),
                    "mqtt_connected": float(self.uplink.connected),
                    "mqtt_published_total": float(self.uplink.drain.published_total),
                    "mqtt_resent_total": float(self.uplink.drain.resent_total),
                    "server_acked_total": float(self.uplink.server_acked_total),
                    "declared_trucks": float(len(self.declared.lists)),
                }
                body = metrics_text(self.metrics, extra).encode()
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            else:
                body, head = b"not found\n", b"HTTP/1.1 404 Not Found\r\n"
            writer.write(
                head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    async def _reaper(self) -> None:
        """Close connections past their deadline (`DeviceSession.expired`)."""
        period = min(1.0, self.limits.auth_timeout_s / 4, self.limits.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for session in list(self.connections):
                reason = session.expired(now)
                if reason is not None:
                    log.info("closing %r: %s", session, reason)
                    session.abort(reason)

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self.config.listen.tls
        if tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if tls.ca_file is not None:
            context.load_verify_locations(cafile=str(tls.ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            pruned = await asyncio.to_thread(self.outbox.prune_seen)
            count, size = self.outbox.counts()
            log.info(
                "gateway %s: %s; store %d messages (%d bytes), %d digests pruned",
                self.config.gateway_id,
                self.metrics.summary(),
                count,
                size,
                pruned,
            )

    async def run(self) -> None:
        """Serve until cancelled."""
        limit = raise_fd_limit()
        if limit < self.limits.max_connections + 1024:
            log.warning(
                "open-file limit %d is below max_connections %d + 1024: raise LimitNOFILE",
                limit,
                self.limits.max_connections,
            )
        listen = self.config.listen
        servers: list[asyncio.Server] = []
        try:
            if listen.port is not None:
                server = await asyncio.start_server(
                    self._client, listen.host, listen.port, backlog=4096, limit=16384
                )
                servers.append(server)
                self.ports["tcp"] = server.sockets[0].getsockname()[1]
            context = self._tls_context()
            if context is not None and listen.tls is not None:
                server = await asyncio.start_server(
                    self._client,
                    listen.host,
                    listen.tls.port,
                    ssl=context,
                    ssl_handshake_timeout=10.0,
                    backlog=4096,
                    limit=16384,
                )
                servers.append(server)
                self.ports["tls"] = server.sockets[0].getsockname()[1]
            if self.config.metrics is not None:
                server = await asyncio.start_server(
                    self._metrics_client, self.config.metrics.host, self.config.metrics.port
                )
                servers.append(server)
                self.ports["metrics"] = server.sockets[0].getsockname()[1]
            log.info(
                "gateway %s listening on %s (%s) for %d devices of %d nodes",
                self.config.gateway_id,
                listen.host,
                ", ".join(f"{k} {v}" for k, v in self.ports.items()),
                len(self.devices),
                len(self.handlers),
            )
            self.ready.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.committer.run(), name="jt808-store")
                group.create_task(self.uplink.run(), name="jt808-mqtt")
                group.create_task(self._housekeeping(), name="jt808-housekeeping")
                group.create_task(self._reaper(), name="jt808-reaper")
        finally:
            for server in servers:
                server.close()
            for session in list(self.connections):
                session.abort("stopping")
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(2.0):  # let each session end (and say why)
                    while self.connections:  # noqa: ASYNC110 - sessions leave the set
                        await asyncio.sleep(0.01)
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                self.outbox.close()
