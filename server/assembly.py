"""How each server component is built from the configuration, in one place.

The server process (`server.app.ServerApp`) and its child processes (the gate worker,
`server.gates.worker`; the judge worker, `server.judge_worker`) build their components
with these same functions, each collaborator built once and passed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from server.alarms import Alarm, AlarmService
from server.alarms.effects import AlarmEffects
from server.broker_accounts import connection_id, connection_settings
from server.config import IngestSettings, ServerConfig
from server.declared import DeclaredPublisher
from server.gates.commands import CommandPublisher, CommandSigner, Publisher
from server.gates.service import GateService
from server.geo import Geography
from server.ingest import FreshHandler, Ingest, RejectHook, Writer
from server.judge import Judge
from server.lock_secrets import LockSecrets
from server.metrics import Metrics
from server.rules.profiles import CreditClass, CreditProfile, configured_profiles
from server.store import Store

#: A module-level function building the geography (for the tests; pickled to a child).
GeographyFactory = Callable[[], Geography]


def open_store(config: ServerConfig, checkpoints: bool = True) -> Store:
    """The store; its password from the environment variable `storage.password_env`.
    `checkpoints=False` in a child: the server process checkpoints SQLite's log."""
    name = config.storage.password_env
    password = os.environ.get(name) if name else None
    return Store.open(config.storage.url, password, checkpoints=checkpoints)


def load_geography(config: ServerConfig, factory: GeographyFactory | None = None) -> Geography:
    """Routes and zones of `config.geography` (or what `factory` builds)."""
    if factory is not None:
        return factory()
    return Geography.from_files(config.geography.routes, config.geography.zones)


def load_profiles(config: ServerConfig) -> dict[CreditClass, CreditProfile]:
    return configured_profiles(config.geography.profiles)


def load_lock_secrets(config: ServerConfig) -> LockSecrets:
    """The per-lock secrets (`gates.lock_secrets_file`); read once by the server process
    and handed to the judge, the gate service and the children."""
    return LockSecrets.load(config.gates.lock_secrets_file)


def alarm_service(store: Store, listener: Callable[[Alarm], None]) -> AlarmService:
    """The alarms over `store`; `listener` hears of every alarm changed."""
    alarms = AlarmService(store.engine)
    alarms.add_listener(listener)
    return alarms


def judge(
    config: ServerConfig,
    store: Store,
    geography: Geography,
    alarms: AlarmService,
    secrets: LockSecrets,
    owns: Callable[[str], bool] | None = None,
) -> Judge:
    """The trip rules over `store`, their effects applied to `alarms` (`owns`: the
    vehicles this judge judges, when it is one of several; None: all)."""
    return Judge(
        store,
        geography,
        load_profiles(config),
        AlarmEffects(alarms),
        lock_secrets=secrets,
        owns=owns,
    )


def command_publisher(config: ServerConfig, connection: str) -> CommandPublisher:
    """Commands out on a connection of their own (`connection`: its name in
    `server.broker_accounts`, for its own account and persistent session)."""
    return CommandPublisher(
        connection_settings(config.broker, config.broker_accounts, connection),
        connection_id(config.broker, connection),
    )


def declared_publisher(store: Store, publisher: CommandPublisher) -> DeclaredPublisher:
    """The trucks' `declared` lists, on the command connection (`server.declared`)."""
    return DeclaredPublisher(store, publisher)


def gate_service(
    config: ServerConfig,
    store: Store,
    geography: Geography,
    publisher: Publisher | None,
    alarms: AlarmService,
    secrets: LockSecrets,
    inline: bool = False,
) -> GateService:
    """Passage decisions, officer actions and remote unseal, signing with the server's key
    (its commands to `publisher`; None records them without sending)."""
    return GateService(
        store,
        geography,
        config.gates,
        CommandSigner.from_file(config.signing_key_file, config.gates.command_ttl_s),
        publisher,
        alarms,
        lock_secrets=secrets,
        inline=inline,
    )


def passage_batches(settings: IngestSettings) -> IngestSettings:
    """Passages are few and each has a truck waiting: store each as soon as it comes
    (a batch of positions waits up to `batch_wait_ms` to fill; a passage must not)."""
    return settings.model_copy(update={"batch_wait_ms": 0})


def ingest(
    config: ServerConfig,
    store: Store,
    metrics: Metrics,
    handlers: Sequence[FreshHandler],
    on_rejected: Sequence[RejectHook],
    passages: bool | None,
    writer: Writer | None = None,
) -> Ingest:
    """An ingest connection: `passages` None takes every edge channel (its passages
    stored by `writer`), False all but passages, True passages only (each stored at
    once, under the `passages` account and client id)."""
    connection = "passages" if passages else "ingest"
    return Ingest(
        connection_settings(config.broker, config.broker_accounts, connection),
        passage_batches(config.ingest) if passages else config.ingest,
        store,
        metrics,
        handlers=handlers,
        client_id=connection_id(config.broker, connection),
        passages=passages,
        writer=writer,
        on_rejected=on_rejected,
    )
