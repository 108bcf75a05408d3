"""The durable outbox on a real SQLite file: seqs, acks, restarts, the full policy."""

import itertools
import json
import sqlite3
from typing import Any

import pytest

from contract import topics
from contract.payloads import Position, decode
from edge.outbox import Outbox, OutboxError, OutboxFullError

NODE = "T7"
POS = topics.position(NODE)
LOCK = topics.lock(NODE)


def position(i: int) -> dict[str, Any]:
    return {
        "ts": "2026-11-23T08:15:02.250Z",
        "lat": 22.5 + i * 1e-5,
        "lon": 113.9,
        "alt_m": 12.0,
        "speed_kmh": 54.2,
        "course_deg": 91.5,
        "fix": "3d",
        "sats": 14,
        "hdop": 0.8,
        "systems": ["GPS", "BDS"],
    }


def lock_event(i: int) -> dict[str, Any]:
    return {
        "ts": "2026-11-23T08:15:02.250Z",
        "lock_id": f"L{i}",
        "state": "sealed",
        "event": "rope_cut",
        "battery_pct": 80.0,
    }


def test_enqueue_sets_seq_and_node_and_stores_valid_payloads(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    payload = position(0)
    seq = box.enqueue(POS, payload)
    assert seq == 1
    assert payload["seq"] == 1
    assert payload["node_id"] == NODE
    assert box.enqueue(LOCK, lock_event(1)) == 2
    items = box.pending(10)
    assert [i.seq for i in items] == [1, 2]
    assert [i.keep for i in items] == [False, True]
    model = decode(Position, items[0].payload)
    assert model.seq == 1
    assert model.node_id == NODE
    assert model.lat == pytest.approx(22.5)


def test_seq_strictly_increases_across_restarts_and_reservations(tmp_path):
    path = tmp_path / "o.db"
    seen: list[int] = []
    for _ in range(5):
        box = Outbox(path, NODE, 1_000_000)
        seen.append(box.enqueue(POS, position(0)))
        seen.append(box.reserve_seq("will offline"))
        for item in box.pending(100):
            box.ack(item.id)  # drained: the counter must not restart from the table
        box.close()
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    assert seen == list(range(1, 11))
    box = Outbox(path, NODE, 1_000_000)
    assert box.stats().count == 0
    assert box.last_seq() == 10
    assert box.reservations() == {s: "will offline" for s in seen[1::2]}


def test_ack_removes_exactly_the_acknowledged(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    seqs = [box.enqueue(POS, position(i)) for i in range(10)]
    assert box.ack_many([seqs[1], seqs[3], seqs[3], 999]) == 2
    assert not box.ack(seqs[1])
    assert [i.seq for i in box.pending(100)] == [s for s in seqs if s not in (seqs[1], seqs[3])]
    assert [i.seq for i in box.pending(2, after_id=seqs[4])] == [seqs[5], seqs[6]]
    assert [i.seq for i in box.pending(100, after_id=seqs[7], up_to_id=seqs[8])] == [seqs[8]]
    stats = box.stats()
    assert stats.count == 8
    assert stats.bytes == sum(len(i.payload) for i in box.pending(100))


def test_committed_messages_survive_a_reopen(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path, NODE, 1_000_000)
    for i in range(5):
        box.enqueue(POS, position(i))
    box.ack(2)
    # No close(): as if the process died. A second connection sees the commits.
    again = Outbox(path, NODE, 1_000_000)
    assert [i.seq for i in again.pending(10)] == [1, 3, 4, 5]
    assert again.enqueue(POS, position(9)) == 6


def test_wal_and_full_sync_are_in_force(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_an_outbox_of_another_node_is_refused(tmp_path):
    path = tmp_path / "o.db"
    Outbox(path, NODE, 1_000_000).close()
    with pytest.raises(OutboxError, match="belongs to node T7"):
        Outbox(path, "T8", 1_000_000)


def test_a_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot be opened"):
        Outbox(path, NODE, 1_000_000)


def test_full_outbox_thins_old_positions_keeps_newest_and_every_lock_event(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 20_000)
    locks = []
    for i in range(600):
        box.enqueue(POS, position(i))
        if i % 50 == 0:
            locks.append(box.enqueue(LOCK, lock_event(i)))
    stats = box.stats()
    assert stats.bytes <= 20_000
    assert stats.thinned_total > 0
    assert stats.refused_total == 0
    assert stats.state in ("thinning", "ok")
    items = box.pending(10_000)
    kept_locks = [i.seq for i in items if i.topic == LOCK]
    assert kept_locks == locks  # evidence is never thinned
    positions = [i.seq for i in items if i.topic == POS]
    # The newest positions are all there, at full resolution.
    newest = sorted(json.loads(i.payload)["seq"] for i in items if i.topic == POS)[-50:]
    all_seqs = [s for s in range(1, box.last_seq() + 1) if s not in locks]
    assert newest == all_seqs[-50:]
    # The oldest part of the track is still represented (thinned, not cut off).
    assert positions[0] == 1
    gaps = [b - a for a, b in itertools.pairwise(positions)]
    assert max(gaps) > 1
    assert gaps[-1] == 1


def test_full_outbox_of_evidence_refuses_positions_but_keeps_lock_events(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 8_000)
    locks = [box.enqueue(LOCK, lock_event(i)) for i in range(100)]  # beyond max_bytes
    assert box.stats().bytes > 8_000
    assert box.stats().state == "full"
    with pytest.raises(OutboxFullError, match="position refused"):
        box.enqueue(POS, position(0))
    assert box.stats().refused_total == 1
    assert [i.seq for i in box.pending(1000)] == locks
    # The refused position consumed no seq that could look like a lost message.
    assert box.enqueue(LOCK, lock_event(101)) == locks[-1] + 1
    # Draining brings the state back to ok and positions are accepted again.
    box.ack_many(locks)
    assert box.stats().state == "ok"
    assert box.enqueue(POS, position(1)) > 0


def test_disk_floor_counts_as_full(tmp_path):
    # A floor above the free space of any disk: positions are refused, locks kept.
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000, min_free_disk_bytes=2**62)
    with pytest.raises(OutboxFullError):
        box.enqueue(POS, position(0))
    assert box.enqueue(LOCK, lock_event(0)) == 1
    assert box.stats().state == "full"


def test_real_disk_full_is_reported_not_crashed(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    box.enqueue(LOCK, lock_event(0))
    # SQLite's own size cap stands in for a full file system.
    page_count = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={page_count}")
    with pytest.raises(OutboxFullError, match="full"):
        box.enqueue_many([(LOCK, lock_event(i), False) for i in range(2000)])
    assert box.stats().state == "full"
    assert [i.seq for i in box.pending(10)] == [1]  # nothing half-written
    box._db.execute("PRAGMA max_page_count=1073741823")
    assert box.enqueue(LOCK, lock_event(1)) == 2  # the rolled-back seqs were never used


def test_oldest_age_and_stats(tmp_path):
    now = [1000.0]
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000, clock=lambda: now[0])
    assert box.stats().oldest_age_s is None
    box.enqueue(POS, position(0))
    now[0] = 1042.5
    box.enqueue(POS, position(1))
    assert box.stats().oldest_age_s == pytest.approx(42.5)


def test_listener_is_called_on_enqueue(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    calls = []
    box.add_listener(lambda: calls.append(1))
    box.enqueue(POS, position(0))
    box.enqueue_many([(POS, position(1), False), (POS, position(2), False)])
    assert calls == [1, 1]


def test_database_is_plain_sqlite_for_forensics(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path, NODE, 1_000_000)
    box.enqueue(LOCK, lock_event(0))
    with sqlite3.connect(path) as other:
        rows = other.execute("SELECT id, topic FROM outbox").fetchall()
    assert rows == [(1, LOCK)]


def test_settings_open_the_outbox_and_reject_unknown_fields(tmp_path):
    from pydantic import ValidationError

    from edge.outbox_settings import OutboxSettings

    settings = OutboxSettings(path=tmp_path / "o.db", nonce_path=tmp_path / "n.db", max_bytes=8192)
    box = Outbox.from_settings(settings, NODE)
    assert box.max_bytes == 8192
    assert box.enqueue(POS, position(0)) == 1
    with pytest.raises(ValidationError, match="extra"):
        OutboxSettings.model_validate(
            {"path": tmp_path / "o.db", "nonce_path": tmp_path / "n.db", "max_byte": 1}
        )


def test_unsendable_messages_are_refused_without_using_a_seq(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    with pytest.raises(OutboxError, match="cannot block the outbox"):
        box.enqueue(LOCK, {**lock_event(0), "detail": "x" * 300_000})
    with pytest.raises(OutboxError, match="not valid JSON"):
        box.enqueue(LOCK, {**lock_event(0), "battery_pct": float("nan")})
    with pytest.raises(OutboxError, match="not valid JSON"):
        box.enqueue(LOCK, {**lock_event(0), "when": object()})
    assert box.stats().count == 0
    assert box.enqueue(LOCK, lock_event(1)) == 1


def test_a_drained_backlog_gives_its_space_back(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path, NODE, 100_000_000)
    seqs = box.enqueue_many([(POS, position(i), False) for i in range(20_000)])
    full_size = path.stat().st_size
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box.ack_many(seqs)
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert box.stats().count == 0
    assert path.stat().st_size < full_size / 4


def test_disk_floor_thins_once_and_does_not_wipe_the_track(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 100_000_000)
    box.enqueue_many([(POS, position(i), False) for i in range(400)])
    box.min_free_disk_bytes = 2**62  # the disk is now "full"
    for i in range(5):
        box.enqueue(POS, position(1000 + i))
    stats = box.stats()
    # One pass thinned a quarter of the track; the pages it freed take the new ones.
    assert stats.thinned_total == 100
    assert stats.count == 305
    assert stats.state == "thinning"
    assert box.enqueue(LOCK, lock_event(0)) > 0  # evidence still goes in
    box.min_free_disk_bytes = 0
    box.ack_many([i.id for i in box.pending(1000)])
    assert box.stats().state == "ok"
