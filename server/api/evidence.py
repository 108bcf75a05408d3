"""Gate evidence over REST: a gate controller uploads its passages' images; signed-in
accounts list and view them (docs/contract.md, REST; docs/gates.md, *Evidence*)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from contract.evidence import IMAGES_PER_PASSAGE, JPEG_TYPE, META_HEADER
from contract.version import API_PREFIX
from server.api.errors import ApiError
from server.api.evidence_models import Evidence, ImageOut, evidence_service, image_out
from server.api.gates import passage_out
from server.auth.accounts import Account
from server.auth.dependencies import current_account
from server.evidence.service import EvidenceError, too_large
from server.evidence.storage import StorageError
from server.gates.store import GateStore

router = APIRouter(prefix=API_PREFIX, tags=["gates"])

ImageNumber = Annotated[
    int, Path(ge=0, lt=IMAGES_PER_PASSAGE, description="the image's number within its passage")
]
PassageId = Annotated[str, Path(min_length=1, max_length=128)]
#: Browsers may keep an image (it never changes) but only for the signed-in account.
CACHE = "private, max-age=86400, immutable"


def _refused(err: EvidenceError) -> ApiError:
    return ApiError(err.status, err.code, err.message, err.field)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it grows beyond `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _refused(too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _refused(too_large(size, limit))
        chunks.append(chunk)
    return b"".join(chunks)


@router.put(
    "/passages/{passage_id}/images/{n}",
    response_model=ImageOut,
    status_code=201,
    responses={200: {"model": ImageOut, "description": "the same image was stored before"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JPEG_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        "parameters": [
            {
                "name": META_HEADER,
                "in": "header",
                "required": True,
                "description": "ImageMeta as JSON (contract/evidence.py)",
                "schema": {"type": "string"},
            }
        ],
    },
)
async def put_image(
    passage_id: PassageId,
    n: ImageNumber,
    request: Request,
    response: Response,
    evidence: Evidence,
    account: Annotated[Account, Depends(current_account)],
) -> ImageOut:
    """A gate controller uploads image `n` of one of its own passages (a `device` account
    named after the gate's node id, with its API token): the JPEG as the body, its
    metadata in `X-Image-Meta`. Checked whole before anything is stored; the same image
    again is answered 200, another one for the same `n` is refused (409)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JPEG_TYPE:
        raise ApiError(415, "not_jpeg", f"send the image as {JPEG_TYPE}", "content-type")
    data = await _body(request, evidence.settings.max_bytes)
    try:
        stored = await asyncio.to_thread(
            evidence.put, passage_id, n, data, request.headers.get(META_HEADER), account.username
        )
    except EvidenceError as err:
        raise _refused(err) from err
    except StorageError as err:
        raise ApiError(503, "unavailable", str(err)) from err
    if not stored.created:
        response.status_code = 200
        return image_out(stored.row)
    await asyncio.to_thread(_announce, request, passage_id)
    return image_out(stored.row)


def _announce(request: Request, passage_id: str) -> None:
    """The passage again on the live stream, now with this image (console pages update)."""
    svc = request.app.state.services
    row = GateStore(svc.store.engine).get_passage(passage_id)
    if row is None:
        return
    images = evidence_service(request).images(passage_id)
    svc.stream.publish("passage", passage_out(row, images).model_dump(mode="json"))


@router.get("/passages/{passage_id}/images", response_model=list[ImageOut])
async def list_images(passage_id: PassageId, evidence: Evidence) -> list[ImageOut]:
    """The passage's uploaded images (frames and crops) with the readings drawn on each."""
    rows = await asyncio.to_thread(evidence.images, passage_id)
    return [image_out(r) for r in rows]


@router.get(
    "/passages/{passage_id}/images/{n}",
    response_class=Response,
    responses={200: {"content": {JPEG_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def get_image(passage_id: PassageId, n: ImageNumber, evidence: Evidence) -> Response:
    """The JPEG of image `n` (signed-in accounts only)."""
    try:
        row, data = await asyncio.to_thread(evidence.content, passage_id, n)
    except EvidenceError as err:
        raise _refused(err) from err
    except StorageError as err:
        raise ApiError(503, "unavailable", str(err)) from err
    return Response(
        data,
        media_type=JPEG_TYPE,
        headers={
            "Cache-Control": CACHE,
            "ETag": f'"{row["sha256"]}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
