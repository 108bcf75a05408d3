"""Upload the queued evidence to the server, on a task of its own: the lane never waits.

Each image is `PUT /api/v1/passages/{id}/images/{n}` with the gate's API token
(docs/gates.md, *Evidence*). What the server answers decides its fate:

- 201 or 200 (stored, or stored before): the image leaves the queue.
- 404 (the passage has not reached the server yet): tried again later, waiting longer
  each time.
- 401, 403 (token missing, revoked, another gate's passage): tried again later; the
  token file is read again; logged once.
- 400, 409, 413, 415, 422 (refused for good): leaves the queue, logged with the reason.
- 408, 429, 5xx, no answer: the whole queue waits (doubling, up to `retry_max_s`);
  logged once, and once when the server answers again.

An image not taken after `give_up_after_s`, or whose file is gone, leaves the queue (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Sequence

import httpx

from contract.evidence import JPEG_TYPE, META_HEADER, image_url
from edge.gate.config import EvidenceUpload
from edge.gate.evidence import EvidenceImage
from edge.gate.upload_queue import Upload, UploadQueue

log = logging.getLogger(__name__)

#: Answers after which the image can never be stored: it leaves the queue.
FINAL_REFUSALS = frozenset({400, 409, 413, 415, 422})
#: Answers that say the server (or a proxy) is overloaded or away: the whole queue waits.
SERVER_TROUBLE = frozenset({408, 429, 500, 502, 503, 504})
#: Longest idle wait between looks at the queue (a clock jump cannot stall it for long).
IDLE_S = 30.0


class EvidenceUploader:
    def __init__(
        self,
        settings: EvidenceUpload,
        queue: UploadQueue,
        context: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self._ctx = context
        self._clock = clock
        self._wake = asyncio.Event()
        self._pause_until = 0.0
        self._pause_s = 0.0
        self._token: str | None = None
        self._server_lost = False
        self._token_refused = False
        self.uploaded_total = 0

    # ---- the agent's side ---------------------------------------------------------------

    async def enqueue(self, passage_id: str, images: Sequence[EvidenceImage]) -> None:
        """Queue a passage's images (on a worker thread) and wake the uploader."""
        if not images:
            return
        try:
            added = await asyncio.to_thread(self.queue.add, passage_id, images, self._clock())
        except (OSError, sqlite3.Error) as err:  # the lane goes on; the files stay on disk
            log.error("%s: images of %s not queued for upload: %s", self._ctx, passage_id, err)
            return
        log.debug("%s: %d images of %s queued for upload", self._ctx, added, passage_id)
        self._wake.set()

    # ---- the task -------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        verify: str | bool = str(s.ca_file) if s.ca_file is not None else True
        async with httpx.AsyncClient(
            base_url=s.server_url.rstrip("/"), timeout=s.timeout_s, verify=verify
        ) as client:
            while True:
                try:
                    await self._drain(client)
                except Exception:  # a bug here must never end the gate agent
                    log.exception("%s: evidence upload failed; trying again", self._ctx)
                    self._pause_until = self._clock() + self.settings.retry_max_s
                await self._sleep()

    async def _sleep(self) -> None:
        now = self._clock()
        due = await asyncio.to_thread(self.queue.next_due)
        wake_at = max(self._pause_until, due if due is not None else now + IDLE_S)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(IDLE_S, max(0.0, wake_at - now))):
                await self._wake.wait()

    async def _drain(self, client: httpx.AsyncClient) -> None:
        while self._clock() >= self._pause_until:
            items = await asyncio.to_thread(self.queue.due, self._clock())
            if not items:
                return
            for item in items:
                if not await self._one(client, item):
                    return  # the server is away: the queue waits

    def _backoff(self, attempts: int) -> float:
        s = self.settings
        wait: float = min(s.retry_max_s, s.retry_min_s * 2.0 ** min(attempts, 30))
        return wait * random.uniform(0.8, 1.2)

    async def _one(self, client: httpx.AsyncClient, item: Upload) -> bool:
        """Try one image; False when the server cannot be reached (stop for now)."""
        now = self._clock()
        what = f"image {item.n} of {item.passage_id}"
        if now - item.created > self.settings.give_up_after_s:
            log.error(
                "%s: %s not taken by the server in %.0f s (%d tries): left out of the queue",
                self._ctx, what, now - item.created, item.attempts,
            )  # fmt: skip
            await asyncio.to_thread(self.queue.done, item.id)
            return True
        try:
            data = await asyncio.to_thread(item.path.read_bytes)
        except OSError as err:
            log.error("%s: %s cannot be read (%s): left out of the queue", self._ctx, what, err)
            await asyncio.to_thread(self.queue.done, item.id)
            return True
        try:
            token = await self._read_token()
        except OSError as err:
            if not self._token_refused:
                log.error("%s: no API token for uploads: %s (uploads wait)", self._ctx, err)
            self._token_refused = True
            await self._server_away(item, f"no token: {err}")
            return False
        try:
            res = await client.put(
                image_url(item.passage_id, item.n),
                content=data,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": JPEG_TYPE,
                    META_HEADER: item.meta.header(),
                },
            )
        except httpx.HTTPError as err:
            await self._server_away(item, f"{type(err).__name__}: {err}")
            return False
        status = res.status_code
        if status in SERVER_TROUBLE:
            await self._server_away(item, f"HTTP {status}")
            return False
        self._server_back()
        if status in (200, 201):
            self._token_refused = False
            self.uploaded_total += 1
            await asyncio.to_thread(self.queue.done, item.id)
            log.debug("%s: %s uploaded (%d)", self._ctx, what, status)
            return True
        reason = _reason(res)
        if status in FINAL_REFUSALS:
            log.error("%s: server refused %s for good (%d): %s", self._ctx, what, status, reason)
            await asyncio.to_thread(self.queue.done, item.id)
            return True
        if status in (401, 403):
            if not self._token_refused:
                log.error(
                    "%s: server refused this gate's token (%d): %s — check %s and the device "
                    "account (uploads wait)",
                    self._ctx, status, reason, self.settings.token_file,
                )  # fmt: skip
            self._token_refused = True
            self._token = None  # read the file again: the token may have been replaced
        retry_at = self._clock() + self._backoff(item.attempts)
        await asyncio.to_thread(self.queue.retry, item.id, retry_at, f"HTTP {status}: {reason}")
        return True

    async def _read_token(self) -> str:
        if self._token is None:
            text = await asyncio.to_thread(self.settings.token_file.read_text, "utf-8")
            lines = text.splitlines()
            self._token = lines[0].strip() if lines else ""
        return self._token

    async def _server_away(self, item: Upload, why: str) -> None:
        s = self.settings
        self._pause_s = min(s.retry_max_s, max(s.retry_min_s, self._pause_s * 2))
        self._pause_until = self._clock() + self._pause_s * random.uniform(0.8, 1.2)
        if not self._server_lost:
            log.warning(
                "%s: evidence server %s cannot take uploads (%s): %d images wait",
                self._ctx, s.server_url, why, await asyncio.to_thread(self.queue.count),
            )  # fmt: skip
            self._server_lost = True
        await asyncio.to_thread(self.queue.retry, item.id, self._pause_until, why)

    def _server_back(self) -> None:
        self._pause_s = 0.0
        if self._server_lost:
            log.info(
                "%s: evidence server %s takes uploads again", self._ctx, self.settings.server_url
            )
            self._server_lost = False


def _reason(res: httpx.Response) -> str:
    try:
        return str(res.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return res.text[:300]
