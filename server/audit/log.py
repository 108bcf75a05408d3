"""The audit log in the store: append in the caller's transaction, list, verify.

`append(conn, …)` writes one entry inside the transaction of the change it records,
so the change and its trace commit or vanish together. It first takes the chain-head
row's lock (`UPDATE audit_head … RETURNING seq, hash`): on PostgreSQL that row lock
makes concurrent appends wait for each other; on SQLite the UPDATE takes the
database's write lock.
Either way two appends never read the same head, so the chain never forks (and the
primary key on `seq` would refuse a fork if they did).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, Row, bindparam, func, select, update

from contract.canonical import canonical_json
from contract.ids import utc_now
from server.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    Verification,
    check_anchor,
    entry_hash,
    verify_chain,
)
from server.audit.checkpoint import Checkpoint, Damaged, check_checkpoints
from server.audit.transaction import snapshot
from server.store import schema

log = logging.getLogger(__name__)

HEAD_ID = 1


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ms(moment: datetime) -> datetime:
    """The chain hashes times with millisecond precision; store them so."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# Built once: appends are on the declaration and alarm-action paths.
_LOCK_HEAD = (
    update(schema.audit_head)
    .where(schema.audit_head.c.id == HEAD_ID)
    .values(at=bindparam("at"))
    .returning(schema.audit_head.c.seq, schema.audit_head.c.hash)
)
_INSERT = schema.audit_log.insert()
_MOVE_HEAD = (
    update(schema.audit_head)
    .where(schema.audit_head.c.id == HEAD_ID)
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


def append(
    conn: Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in `conn`'s transaction and return it (committed with it)."""
    moment = _ms(as_utc(at) or utc_now())
    # Lock the head first: the UPDATE waits for any other append's transaction to end,
    # and hands back the head as it is once this transaction holds the lock.
    found = conn.execute(_LOCK_HEAD, {"at": moment}).first()
    if found is None:
        raise RuntimeError("the audit chain head row is missing: the store is not migrated")
    prev_seq, prev_hash = found
    seq = int(prev_seq) + 1
    details_text = canonical_json(dict(details or {})).decode("utf-8")
    digest = entry_hash(seq, moment, actor, action, object_type, object_id, details_text, prev_hash)
    entry = AuditEntry(
        seq, moment, actor, action, object_type, object_id, details_text, prev_hash, digest
    )
    conn.execute(
        _INSERT,
        {
            "seq": seq,
            "at": moment,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "details": details_text,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    conn.execute(_MOVE_HEAD, {"seq": seq, "hash": digest})
    log.debug("audit %d: %s %s %s/%s", seq, actor, action, object_type, object_id)
    return entry


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0
    newest_first: bool = True


def _entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    at = as_utc(m["at"])
    assert at is not None
    return AuditEntry(
        int(m["seq"]),
        at,
        m["actor"],
        m["action"],
        m["object_type"],
        m["object_id"],
        m["details"],
        m["prev_hash"],
        m["hash"],
    )


def list_entries(engine: Engine, query: AuditQuery) -> tuple[list[AuditEntry], int]:
    """A page of entries matching `query`, and how many match in all."""
    c = schema.audit_log.c
    conditions = []
    for column, value in (
        (c.actor, query.actor),
        (c.action, query.action),
        (c.object_type, query.object_type),
        (c.object_id, query.object_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.since is not None:
        conditions.append(c.at >= query.since)
    if query.until is not None:
        conditions.append(c.at <= query.until)
    order = c.seq.desc() if query.newest_first else c.seq.asc()
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.audit_log)
            .where(*conditions)
            .order_by(order)
            .limit(query.limit)
            .offset(query.offset)
        ).all()
        total = conn.execute(
            select(func.count()).select_from(schema.audit_log).where(*conditions)
        ).scalar_one()
    return [_entry(r) for r in rows], int(total)


def head(engine: Engine) -> tuple[int, str]:
    """The chain head: the last entry's seq and hash (0 and the genesis hash when empty)."""
    c = schema.audit_head.c
    with engine.connect() as conn:
        seq, digest = conn.execute(select(c.seq, c.hash).where(c.id == HEAD_ID)).one()
    return int(seq), str(digest)


def chain_state(engine: Engine) -> tuple[int, str, int]:
    """The last entry's seq and hash (0 and the genesis hash when empty) and the number
    of entries, read in one snapshot: what a checkpoint records."""
    c = schema.audit_log.c
    with snapshot(engine) as conn:
        last = conn.execute(select(c.seq, c.hash).order_by(c.seq.desc()).limit(1)).first()
        count = conn.execute(select(func.count()).select_from(schema.audit_log)).scalar_one()
    if last is None:
        return 0, GENESIS_HASH, int(count)
    return int(last.seq), str(last.hash), int(count)


def verify(
    engine: Engine,
    anchor: tuple[int, str] | None = None,
    checkpoints: Sequence[Checkpoint | Damaged] | None = None,
    checkpoint_key: Ed25519PublicKey | None = None,
) -> Verification:
    """Walk the whole chain in one consistent snapshot and check it against its head,
    against `anchor` (seq, hash) — a head copied out of the database — if given, and
    against signed `checkpoints` (read before this call) with `checkpoint_key`."""
    c = schema.audit_head.c
    with snapshot(engine) as conn:
        head_row = conn.execute(select(c.seq, c.hash).where(c.id == HEAD_ID)).first()
        rows = conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq)).all()
    entries = [_entry(r) for r in rows]
    checked = len(checkpoints) if checkpoints is not None else None
    if head_row is None:
        result = verify_chain(entries)
        if result.ok:
            return Verification(False, len(entries), None, "the chain head row is missing")
        return replace(result, checkpoints=checked)
    result = verify_chain(entries, int(head_row.seq), str(head_row.hash))
    if result.ok and anchor is not None:
        result = check_anchor(entries, *anchor)
    if not result.ok:
        return replace(result, checkpoints=checked)
    if checkpoints is not None:
        if checkpoint_key is None:
            raise ValueError("checking checkpoints needs the audit public key")
        return check_checkpoints(entries, checkpoints, checkpoint_key)
    return result
