"""The gate's upload queue and uploader, against a real HTTP server on loopback.

The server answers each image's PUT from a script (status per try); the tests check what
the queue keeps, for how long, and that the uploader never raises into the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from contract.evidence import ImageMeta, TextBox
from edge.gate.config import EvidenceUpload
from edge.gate.evidence import EvidenceImage
from edge.gate.upload_queue import UploadQueue
from edge.gate.uploader import EvidenceUploader

TOKEN = "bwt_0123456789abcdef_secret"


@dataclass
class Script:
    """Statuses to answer per path, in turn (the last one repeats); what came in."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, Any], int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, path: str) -> int:
        with self.lock:
            todo = self.answers.get(path, [201])
            return todo.pop(0) if len(todo) > 1 else todo[0]


@pytest.fixture
def http() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = script.next(self.path)
            meta = json.loads(self.headers["X-Image-Meta"])
            with script.lock:
                script.seen.append((self.path, self.headers["Authorization"], meta, len(body)))
            reply = json.dumps({"error": {"code": "x", "message": f"scripted {status}"}})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def images(folder: Path, passage: str, count: int) -> list[EvidenceImage]:
    out = []
    for n in range(count):
        path = folder / f"{passage}-{n}.jpg"
        path.write_bytes(b"\xff\xd8\xff" + bytes(100) + b"\xff\xd9")
        text = TextBox(kind="container", text="CSQU3054383", confidence=0.9,
                       needs_review=False, box=(1, 1, 50, 20))  # fmt: skip
        out.append(EvidenceImage(n, path, ImageMeta(kind="frame", camera="rear", texts=[text])))
    return out


def settings(tmp_path: Path, url: str, **over: object) -> EvidenceUpload:
    (tmp_path / "token").write_text(TOKEN + "\n")
    return EvidenceUpload.model_validate({
        "server_url": url, "token_file": tmp_path / "token",
        "queue_path": tmp_path / "uploads.sqlite3", "retry_min_s": 0.05, "retry_max_s": 0.2,
        **over,
    })  # fmt: skip


@contextlib.asynccontextmanager
async def running(uploader: EvidenceUploader) -> AsyncIterator[None]:
    task = asyncio.create_task(uploader.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(what: Callable[[], bool], within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not what():  # noqa: ASYNC110 - a file and a counter, no event to wait on
            await asyncio.sleep(0.02)


def test_the_queue_survives_a_reopen_and_is_bounded(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "q.sqlite3", max_items=10)
    assert queue.add("P-1", images(tmp_path, "P-1", 4), now=100.0) == 4
    assert queue.add("P-1", images(tmp_path, "P-1", 4), now=101.0) == 0  # queued once
    again = UploadQueue(tmp_path / "q.sqlite3", max_items=10)  # a restart
    assert [(u.passage_id, u.n, u.meta.texts[0].text) for u in again.due(100.0)] == [
        ("P-1", n, "CSQU3054383") for n in range(4)
    ]
    again.add("P-2", images(tmp_path, "P-2", 8), now=102.0)
    assert again.count() == 10 and again.dropped_total == 2
    assert [(u.passage_id, u.n) for u in again.due(200.0, limit=3)] == [
        ("P-1", 2), ("P-1", 3), ("P-2", 0)
    ]  # fmt: skip
    again.retry(again.due(200.0)[0].id, at=500.0, error="HTTP 404")
    assert again.next_due() == 100.0  # P-1 image 3; image 2 waits until 500
    assert (again.due(200.0)[0].passage_id, again.due(200.0)[0].n) == ("P-1", 3)


async def test_each_answer_decides_the_images_fate(
    tmp_path: Path, http: tuple[str, Script]
) -> None:
    url, script = http
    base = "/api/v1/passages/P-A/images/"
    script.answers = {
        base + "0": [201],
        base + "1": [404, 404, 201],  # the passage reaches the server late
        base + "2": [415],  # never a JPEG: dropped
        base + "3": [409],  # other content stored: dropped
        base + "4": [200],  # the same image stored before
    }
    queue = UploadQueue(tmp_path / "uploads.sqlite3", max_items=100)
    uploader = EvidenceUploader(settings(tmp_path, url), queue, "test gate")
    async with running(uploader):
        await uploader.enqueue("P-A", images(tmp_path, "P-A", 5))
        await until(lambda: queue.count() == 0)
    tries = [path.rsplit("/", 1)[1] for path, *_ in script.seen]
    assert sorted(tries) == ["0", "1", "1", "1", "2", "3", "4"]
    assert {auth for _, auth, _, _ in script.seen} == {f"Bearer {TOKEN}"}
    assert script.seen[0][2]["texts"][0]["box"] == [1.0, 1.0, 50.0, 20.0]
    assert uploader.uploaded_total == 3


async def test_a_server_away_pauses_the_queue_and_nothing_is_lost(
    tmp_path: Path, http: tuple[str, Script]
) -> None:
    url, script = http
    script.answers = {f"/api/v1/passages/P-B/images/{n}": [503, 503, 201] for n in range(3)}
    queue = UploadQueue(tmp_path / "uploads.sqlite3", max_items=100)
    uploader = EvidenceUploader(settings(tmp_path, url), queue, "test gate")
    async with running(uploader):
        await uploader.enqueue("P-B", images(tmp_path, "P-B", 3))
        await until(lambda: queue.count() == 0)
    assert uploader.uploaded_total == 3
    # While paused, one try at a time: never all three 503s in one go after the first.
    first_503s = [p for p, *_ in script.seen[:2]]
    assert len(set(first_503s)) == 1


async def test_no_server_and_no_token_keep_the_images(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "uploads.sqlite3", max_items=100)
    closed = settings(tmp_path, "http://127.0.0.1:9", token_file=tmp_path / "missing")
    uploader = EvidenceUploader(closed, queue, "test gate")
    async with running(uploader):
        await uploader.enqueue("P-C", images(tmp_path, "P-C", 2))
        await asyncio.sleep(0.5)
    assert queue.count() == 2
    assert max(u.attempts for u in queue.due(1e12)) >= 1  # tried, kept, the queue paused
    (tmp_path / "missing").write_text(TOKEN)  # a token now, but nothing listens on port 9
    async with running(uploader):
        await asyncio.sleep(0.5)
    assert queue.count() == 2


async def test_a_missing_file_or_an_old_image_leaves_the_queue(
    tmp_path: Path, http: tuple[str, Script]
) -> None:
    url, script = http
    queue = UploadQueue(tmp_path / "uploads.sqlite3", max_items=100)
    uploader = EvidenceUploader(settings(tmp_path, url, give_up_after_s=60), queue, "gate")
    gone = images(tmp_path, "P-D", 2)
    gone[0].path.unlink()
    queue.add("P-D", gone[:1], now=time.time())  # its file is gone
    queue.add("P-E", images(tmp_path, "P-E", 1), now=1.0)  # queued long ago
    async with running(uploader):
        await until(lambda: queue.count() == 0)
    assert script.seen == []
