"""What the REST API says about a passage's images (server.api.evidence, server.api.gates)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from contract.evidence import TextBox, image_url
from server.evidence.service import EvidenceService
from server.services import Services


def evidence_service(request: Request) -> EvidenceService:
    """The server's `EvidenceService` (`Services.evidence`, from `evidence:` in the
    server file)."""
    svc: Services = request.app.state.services
    return svc.evidence


Evidence = Annotated[EvidenceService, Depends(evidence_service)]


class ImageOut(BaseModel):
    n: int = Field(description="the image's number within its passage")
    kind: Literal["frame", "crop"]
    camera: str
    frame: int | None = Field(description="for a crop: the `n` of its frame")
    texts: list[TextBox] = Field(description="readings with their boxes and confidences")
    width: int
    height: int
    size: int = Field(description="bytes")
    sha256: str
    uploaded_at: datetime
    url: str = Field(description="where the JPEG is served (signed-in accounts)")


def image_out(row: dict[str, Any]) -> ImageOut:
    fields = {k: row[k] for k in ImageOut.model_fields if k in row}
    return ImageOut.model_validate({**fields, "url": image_url(row["passage_id"], row["n"])})
