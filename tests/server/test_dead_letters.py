"""The dead-letter store (bounded, oldest dropped) and `GET /api/v1/dead-letters` (admins
only), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.judge_worker import decode_rows
from server.services import Services
from server.store import Store
from server.store.dead_letters import RAW_BYTES, DeadLetter, DeadLetters
from tests.server.auth.session import add_account, login

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def letter(n: int, node: str = "TRK-1", reason: str = "not_json", raw: bytes = b"") -> DeadLetter:
    return DeadLetter(
        received_at=T0 + timedelta(seconds=n),
        topic=f"bondwatch/v1/truck/{node}/position",
        kind="truck",
        node_id=node,
        channel="position",
        reason=reason,
        detail=f"letter {n}",
        device_ts=None,
        raw=raw or b"garbage %d" % n,
    )


def test_the_store_keeps_the_newest(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        letters = DeadLetters(store.engine, keep=5)
        letters.add([letter(n) for n in range(1, 4)])
        letters.add([letter(n) for n in range(4, 9)])
        assert letters.count() == 5
        assert [d["detail"] for d in letters.list()] == [f"letter {n}" for n in range(8, 3, -1)]
        letters.add([letter(n) for n in range(9, 20)])  # more than kept, in one batch
        assert [d["detail"] for d in letters.list()] == [f"letter {n}" for n in range(19, 14, -1)]
        big = b"\xff\xfe" + b"x" * 5000
        letters.add([letter(20, node="TRK-2", reason="too_large", raw=big)])
        (row,) = letters.list(node_id="TRK-2")
        assert row["size"] == 5002 and row["truncated"]
        assert base64.b64decode(row["raw_base64"]) == big[:RAW_BYTES]
        assert row["raw_text"].startswith("\\xff\\xfex")
        assert row["received_at"] == T0 + timedelta(seconds=20)
        assert [d["reason"] for d in letters.list(reason="not_json", limit=2)] == ["not_json"] * 2
        assert letters.list(channel="passage") == []
    finally:
        store.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    DeadLetters(services.store.engine, keep=3).add(
        [letter(1), letter(2, node="TRK-2", reason="too_deep"), letter(3), letter(4)]
    )
    add_account(services, "admin-1", "admin")
    add_account(services, "officer-1", "officer")
    add_account(services, "supervisor-1", "supervisor")
    with TestClient(create_app(services)) as test_client:
        yield test_client


def test_admins_list_dead_letters(client: TestClient) -> None:
    login(client, "admin-1")
    res = client.get("/api/v1/dead-letters")
    assert res.status_code == 200, res.text
    rows = res.json()
    assert [r["detail"] for r in rows] == ["letter 4", "letter 3", "letter 2"]  # 3 kept
    assert rows[0]["raw_text"] == "garbage 4" and rows[0]["truncated"] is False
    assert rows[0]["topic"] == "bondwatch/v1/truck/TRK-1/position"
    assert rows[0]["received_at"].startswith("2026-11-23T08:00:04")
    res = client.get("/api/v1/dead-letters", params={"node": "TRK-2"})
    assert [r["reason"] for r in res.json()] == ["too_deep"]
    res = client.get("/api/v1/dead-letters", params={"reason": "not_json", "limit": 1})
    assert [r["detail"] for r in res.json()] == ["letter 4"]
    assert client.get("/api/v1/dead-letters", params={"reason": "nonsense"}).status_code == 422
    assert client.get("/api/v1/dead-letters", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("username", ["officer-1", "supervisor-1"])
def test_others_may_not(client: TestClient, username: str) -> None:
    login(client, username)
    res = client.get("/api/v1/dead-letters")
    assert res.status_code == 403
    assert "letter" not in res.text


def test_without_an_account(client: TestClient) -> None:
    assert client.get("/api/v1/dead-letters").status_code == 401


def test_the_judge_goes_on_past_a_row_that_does_not_decode() -> None:
    good = (
        "position",
        '{"node_id":"T1","seq":1,"ts":"2026-11-23T08:00:00.000Z","fix":"none"}',
        T0,
    )
    wire = [
        ("position", "[" * 100_000, T0),
        good,
        ("position", '{"seq": ' + "9" * 5000 + "}", T0),
        ("no-such-channel", "{}", T0),
        ("position", None, T0),  # not even text
        ("short",),  # not even a row
        good,
    ]
    batch = decode_rows(wire)  # type: ignore[arg-type]
    assert [m.message.seq for m in batch] == [1, 1]
