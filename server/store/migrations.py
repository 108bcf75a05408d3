"""Versioned schema migrations, applied in order, each in its own transaction.

A migration is never edited once released: a change of schema is a new migration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, inspect, select

from contract.ids import utc_now
from server.store import schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _create(*tables: object) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for table in tables:
            table.create(conn)  # type: ignore[attr-defined]

    return apply


def _alarms_and_audit(conn: Connection) -> None:
    """Alarms with their history; the audit log and its chain head (seq 0, genesis hash)."""
    _create(schema.alarms, schema.alarm_events, schema.audit_log, schema.audit_head)(conn)
    conn.execute(schema.audit_head.insert().values(id=1, seq=0, hash="0" * 64, at=None))


def _create_missing(*tables: Table) -> Callable[[Connection], None]:
    """CREATE TABLE (with its indexes) for each of `tables` the database lacks."""

    def apply(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return apply


def _add_columns(table: Table, *names: str) -> Callable[[Connection], None]:
    """ALTER TABLE … ADD COLUMN for each named column of `table` the database lacks.

    The earlier migrations create tables from today's `schema`, so on a new database the
    column exists already and this adds nothing; an older database gets it here.
    """

    def apply(conn: Connection) -> None:
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for name in names:
            if name in present:
                continue
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}')

    return apply


def _declaration_gates(conn: Connection) -> None:
    """declarations.origin_gate / destination_gate, filled from each body, and indexed."""
    _add_columns(schema.declarations, "origin_gate", "destination_gate")(conn)
    d = schema.declarations
    present = {i["name"] for i in inspect(conn).get_indexes(d.name)}
    for index in d.indexes:
        if index.name not in present:
            index.create(conn)
    rows = conn.execute(select(d.c.declaration_id, d.c.body).where(d.c.origin_gate.is_(None)))
    for declaration_id, body in rows.all():
        data = body if isinstance(body, dict) else json.loads(body)
        conn.execute(
            d.update()
            .where(d.c.declaration_id == declaration_id)
            .values(
                origin_gate=data.get("origin_gate"), destination_gate=data.get("destination_gate")
            )
        )


def _corrections_and_appointments(conn: Connection) -> None:
    _add_columns(schema.passages, "appointment_id", "corrected_at")(conn)
    _create_missing(schema.passage_corrections, schema.appointments)(conn)


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "edge messages, positions, declarations, trips",
        _create(schema.edge_messages, schema.positions, schema.declarations, schema.trips),
    ),
    # ---- alarms and audit (server/alarms, server/audit) ----
    Migration(2, "alarms, alarm events, hash-chained audit log", _alarms_and_audit),
    Migration(
        3,
        "accounts, sessions, API tokens",
        _create(schema.accounts, schema.auth_sessions, schema.api_tokens),
    ),
    Migration(4, "rule effects applied to alarms", _create(schema.rule_effects)),
    # ---- gates (server/gates) ----
    Migration(
        5,
        "gate passages, release records, signed commands",
        _create(schema.passages, schema.release_records, schema.commands),
    ),
    # ---- escalation of unacknowledged alarms (server/alarms/escalation.py) ----
    Migration(6, "alarms: escalated_at", _add_columns(schema.alarms, "escalated_at")),
    Migration(7, "declarations: origin and destination gate, indexed", _declaration_gates),
    # ---- the officer's own time zone (server/auth, console) ----
    Migration(8, "accounts: time_zone", _add_columns(schema.accounts, "time_zone")),
    # ---- refused edge messages (server/store/dead_letters.py) ----
    Migration(9, "dead letters", _create_missing(schema.dead_letters)),
    # ---- officers' corrections and appointments at the gate (server/gates) ----
    Migration(10, "passage corrections and appointments", _corrections_and_appointments),
    # ---- gate evidence: passage images (server/evidence) ----
    Migration(11, "passage images", _create_missing(schema.passage_images)),
    # ---- how far the judge has judged each vehicle (server/judge_marks.py) ----
    Migration(12, "judge marks", _create_missing(schema.judge_marks)),
    Migration(
        13, "judge marks: timers due", _add_columns(schema.judge_marks, "due_at", "arrived_at")
    ),
]


def current_version(engine: Engine) -> int:
    if not inspect(engine).has_table("schema_migrations"):
        return 0
    with engine.connect() as conn:
        rows = conn.execute(select(schema.schema_migrations.c.version)).scalars().all()
    return max(rows, default=0)


def migrate(engine: Engine) -> int:
    """Apply every pending migration; return the schema version now in force."""
    with engine.begin() as conn:
        if not inspect(conn).has_table("schema_migrations"):
            schema.schema_migrations.create(conn)
    version = current_version(engine)
    known = max((m.version for m in MIGRATIONS), default=0)
    if version > known:
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this server knows "
            f"({known}): upgrade the server"
        )
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        with engine.begin() as conn:
            migration.apply(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=utc_now()
                )
            )
        log.info("applied schema migration %d: %s", migration.version, migration.name)
        version = migration.version
    return version
