"""Signed audit checkpoints outside the database (server.audit.checkpoint*): a chain
rewritten in the database with every hash recomputed verifies on its own, and is caught
by the checkpoints — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path

import pytest
from sqlalchemy import select, text

from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from server.audit import GENESIS_HASH, verify
from server.audit.chain import entry_hash
from server.audit.checkpoint import MARKER, Checkpoint, key_id, parse_line, sign_checkpoint
from server.audit.checkpointer import AuditCheckpoints
from server.audit.config import CheckpointSettings, SyslogSink
from server.audit.log import as_utc
from server.audit.sinks import read_checkpoints
from server.store import Store, schema
from tests.server.audit.conftest import T0, fill


def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = generate_private_key()
    private, public = tmp_path / "audit.pem", tmp_path / "audit.pub"
    private.write_bytes(private_key_to_pem(key))
    public.write_bytes(public_key_to_pem(key.public_key()))
    return private, public


def checkpoints_in(tmp_path: Path, **over: object) -> AuditCheckpoints:
    private, _ = keys(tmp_path)
    settings = CheckpointSettings.model_validate(
        {"key_file": private, "folder": tmp_path / "checkpoints", **over}
    )
    return AuditCheckpoints.for_server(settings)


def rewrite(store: Store, *, edit_seq: int | None = None, delete_seq: int | None = None) -> None:
    """What someone with write access to the database and this repository's docs can do:
    change an entry (or delete one and renumber the rest), recompute every later hash and
    prev_hash, and move the head — the chain then verifies on its own."""
    log = schema.audit_log
    with store.engine.begin() as conn:
        if delete_seq is not None:
            conn.execute(log.delete().where(log.c.seq == delete_seq))
            later = conn.execute(
                select(log.c.seq).where(log.c.seq > delete_seq).order_by(log.c.seq)
            ).all()
            for (seq,) in later:
                conn.execute(log.update().where(log.c.seq == seq).values(seq=seq - 1))
        if edit_seq is not None:
            conn.execute(log.update().where(log.c.seq == edit_seq).values(actor="someone.else"))
        rows = conn.execute(select(log).order_by(log.c.seq)).all()
        prev = GENESIS_HASH
        for row in rows:
            at = as_utc(row.at)
            assert at is not None
            digest = entry_hash(
                row.seq, at, row.actor, row.action, row.object_type, row.object_id,
                row.details, prev,
            )  # fmt: skip
            conn.execute(
                log.update().where(log.c.seq == row.seq).values(prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": len(rows), "h": prev})


def test_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoints_only(store, tmp_path):
    checker = checkpoints_in(tmp_path)
    for _ in range(3):  # checkpoints at seq 3, 6 and 9
        fill(store, 3)
        checker.write(store.engine)
    rewrite(store, edit_seq=5)
    assert verify(store.engine).as_json() == {"ok": True, "entries": 9}  # the chain alone
    result = checker.verify(store.engine)
    assert not result.ok and result.first_bad_seq == 6 and result.checkpoints == 3
    assert result.checkpoint is not None
    assert result.checkpoint.startswith("checkpoints-") and result.checkpoint.endswith(".log:2")
    assert result.reason is not None
    assert "entry 6 no longer has the hash" in result.reason
    assert "rewrite lies in entries 4..6" in result.reason  # checkpoint 1 (seq 3) still holds


def test_deletion_renumbered_and_rehashed_is_caught_by_the_count(store, tmp_path):
    checker = checkpoints_in(tmp_path)
    fill(store, 5)
    checker.write(store.engine)
    rewrite(store, delete_seq=2)
    assert verify(store.engine).as_json() == {"ok": True, "entries": 4}
    result = checker.verify(store.engine)
    assert not result.ok and result.first_bad_seq == 5
    assert result.reason is not None
    assert "the log holds 4 entries up to seq 4" in result.reason
    assert "recorded 5 up to seq 5: entries were deleted" in result.reason


def test_intact_chain_holds_against_its_checkpoints_and_later_entries(store, tmp_path):
    checker = checkpoints_in(tmp_path)
    checker.write(store.engine)  # the empty chain
    fill(store, 4)
    first = checker.write(store.engine)
    fill(store, 2)  # after the newest checkpoint: protected by the chain alone
    assert (first.seq, first.count) == (4, 4) and first.key == key_id(checker.public_key)
    assert checker.verify(store.engine).as_json() == {"ok": True, "entries": 6, "checkpoints": 2}


def _lines(checker: AuditCheckpoints) -> tuple[Path, list[str]]:
    folder = checker.settings.folder
    assert folder is not None
    (path,) = folder.iterdir()
    return path, path.read_text().splitlines()


def test_forged_and_foreign_checkpoints_are_reported(store, tmp_path):
    checker = checkpoints_in(tmp_path)
    fill(store, 3)
    checker.write(store.engine)
    path, lines = _lines(checker)
    record = json.loads(lines[0].removeprefix(MARKER + " "))
    # A checkpoint moved to the rewritten chain's head, signature kept: does not verify.
    forged = {**record, "hash": "f" * 64}
    with path.open("a") as out:
        out.write(f"{MARKER} {json.dumps(forged)}\n")
    result = checker.verify(store.engine)
    assert not result.ok and result.first_bad_seq is None
    assert result.checkpoint == f"{path.name}:2"
    assert result.reason is not None and "has a bad signature: forged or altered" in result.reason
    # Signed, but by another key (the command key, say).
    other = generate_private_key()
    foreign = sign_checkpoint(3, record["hash"], 3, T0, other)
    path.write_text(lines[0] + "\n" + foreign.line() + "\n")
    result = checker.verify(store.engine)
    assert not result.ok and result.checkpoint == f"{path.name}:2"
    assert (
        result.reason is not None and f"signed by key {key_id(other.public_key())}" in result.reason
    )
    # A damaged line.
    path.write_text(lines[0] + "\n" + f"{MARKER} {{not json\n")
    result = checker.verify(store.engine)
    assert not result.ok and result.reason is not None and "is damaged" in result.reason


def test_signature_covers_every_field():
    key = generate_private_key()
    cp = sign_checkpoint(7, "a" * 64, 7, T0, key)
    parsed = parse_line(f"Nov 23 08:00:00 host bondwatch-server: {cp.line()}", "syslog:1")
    assert parsed == cp
    raw = base64.b64decode(cp.signature)
    key.public_key().verify(
        raw, json.dumps(cp.body(), sort_keys=True, separators=(",", ":")).encode()
    )
    assert parse_line("an unrelated syslog line", "x") is None


def test_syslog_sink_sends_a_checkpoint_that_verifies(store, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        exported = tmp_path / "syslog-host" / "bondwatch.log"
        checker = checkpoints_in(
            tmp_path,
            folder=None,
            syslog={"address": f"127.0.0.1:{port}", "facility": "local3", "read_from": exported},
        )
        fill(store, 2)
        written = checker.write(store.engine)
        message = receiver.recv(4096).decode()
    assert message.startswith(f"<{19 * 8 + 5}>bondwatch-server: {MARKER} ")  # local3.notice
    exported.parent.mkdir()
    exported.write_text(
        f"Nov 23 08:00:00 srv1 other-daemon: hello\nNov 23 08:00:01 srv1 {message[5:]}\n"
    )
    assert read_checkpoints(exported) == [written]
    assert checker.verify(store.engine).as_json() == {"ok": True, "entries": 2, "checkpoints": 1}
    assert SyslogSink().address == "/dev/log"


def test_the_timer_writes_on_start_each_interval_and_on_stop(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    checker = checkpoints_in(tmp_path, interval_s=1.0)

    async def run_a_while() -> None:
        task = asyncio.create_task(checker.run_forever(store.engine))
        await asyncio.sleep(0.3)
        fill(store, 2)
        await asyncio.sleep(1.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_a_while())
    written = read_checkpoints(checker.settings.folder or Path())
    assert [(c.seq, c.count) for c in written if isinstance(c, Checkpoint)] == [
        (0, 0),  # at start
        (2, 2),  # after 1 s
        (2, 2),  # on stop
    ]
    assert len(written) == 3
    store.close()


def test_the_audit_key_must_not_be_the_command_key(tmp_path):
    from contract.signing import KeyFileError
    from server.config import ServerConfig

    private, _ = keys(tmp_path)
    settings = CheckpointSettings(key_file=private, folder=tmp_path / "c")
    with pytest.raises(KeyFileError, match="give the audit log its own key"):
        AuditCheckpoints.for_server(settings, command_key_file=private)
    with pytest.raises(ValueError, match="give the audit log its own key"):
        ServerConfig.model_validate(
            {"signing_key_file": private, "audit": {"checkpoints": settings.model_dump()}}
        )
    with pytest.raises(ValueError, match="set `folder`, `syslog` or both"):
        CheckpointSettings(key_file=private)
