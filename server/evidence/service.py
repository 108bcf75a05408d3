"""Check, store, list, serve and expire the images of gate passages.

An upload is checked whole before anything is written: the passage exists and was
published by the uploading gate, the metadata fits the contract (`contract.evidence`)
and the image, the bytes are a JPEG within the size limits. Then the bytes go to the
storage under a key that names their digest (a second upload never overwrites the first)
and the row is inserted. The same image again is answered as stored; a different one
for the same `n` is refused: evidence is never replaced.

Blocking: call from a worker thread in request handlers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from contract.evidence import META_MAX_BYTES, ImageMeta
from contract.ids import utc_now
from server.evidence.config import EvidenceSettings
from server.evidence.jpeg import NotJpeg, check_jpeg
from server.evidence.storage import ImageStorage, StorageError, image_key, storage_for
from server.store import schema
from server.store.database import as_utc

log = logging.getLogger(__name__)

I = schema.passage_images.c  # noqa: E741 - the table's columns, as elsewhere in the store
#: Rows deleted per cleanup transaction.
SWEEP_BATCH = 500


class EvidenceError(Exception):
    """An upload or a request refused: HTTP status, error code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Stored:
    row: dict[str, Any]
    created: bool
    """False: the very same image was stored before (an upload repeated)."""


