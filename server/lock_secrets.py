"""The per-lock secrets the server holds (never the gateway): they make the lock's tokens
(`server.gates.lock_tokens`) and check the MAC of its reports (`server.rules.lock_auth`).

Read from `gates.lock_secrets_file`, a YAML mapping `lock_id: secret` (UTF-8 text, as
provisioned into the lock). A lock missing from it cannot be unsealed remotely, and its
reports cannot be authenticated: the gate holds a truck that carries it
(`lock_unauthenticated`, docs/gates.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

#: The shortest secret accepted, in bytes (128 bits of a random text).
MIN_SECRET_BYTES = 16


class LockSecretsError(ValueError):
    """The lock secrets file is missing, unreadable or malformed."""


class LockSecrets(Mapping[str, bytes]):
    """Lock id → secret; read-only."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self._secrets = dict(secrets)

    @classmethod
    def load(cls, path: Path | None) -> LockSecrets:
        """Read `path`; None gives an empty set (no remote unseal, no authenticated lock)."""
        if path is None:
            return cls({})
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise LockSecretsError(f"{path}: cannot read lock secrets ({err})") from err
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise LockSecretsError(f"{path}: must map lock id → secret")
        problems = [
            f"lock {k!r}: the secret must be a text of {MIN_SECRET_BYTES} characters or more"
            for k, v in data.items()
            if not isinstance(v, str) or len(v.encode("utf-8")) < MIN_SECRET_BYTES
        ]
        if problems:
            raise LockSecretsError(f"{path}: " + "; ".join(problems))
        log.info("lock secrets loaded from %s: %d locks", path, len(data))
        return cls({str(k): v.encode("utf-8") for k, v in data.items()})

    def __getitem__(self, lock_id: str) -> bytes:
        return self._secrets[lock_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:  # never the secrets themselves
        return f"LockSecrets({len(self)} locks)"
