"""The server's acknowledgement to the edge: ranges, batching, and publication after commit."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts, utc_now
from contract.payloads import Ack, PayloadError, Position, decode
from devtools.broker import MosquittoBroker
from server.acks import AckBatcher, seq_ranges
from server.config import IngestSettings
from server.ingest import Ingest
from server.metrics import Metrics
from server.store import Store
from server.store.database import IncomingMessage
from server.store.dead_letters import DeadLetter


@given(st.sets(st.integers(min_value=0, max_value=500)))
def test_ranges_cover_exactly_the_seqs(seqs: set[int]) -> None:
    ranges = seq_ranges(seqs)
    covered = {s for first, last in ranges for s in range(first, last + 1)}
    assert covered == seqs
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ranges))  # merged


def test_ack_model_refuses_unordered_overlapping_and_unbounded_ranges() -> None:
    now = format_ts(utc_now())
    good = {"node_id": "T1", "ts": now, "ranges": [[1, 3], [5, 5]]}
    assert decode(Ack, json.dumps(good)).ranges == [(1, 3), (5, 5)]
    for ranges in ([[3, 1]], [[1, 3], [3, 4]], [[5, 6], [1, 2]], [], [[-1, 2]]):
        with pytest.raises(PayloadError):
            decode(Ack, json.dumps({**good, "ranges": ranges}))
    with pytest.raises(PayloadError):
        decode(Ack, json.dumps({**good, "ranges": [[i * 2, i * 2] for i in range(513)]}))


def _fix(node: str, seq: int, kind: str | None = "truck") -> IncomingMessage:
    msg = Position(node_id=node, seq=seq, ts=utc_now(), fix="none")
    return IncomingMessage("position", msg, msg.to_json().decode(), utc_now(), kind=kind)  # type: ignore[arg-type]


def test_batcher_sends_one_ack_per_node_and_splits_many_gaps() -> None:
    batcher = AckBatcher(max_ranges=3)
    batcher.add([_fix("T1", s) for s in (1, 2, 3, 5, 7, 9, 11)] + [_fix("T2", 4)])
    batcher.add([_fix("T2", 4), _fix("T2", 5)])  # a duplicate is acknowledged again
    due = batcher.take(utc_now())
    assert len(batcher) == 0 and batcher.take(utc_now()) == []
    by_topic: dict[str, list[list[tuple[int, int]]]] = {}
    for topic, payload in due:
        by_topic.setdefault(topic, []).append(decode(Ack, payload).ranges)
    assert by_topic == {
        topics.ack("truck", "T1"): [[(1, 3), (5, 5), (7, 7)], [(9, 9), (11, 11)]],
        topics.ack("truck", "T2"): [[(4, 5)]],
    }


def test_a_limit_acknowledges_the_longest_waiting_nodes_and_keeps_the_rest() -> None:
    batcher = AckBatcher()
    batcher.add([_fix("T1", 1), _fix("T2", 1), _fix("T3", 1)])
    batcher.add([_fix("T1", 2), _fix("T3", 2)])
    first = batcher.take(utc_now(), limit=2)
    assert [decode(Ack, p).node_id for _, p in first] == ["T1", "T2"]
    assert decode(Ack, first[0][1]).ranges == [(1, 2)]
    batcher.add([_fix("T1", 3), _fix("T3", 3)])  # T3 waited longest now, T1 joins behind
    second = batcher.take(utc_now(), limit=1)
    assert [(decode(Ack, p).node_id, decode(Ack, p).ranges) for _, p in second] == [
        ("T3", [(1, 3)])
    ]
    assert [decode(Ack, p).ranges for _, p in batcher.take(utc_now(), limit=5)] == [[(3, 3)]]
    assert len(batcher) == 0


async def test_ingest_acknowledges_only_what_is_committed_once_per_node_per_interval(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    settings = BrokerSettings(host="127.0.0.1", port=broker.port, client_id="ack-test-server")
    interval = 0.5
    ingest = Ingest(
        settings,
        IngestSettings(ack_interval_s=interval, batch_wait_ms=5),
        store,
        Metrics(),
        client_id="ack-test-server",
    )
    task = asyncio.create_task(ingest.run())
    acks: list[tuple[float, str, Ack, set[int]]] = []
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="ack-test-nodes") as node:
            for node_id in ("TA", "TB"):
                await node.subscribe(topics.ack("truck", node_id), qos=1)

            async def collect() -> None:
                async for message in node.messages:
                    assert isinstance(message.payload, bytes)
                    ack = decode(Ack, message.payload)
                    with store.engine.connect() as conn:  # committed before it was said
                        stored = {
                            int(r[0])
                            for r in conn.execute(
                                text("SELECT seq FROM edge_messages WHERE node_id = :n"),
                                {"n": ack.node_id},
                            )
                        }
                    acks.append((time.monotonic(), str(message.topic), ack, stored))

            collector = asyncio.create_task(collect())
            sent: dict[str, set[int]] = {"TA": set(), "TB": set()}
            for seq in range(1, 301):
                for node_id in sent:
                    if seq % 7 == 0 and node_id == "TB":
                        continue  # a gap: thinned on the node
                    fix = Position(node_id=node_id, seq=seq, ts=utc_now(), fix="none")
                    await node.publish(topics.position(node_id), fix.to_json(), qos=1)
                    sent[node_id].add(seq)
                if seq == 150:
                    await node.publish(topics.position("TA"), fix.to_json(), qos=1)  # repeat
                await asyncio.sleep(0.005)

            def covered(node_id: str) -> set[int]:
                return {
                    s
                    for _, _, ack, _ in acks
                    if ack.node_id == node_id
                    for first, last in ack.ranges
                    for s in range(first, last + 1)
                }

            async with asyncio.timeout(15):
                while any(covered(n) != seqs for n, seqs in sent.items()):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
    for _, topic, ack, stored in acks:
        assert topic == topics.ack("truck", ack.node_id)
        assert {s for a, b in ack.ranges for s in range(a, b + 1)} <= stored
    for node_id in ("TA", "TB"):
        times = [at for at, _, ack, _ in acks if ack.node_id == node_id]
        assert len(times) >= 2  # the stream took several intervals
        assert all(b - a > interval * 0.6 for a, b in itertools.pairwise(times))


def test_postgres_commits_are_durable_even_where_the_database_says_otherwise(
    postgres_server: str,
) -> None:
    from devtools.postgres import fresh_database

    url = fresh_database(postgres_server)
    store = Store.open(url)
    try:
        with store.engine.connect() as conn:
            database = conn.exec_driver_sql("SELECT current_database()").scalar_one()
            conn.exec_driver_sql(f'ALTER DATABASE "{database}" SET synchronous_commit TO off')
            conn.commit()
        store.engine.dispose()  # new sessions get the database's setting...
        with store.engine.connect() as conn:
            # ...and the store turns it on again for its own.
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    finally:
        store.close()


def test_sqlite_store_is_fsynced_at_every_commit(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        store.close()


def _letter(topic: str, raw: bytes, reason: str = "invalid") -> DeadLetter:
    return DeadLetter(utc_now(), topic, None, None, None, reason, "", None, raw)


def test_refused_messages_are_acknowledged_only_on_the_nodes_own_edge_topics() -> None:
    batcher = AckBatcher()
    position = topics.position("T1")
    batcher.add_refused(
        [
            _letter(position, b'{"node_id":"T1","seq":7,"lat":200}'),
            _letter(position, b'{"node_id":"T9","seq":8}', "node_mismatch"),  # the topic's node
            _letter(topics.passage("G1"), b'{"seq":3,"containers":"?"}'),
            _letter(position, b'{"seq":9}', "internal"),  # the server's bug: kept by the node
            _letter("bondwatch/v1/truck/T1/passage", b'{"seq":10}', "bad_topic"),  # not a truck's
            _letter(topics.command("truck", "T1"), b'{"seq":11}', "bad_topic"),  # server→edge
            _letter("nonsense/T1", b'{"seq":12}', "bad_topic"),
            _letter(position, b'{"seq":"13"}'),  # no seq to read: never guessed
            _letter(position, b'{"seq":true}'),
            _letter(position, b'{"seq":-1}'),
            _letter(position, b'[{"seq":14}]', "not_object"),
            _letter(position, b'{"seq":15' + b"]" * 20, "not_json"),
            _letter(position, b"\xff\xfe", "not_utf8"),
        ]
    )
    acked = {topic: decode(Ack, payload).ranges for topic, payload in batcher.take(utc_now())}
    assert acked == {
        topics.ack("truck", "T1"): [(7, 8)],
        topics.ack("gate", "G1"): [(3, 3)],
    }
