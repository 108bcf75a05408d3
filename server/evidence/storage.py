"""Where image bytes live: an `ImageStorage` addressed by keys (`{day}/{passage}/{n}.jpg`).

`FolderStorage` keeps them as files, written atomically (temporary file, fsync, rename);
`server.evidence.s3.S3Storage` as objects of an S3-compatible bucket. `storage_for`
picks one from the settings.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from server.evidence.config import EvidenceSettings, S3StorageSettings

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class StorageError(RuntimeError):
    """The storage failed (disk full, unreadable file): the request is answered 503."""


class ImageStorage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def describe(self) -> str: ...


def image_key(day: str, passage_id: str, n: int) -> str:
    """The storage key of image `n` of a passage seen on `day` (YYYY-MM-DD).

    A passage id that is not a plain name (the contract allows any text) is replaced by
    its SHA-256, so no key can leave its folder.
    """
    name = passage_id if _SAFE.match(passage_id) else "h-" + _digest(passage_id)
    return f"{day}/{name}/{n}.jpg"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def storage_for(settings: EvidenceSettings) -> ImageStorage:
    """The storage `evidence.storage` names."""
    chosen = settings.storage
    if isinstance(chosen, S3StorageSettings):
        from server.evidence.s3 import S3Storage  # boto3 only where S3 is configured

        return S3Storage(chosen)
    return FolderStorage(chosen.path)


class FolderStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"bad storage key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # A name of its own for each write: two requests storing the same key at once (a
        # gate's retry while its first upload is still being stored) must not share it.
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot store {key} in {self.root}: {err}") from err

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageError(f"cannot read {key} in {self.root}: {err}") from err

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            if folder == self.root:
                break
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break

    def describe(self) -> str:
        return f"folder {self.root}"
