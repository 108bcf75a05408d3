import itertools
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from server.audit import GENESIS_HASH, append, head, verify, write_transaction
from server.audit.anchor import read_anchor, write_anchor
from server.audit.chain import entry_hash
from server.audit.log import as_utc
from server.store import StoreError, schema
from tests.server.audit.conftest import T0, fill

N = 8


def raw(store, sql: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def rows(store) -> list[Any]:
    with store.engine.connect() as conn:
        return conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq)).all()


def test_empty_chain_verifies(store):
    assert verify(store.engine).as_json() == {"ok": True, "entries": 0}
    assert head(store.engine) == (0, GENESIS_HASH)


def test_chain_links_and_verifies(store):
    fill(store, N)
    stored = rows(store)
    assert [r.seq for r in stored] == list(range(1, N + 1))
    assert stored[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert stored[2].details == '{"comment":"entry 3","n":2,"nested":{"f":0.5,"ok":true}}'
    assert verify(store.engine).as_json() == {"ok": True, "entries": N}
    assert head(store.engine) == (N, stored[-1].hash)


def test_entry_hash_is_sha256_of_canonical_json():
    import hashlib

    body = (
        '{"action":"a","actor":"x","at":"2026-11-23T08:00:00.000Z","details":{"k":"v"},'
        '"object_id":"1","object_type":"alarm","prev_hash":"' + GENESIS_HASH + '","seq":1}'
    )
    expected = hashlib.sha256(body.encode()).hexdigest()
    assert entry_hash(1, T0, "x", "a", "alarm", "1", '{"k": "v"}', GENESIS_HASH) == expected


def test_append_rolls_back_with_its_transaction(store):
    fill(store, 2)

    def failing_change() -> None:
        with write_transaction(store.engine) as conn:
            append(conn, "officer.li", "alarm.ack", "alarm", "7", {"comment": "x"})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    assert len(rows(store)) == 2 and head(store.engine)[0] == 2
    fill(store, 1)
    assert verify(store.engine).as_json() == {"ok": True, "entries": 3}


def test_concurrent_appends_never_fork(store):
    threads, per_thread = 8, 15
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                # half through write_transaction, half through a plain engine.begin():
                # append() serialises on the chain head either way
                context = write_transaction(store.engine) if n % 2 else store.engine.begin()
                with context as conn:
                    append(conn, f"worker.{n}", "test.append", "thing", f"{n}-{i}", {"i": i})
        except BaseException as err:
            errors.append(err)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert errors == []
    stored = rows(store)
    assert [r.seq for r in stored] == list(range(1, threads * per_thread + 1))
    assert len({r.prev_hash for r in stored}) == len(stored)
    assert verify(store.engine).as_json() == {"ok": True, "entries": threads * per_thread}


K = 4  # the entry a test tampers with


EDITS = [
    ("at", T0 + timedelta(days=1)),
    ("actor", "officer.nobody"),
    ("action", "alarm.comment"),
    ("object_type", "trip"),
    ("object_id", "OBJ-99"),
    ("details", '{"comment":"entry 4, reworded"}'),
    ("details", "not json"),
    ("prev_hash", "f" * 64),
    ("hash", "e" * 64),
    ("seq", 1000),
]


def test_editing_any_field_is_found(store):
    fill(store, N)
    original = rows(store)[K - 1]._mapping
    for column, value in EDITS:  # one database for all edits (a fresh one costs a second)
        raw(store, f"UPDATE audit_log SET {column} = :v WHERE seq = :k", v=value, k=K)
        result = verify(store.engine)
        assert not result.ok and result.first_bad_seq == K, (column, result)
        assert result.entries == N and result.reason, column
        where = 1000 if column == "seq" else K
        raw(
            store,
            f"UPDATE audit_log SET {column} = :v WHERE seq = :k",
            v=original[column],
            k=where,
        )
        assert verify(store.engine).ok, f"restoring {column} did not restore the chain"


@pytest.mark.parametrize("k", [1, K, N])
def test_editing_the_first_middle_or_last_entry(store, k):
    fill(store, N)
    raw(store, "UPDATE audit_log SET actor = 'x' WHERE seq = :k", k=k)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, k)
    assert f"entry {k} was edited" in str(result.reason)


def test_edited_and_rehashed_entry_breaks_the_next_link(store):
    fill(store, N)
    r = rows(store)[K - 1]
    moment = as_utc(r.at)
    assert moment is not None
    forged = entry_hash(
        K, moment, "officer.x", r.action, r.object_type, r.object_id, r.details, r.prev_hash
    )
    raw(store, "UPDATE audit_log SET actor = 'officer.x', hash = :h WHERE seq = :k", h=forged, k=K)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, K + 1)
    assert "does not chain to entry 4" in str(result.reason)