def parse_meta(header: str | None) -> ImageMeta:
    if not header:
        raise EvidenceError(422, "invalid", "the X-Image-Meta header is missing", "X-Image-Meta")
    if len(header.encode("utf-8", "replace")) > META_MAX_BYTES:
        raise EvidenceError(
            422, "invalid", f"X-Image-Meta is longer than {META_MAX_BYTES} bytes", "X-Image-Meta"
        )
    try:
        return ImageMeta.model_validate(json.loads(header))
    except (ValueError, ValidationError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        what = first["msg"] if first else str(err)
        raise EvidenceError(
            422, "invalid", f"X-Image-Meta: {what}", f"X-Image-Meta.{where}".rstrip(".")
        ) from err


def images_of(engine: Engine, passage_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The stored images of each of `passage_ids` (one query; no image: an empty list)."""
    out: dict[str, list[dict[str, Any]]] = {pid: [] for pid in passage_ids}
    if not passage_ids:
        return out
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.passage_images)
            .where(I.passage_id.in_(passage_ids))
            .order_by(I.passage_id, I.n)
        ).all()
    for r in rows:
        out[r.passage_id].append(_row(r._mapping))
    return out


def _row(m: Any) -> dict[str, Any]:
    return {
        "passage_id": m["passage_id"],
        "n": m["n"],
        "kind": m["kind"],
        "camera": m["camera"],
        "frame": m["frame"],
        "texts": m["texts"] if isinstance(m["texts"], list) else json.loads(m["texts"]),
        "width": m["width"],
        "height": m["height"],
        "size": m["size"],
        "sha256": m["sha256"],
        "storage_key": m["storage_key"],
        "uploaded_at": as_utc(m["uploaded_at"]),
        "uploaded_by": m["uploaded_by"],
    }


class EvidenceService:
    def __init__(self, engine: Engine, settings: EvidenceSettings, storage: ImageStorage) -> None:
        self.engine = engine
        self.settings = settings
        self.storage = storage

    @classmethod
    def from_settings(cls, engine: Engine, settings: EvidenceSettings) -> EvidenceService:
        return cls(engine, settings, storage_for(settings))

    # ---- upload --------------------------------------------------------------------------

    def put(
        self,
        passage_id: str,
        n: int,
        data: bytes,
        meta_header: str | None,
        gate_node: str,
        now: datetime | None = None,
    ) -> Stored:
        """Store image `n` of a passage uploaded by the gate controller `gate_node`."""
        passage = self._passage(passage_id)
        if passage["gate_node"] != gate_node:
            raise EvidenceError(
                403,
                "forbidden",
                f"passage {passage_id} was published by gate {passage['gate_node']}, "
                f"not by {gate_node}: a gate uploads images of its own passages only",
                "passage_id",
            )
        meta = parse_meta(meta_header)
        if len(data) > self.settings.max_bytes:
            raise too_large(len(data), self.settings.max_bytes)
        try:
            info = check_jpeg(data, self.settings.max_pixels)
        except NotJpeg as err:
            raise EvidenceError(415, "not_jpeg", str(err), "body") from err
        for i, text in enumerate(meta.texts):
            x0, y0, x1, y1 = text.box
            if x1 > info.width + 1 or y1 > info.height + 1:
                raise EvidenceError(
                    422,
                    "invalid",
                    f"text box {[x0, y0, x1, y1]} lies outside the {info.width}×{info.height} "
                    "image",
                    f"X-Image-Meta.texts.{i}.box",
                )
        digest = hashlib.sha256(data).hexdigest()
        existing = self.image(passage_id, n)
        if existing is not None:
            return self._again(existing, digest, passage_id, n)
        day = passage["ts"].strftime("%Y-%m-%d")
        key = image_key(day, passage_id, n).removesuffix(".jpg") + f"-{digest[:16]}.jpg"
        self.storage.put(key, data)
        row = {
            "passage_id": passage_id,
            "n": n,
            "kind": meta.kind,
            "camera": meta.camera,
            "frame": meta.frame,
            "texts": [t.model_dump(mode="json") for t in meta.texts],
            "width": info.width,
            "height": info.height,
            "size": len(data),
            "sha256": digest,
            "storage_key": key,
            "uploaded_at": now or utc_now(),
            "uploaded_by": gate_node,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(schema.passage_images.insert().values(**row))
        except IntegrityError:
            # The same n stored meanwhile by a concurrent upload.
            found = self.image(passage_id, n)
            if found is None:
                raise
            if found["storage_key"] != key:
                self.storage.delete(key)
            return self._again(found, digest, passage_id, n)
        log.info(
            "passage %s: image %d (%s, camera %s, %d bytes) from %s",
            passage_id, n, meta.kind, meta.camera, len(data), gate_node,
        )  # fmt: skip
        return Stored(row, True)

    @staticmethod
    def _again(existing: dict[str, Any], digest: str, passage_id: str, n: int) -> Stored:
        if existing["sha256"] == digest:
            return Stored(existing, False)
        raise EvidenceError(
            409,
            "conflict",
            f"image {n} of passage {passage_id} is stored already with other content: "
            "evidence is never replaced",
            "n",
        )

    def _passage(self, passage_id: str) -> dict[str, Any]:
        p = schema.passages.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(p.passage_id, p.gate_node, p.ts).where(p.passage_id == passage_id)
            ).first()
        if row is None:
            raise EvidenceError(404, "not_found", f"no passage {passage_id!r} (yet)", "passage_id")
        m = row._mapping
        return {"passage_id": m["passage_id"], "gate_node": m["gate_node"], "ts": as_utc(m["ts"])}

    # ---- reading -------------------------------------------------------------------------

    def images(self, passage_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.passage_images).where(I.passage_id == passage_id).order_by(I.n)
            ).all()
        return [_row(r._mapping) for r in rows]

    def images_of(self, passage_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The images of several passages at once (one query)."""
        return images_of(self.engine, passage_ids)

    def image(self, passage_id: str, n: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.passage_images).where(I.passage_id == passage_id).where(I.n == n)
            ).first()
        return _row(row._mapping) if row is not None else None

    def content(self, passage_id: str, n: int) -> tuple[dict[str, Any], bytes]:
        """The row and bytes of an image; EvidenceError 404 when there is none."""
        row = self.image(passage_id, n)
        if row is None:
            self._passage(passage_id)  # 404 for an unknown passage
            raise EvidenceError(404, "not_found", f"passage {passage_id} has no image {n}", "n")
        data = self.storage.get(row["storage_key"])
        if data is None:
            raise EvidenceError(
                404, "not_found", f"image {n} of passage {passage_id} is no longer stored", "n"
            )
        return row, data

    # ---- retention -----------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> int:
        """Delete the images uploaded before the retention period; how many went."""
        cutoff = (now or utc_now()) - timedelta(days=self.settings.retention_days)
        total = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(I.passage_id, I.n, I.storage_key)
                    .where(I.uploaded_at < cutoff)
                    .order_by(I.uploaded_at)
                    .limit(SWEEP_BATCH)
                ).all()
            if not rows:
                break
            for r in rows:  # the object first: a crash leaves a row without bytes, not garbage
                self.storage.delete(r.storage_key)
            with self.engine.begin() as conn:
                for r in rows:
                    conn.execute(
                        delete(schema.passage_images)
                        .where(I.passage_id == r.passage_id)
                        .where(I.n == r.n)
                    )
            total += len(rows)
        if total:
            log.info(
                "evidence: %d images older than %d days deleted",
                total,
                self.settings.retention_days,
            )
        return total

    async def sweep_forever(self) -> None:
        """The retention timer: sweep at start and every `cleanup_every_s`."""
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except (StorageError, OSError) as err:
                log.error("evidence cleanup failed (tried again later): %s", err)
            except Exception:
                log.exception("evidence cleanup failed (tried again later)")
            await asyncio.sleep(self.settings.cleanup_every_s)


def too_large(size: int, limit: int) -> EvidenceError:
    return EvidenceError(
        413, "too_large", f"the image has {size} bytes, more than {limit} allowed "
        "(evidence.max_bytes)", "body",
    )  # fmt: skip
