"""`evidence:` in the server file: where passage images are kept, how large, how long."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class FolderStorageSettings(BaseModel):
    """Images as files in a folder of the server (the default)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["folder"] = Field(default="folder", description="images in a local folder")
    path: Path = Field(
        default=Path("var/evidence"),
        description="the folder (persistent disk; relative paths: to the server file's folder)",
    )


class S3StorageSettings(BaseModel):
    """Images as objects in an S3-compatible bucket (MinIO, Ceph RGW, a cloud's S3)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["s3"] = Field(description="images in an S3-compatible object store")
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#\s]+/?$",
        description="the store's URL, e.g. https://minio.customs.example:9000 (null: AWS)",
    )
    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="the bucket (created beforehand)"
    )
    prefix: str = Field(
        default="evidence/",
        max_length=200,
        pattern=r"^([A-Za-z0-9_.-]+/)*$",
        description="key prefix of every image (folders ending in /, or empty)",
    )
    region: str = Field(default="us-east-1", max_length=64, description="the bucket's region")
    access_key_id_env: str = Field(
        default="BONDWATCH_S3_ACCESS_KEY_ID",
        description="environment variable holding the access key id",
    )
    secret_access_key_env: str = Field(
        default="BONDWATCH_S3_SECRET_ACCESS_KEY",
        description="environment variable holding the secret access key",
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificates to verify the store with (PEM)"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="one request's time limit")


def _storage_type(value: Any) -> str:
    """The storage's `type`; a storage without one is a folder (the default)."""
    found = value.get("type", "folder") if isinstance(value, dict) else getattr(value, "type", None)
    return str(found) if found is not None else "folder"


#: `folder` or `s3`, picked by `type` (which a folder may leave out).
StorageSettings = Annotated[
    Annotated[FolderStorageSettings, Tag("folder")] | Annotated[S3StorageSettings, Tag("s3")],
    Discriminator(_storage_type),
]


class EvidenceSettings(BaseModel):
    """Passage images uploaded by the gate controllers (docs/gates.md, *Evidence*)."""

    model_config = ConfigDict(extra="forbid")

    storage: StorageSettings = Field(
        default_factory=FolderStorageSettings,
        description="where images are stored: `folder` (default) or `s3` (S3-compatible "
        "object storage)",
    )
    max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="largest image accepted (bytes); a larger upload is refused with 413",
    )
    max_pixels: int = Field(
        default=40_000_000,
        ge=10_000,
        le=178_000_000,
        description="largest image accepted (width × height, from the JPEG header; "
        "Pillow, which reads it, refuses any image above 178,956,970 pixels)",
    )
    retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="images are deleted this many days after their upload",
    )
    cleanup_every_s: float = Field(
        default=3600.0, gt=0, le=86400, description="how often expired images are deleted"
    )