def test_deleting_a_middle_entry_is_found(store):
    fill(store, N)
    raw(store, "DELETE FROM audit_log WHERE seq = :k", k=K)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, K, N - 1)
    assert "missing" in str(result.reason)


def test_deleting_the_first_entry_is_found(store):
    fill(store, N)
    raw(store, "DELETE FROM audit_log WHERE seq = 1")
    assert verify(store.engine).first_bad_seq == 1


def test_deleting_the_tail_is_found_by_the_head(store):
    fill(store, N)
    raw(store, "DELETE FROM audit_log WHERE seq >= :k", k=N - 1)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, N - 1)
    assert "tail deleted" in str(result.reason)


def test_deleting_and_renumbering_is_found(store):
    fill(store, N)
    raw(store, "DELETE FROM audit_log WHERE seq = :k", k=K)
    raw(store, "UPDATE audit_log SET seq = seq + 1000 WHERE seq > :k", k=K)
    raw(store, "UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1000")
    raw(store, "UPDATE audit_head SET seq = :n", n=N - 1)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, K)
    assert "deleted" in str(result.reason)


@pytest.mark.parametrize(("i", "j"), [(2, 6), (K, K + 1), (1, N)])
def test_swapping_two_entries_is_found(store, i, j):
    fill(store, N)
    raw(store, "UPDATE audit_log SET seq = -1 WHERE seq = :i", i=i)
    raw(store, "UPDATE audit_log SET seq = :i WHERE seq = :j", i=i, j=j)
    raw(store, "UPDATE audit_log SET seq = :j WHERE seq = -1", j=j)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, i), result
    assert f"written as seq {j}" in str(result.reason) and "reordered" in str(result.reason)


def _forge(store, seq: int, prev_hash: str) -> None:
    at = T0 + timedelta(hours=5)
    details = '{"comment":"forged"}'
    digest = entry_hash(seq, at, "officer.x", "alarm.clear", "alarm", "1", details, prev_hash)
    raw(
        store,
        "INSERT INTO audit_log (seq, at, actor, action, object_type, object_id, details, "
        "prev_hash, hash) VALUES (:seq, :at, 'officer.x', 'alarm.clear', 'alarm', '1', "
        ":details, :prev, :hash)",
        seq=seq,
        at=at,
        details=details,
        prev=prev_hash,
        hash=digest,
    )


def test_inserting_an_entry_in_the_middle_is_found(store):
    fill(store, N)
    before = rows(store)[K - 2].hash  # entry K-1
    raw(store, "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= :k", k=K)
    raw(store, "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
    _forge(store, K, before)  # a well-formed entry chained after K-1
    raw(store, "UPDATE audit_head SET seq = :n", n=N + 1)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, K, N + 1), result
    assert f"entry {K} was inserted" in str(result.reason)


def test_appending_outside_the_api_is_found(store):
    fill(store, N)
    _forge(store, N + 1, rows(store)[-1].hash)
    result = verify(store.engine)
    assert (result.ok, result.first_bad_seq) == (False, N + 1)
    assert "beyond the chain head" in str(result.reason)


def test_anchor_finds_a_cut_tail_with_a_rewound_head(store, tmp_path):
    fill(store, N)
    anchor_file = tmp_path / "anchors.jsonl"
    write_anchor(store.engine, anchor_file)
    assert read_anchor(anchor_file) == head(store.engine)
    fill(store, 2)  # later entries are fine
    assert verify(store.engine, read_anchor(anchor_file)).ok
    # an attacker with database access cuts entries N..N+2 and rewinds the head to match
    last_kept = rows(store)[N - 2]
    raw(store, "DELETE FROM audit_log WHERE seq >= :n", n=N)
    raw(store, "UPDATE audit_head SET seq = :s, hash = :h", s=last_kept.seq, h=last_kept.hash)
    assert verify(store.engine).ok  # the documented limit without an anchor
    result = verify(store.engine, read_anchor(anchor_file))
    assert (result.ok, result.first_bad_seq) == (False, N)
    assert "anchor" in str(result.reason)


def test_declaration_is_audited_in_its_transaction(store):
    body = {"declaration_id": "D1", "vehicle_id": "T1", "route_id": "R1", "time_limit_min": 60}
    store.create_declaration(body, T0, actor="declaration-system")
    with pytest.raises(StoreError):
        store.create_declaration({**body, "vehicle_id": "T9"}, T0, actor="officer.li")
    entries = rows(store)
    assert [(e.seq, e.actor, e.action, e.object_type, e.object_id) for e in entries] == [
        (1, "declaration-system", "declaration.create", "declaration", "D1")
    ]
    assert '"vehicle_id":"T1"' in entries[0].details
    assert verify(store.engine).ok
