"""Passwords (argon2id), session secrets and API tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults follow RFC 9106's second recommended option (argon2id, t=3,
# m=64 MiB, p=4); we state them so an upgrade of the library does not change them silently.
_HASHER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4, type=Type.ID)
# Verified when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _HASHER.hash("bondwatch: no such account")

TOKEN_PREFIX = "bwt"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash still spends the time of a check."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def password_problem(password: str, username: str, min_length: int) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < min_length:
        return f"the password needs at least {min_length} characters"
    if len(password) > 256:
        return "the password is longer than 256 characters"
    if username and username.lower() in password.lower():
        return "the password must not contain the username"
    if len(set(password)) < 4:
        return "the password repeats too few different characters"
    return None


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (session cookie or API token); not for passwords."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_hex(8)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def new_api_token() -> tuple[str, str]:
    """A fresh token `bwt_<id>_<secret>` and its id; only its digest is stored."""
    token_id = new_id()
    return f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}", token_id


def token_id_of(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 16:
        return None
    return parts[1]
