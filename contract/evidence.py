"""Gate evidence: the images of a passage and what was read in them (docs/contract.md, REST).

A gate controller uploads each passage's frames and the crops it read with
`PUT /api/v1/passages/{passage_id}/images/{n}`: the body is the JPEG itself
(`Content-Type: image/jpeg`), and `ImageMeta` travels as JSON in the `X-Image-Meta`
header (ASCII: characters beyond it as `\\uXXXX` escapes). `n` numbers the passage's
images from 0; a crop names the `n` of the frame it was cut from.
"""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal, Self
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.ids import NodeId
from contract.version import API_PREFIX

#: Images one passage may have: `n` runs from 0 to IMAGES_PER_PASSAGE - 1 (4 cameras ×
#: 8 frames, each with a crop per text read, fit with room to spare).
IMAGES_PER_PASSAGE: Final = 64
#: Readings drawn on one image.
TEXTS_PER_IMAGE: Final = 16
#: The request header that carries `ImageMeta` as JSON.
META_HEADER: Final = "X-Image-Meta"
#: Largest `X-Image-Meta` value accepted (bytes).
META_MAX_BYTES: Final = 8192
JPEG_TYPE: Final = "image/jpeg"

ImageKind = Literal["frame", "crop"]
Coordinate = Annotated[float, Field(ge=0, le=100_000)]


class TextBox(BaseModel):
    """One reading drawn on an image: where it was found and how sure the reader is."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["container", "plate"] = Field(description="a container number or the plate")
    text: str = Field(min_length=1, max_length=32, description="what was read")
    confidence: float = Field(ge=0, le=1, description="the reading's calibrated confidence")
    needs_review: bool = Field(description="the reader asks an officer to look")
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] = Field(
        description="x0, y0, x1, y1 in this image's pixels (top left origin)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {list(self.box)} must have x0 < x1 and y0 < y1")
        return self


class ImageMeta(BaseModel):
    """What an uploaded image is (the `X-Image-Meta` header)."""

    model_config = ConfigDict(extra="forbid")

    kind: ImageKind = Field(description="frame: a camera frame; crop: a text cut from a frame")
    camera: NodeId = Field(description="the camera's name in the gate's configuration")
    frame: int | None = Field(
        default=None,
        ge=0,
        lt=IMAGES_PER_PASSAGE,
        description="for a crop: the `n` of the frame it was cut from",
    )
    texts: list[TextBox] = Field(
        default_factory=list,
        max_length=TEXTS_PER_IMAGE,
        description="the readings in this image, with their boxes and confidences",
    )

    @model_validator(mode="after")
    def _crop_names_frame(self) -> Self:
        if (self.kind == "crop") != (self.frame is not None):
            raise ValueError("a crop names its frame (`frame`); a frame has none")
        return self

    def header(self) -> str:
        """The `X-Image-Meta` header value (ASCII JSON)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))


def image_url(passage_id: str, n: int) -> str:
    """The REST path of image `n` of a passage (the id percent-encoded)."""
    return f"{API_PREFIX}/passages/{quote(passage_id, safe='')}/images/{n}"
