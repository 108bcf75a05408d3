"""Images in an S3-compatible object store (PutObject, GetObject, DeleteObject), with boto3.

The credentials come from the environment variables the settings name, never from the
file. boto3 is imported only when `evidence.storage.type` is `s3` (`pip install
'.[server,s3]'`).
"""

from __future__ import annotations

import os
from typing import Any

from server.evidence.config import S3StorageSettings
from server.evidence.storage import StorageError


class S3Storage:
    def __init__(self, settings: S3StorageSettings) -> None:
        self.settings = settings
        self.client = _client(settings)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

    def _key(self, key: str) -> str:
        return self.settings.prefix + key

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.settings.bucket,
                Key=self._key(key),
                Body=data,
                ContentType="image/jpeg",
                ChecksumAlgorithm="SHA256",
            )
        except self._errors as err:
            raise StorageError(f"cannot store {key} in {self.describe()}: {err}") from err

    def get(self, key: str) -> bytes | None:
        try:
            found = self.client.get_object(Bucket=self.settings.bucket, Key=self._key(key))
            data: bytes = found["Body"].read()
        except self._errors as err:
            code = getattr(err, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"cannot read {key} in {self.describe()}: {err}") from err
        return data

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.settings.bucket, Key=self._key(key))
        except self._errors as err:
            raise StorageError(f"cannot delete {key} in {self.describe()}: {err}") from err

    def describe(self) -> str:
        where = self.settings.endpoint_url or "AWS"
        return f"bucket {self.settings.bucket} at {where}"


def _client(settings: S3StorageSettings) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as err:
        raise StorageError(
            "evidence.storage.type s3 needs boto3: pip install '.[server,s3]'"
        ) from err
    key_id = os.environ.get(settings.access_key_id_env)
    secret = os.environ.get(settings.secret_access_key_env)
    if not key_id or not secret:
        raise StorageError(
            f"set {settings.access_key_id_env} and {settings.secret_access_key_env} "
            "for the evidence bucket"
        )
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=str(settings.ca_file) if settings.ca_file is not None else True,
        config=Config(
            connect_timeout=settings.timeout_s,
            read_timeout=settings.timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )
