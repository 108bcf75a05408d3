"""Configuration of one gate camera."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.lifecycle import renamed_keys


class CameraConfig(BaseModel):
    """A camera read through OpenCV, opened by URL.

    URL kinds: ``rtsp://…`` and ``http://…`` streams (e.g. MJPEG over HTTP), a V4L2
    device (``/dev/video0`` or ``v4l2:///dev/video0``), a video file, or a folder of
    images (``folder:///path`` or a directory path) read in name order.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["opencv"] = Field(description="driver: OpenCV VideoCapture")
    url: str = Field(
        min_length=1, description="stream URL, V4L2 device, video file or image folder"
    )
    name: str = Field(default="camera", description="camera name used in logs, e.g. lane1-front")
    frames_before: int = Field(
        default=4, ge=0, le=100, description="frames kept from before a trigger"
    )
    frames_after: int = Field(
        default=6, ge=0, le=100, description="frames captured after a trigger"
    )
    burst_timeout_s: float = Field(
        default=5.0, gt=0, description="longest wait for the frames after a trigger"
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="first wait before reconnecting")
    reconnect_max_s: float = Field(
        default=10.0, gt=0, description="longest wait between reconnects (doubling)"
    )
    folder_poll_s: float = Field(
        default=0.05, gt=0, description="how often a folder is checked for new images"
    )
    loop_files: bool = Field(
        default=False, description="replay a video file or folder from the start at its end"
    )

    @model_validator(mode="before")
    @classmethod
    def _old_key_names(cls, data: object) -> object:
        return renamed_keys(data, {"reconnect_initial_s": "reconnect_min_s"}, "camera")
