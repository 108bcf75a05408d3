"""The running server signs audit checkpoints on its timer, and `GET /api/v1/audit/verify`
checks the chain against them: a `bondwatch-server` process, its broker and SQLite."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from contract.ids import utc_now
from contract.signing import generate_private_key, private_key_to_pem
from devtools.broker import MosquittoBroker, free_port
from server.audit.checkpoint import Checkpoint
from server.audit.sinks import read_checkpoints
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store
from tests.server.audit.test_checkpoints import rewrite
from tests.server.auth.session import PASSWORD

PROJECT = Path(__file__).resolve().parents[3]


def _written(folder: Path) -> list[Checkpoint]:
    if not folder.is_dir():
        return []
    return [c for c in read_checkpoints(folder) if isinstance(c, Checkpoint)]


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if callable(condition) and condition():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
def test_the_server_checkpoints_on_its_timer_and_rest_verify_uses_them(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(database)
    AccountStore(store.engine, AuthSettings()).create(
        "test", "sup", "Sup", "supervisor", PASSWORD, utc_now()
    )  # two audit entries: user.create (and auth.login below)
    store.close()
    key = tmp_path / "audit.pem"
    key.write_bytes(private_key_to_pem(generate_private_key()))
    folder = tmp_path / "checkpoints"
    port = free_port()
    config = tmp_path / "server.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "broker": {
                    "host": broker.host,
                    "port": broker.port,
                    "client_id": f"srv-{uuid.uuid4().hex[:8]}",
                },
                "http": {"port": port},
                "storage": {"url": database},
                "ingest": {"judge": "thread", "passages": "shared"},
                "audit": {
                    "checkpoints": {"key_file": str(key), "folder": str(folder), "interval_s": 1}
                },
            }
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--config", str(config)],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{base}/healthz").status_code == 200, 40, "the server")
        client = httpx.Client(base_url=base)
        res = client.post("/api/v1/auth/login", json={"username": "sup", "password": PASSWORD})
        assert res.status_code == 200, res.text
        # A checkpoint at start and one a second later; the next one records the login.
        _wait(lambda: any(c.count == 2 for c in _written(folder)), 10, "a checkpoint")
        answer = client.get("/api/v1/audit/verify").json()
        assert answer["ok"] is True and answer["entries"] == 2 and answer["checkpoints"] >= 2
        tampered = Store.open(database)
        rewrite(tampered, edit_seq=1)  # every hash recomputed: the chain alone holds
        tampered.close()
        answer = client.get("/api/v1/audit/verify").json()
        assert answer["ok"] is False and answer["first_bad_seq"] == 1  # the start's checkpoint
        assert answer["checkpoint"].startswith("checkpoints-")
        assert answer["checkpoint"].endswith(".log:1")
        assert "entry 1 no longer has the hash" in answer["reason"]
        before = len(_written(folder))
        time.sleep(2.5)
        assert len(_written(folder)) >= before + 2  # still one a second
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    stderr = server.stderr.read().decode() if server.stderr else ""
    assert "audit checkpoint not written" not in stderr
    times = [c.at for c in _written(folder)]
    assert times == sorted(times) and len(times) >= 5
