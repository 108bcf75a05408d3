"""Ed25519 signing and verification of server→edge commands.

The signature covers the canonical JSON (`contract.canonical`) of the payload
without its `signature` field, and is carried base64-encoded. Devices hold the
server's public key; a command is refused unless its signature verifies, it is
addressed to this device, it has not expired, and its nonce was never seen.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from contract.canonical import canonical_json
from contract.ids import utc_now
from contract.limits import MAX_PAYLOAD_BYTES, RejectReason
from contract.payloads import CommandOutcome, PayloadError, SignedCommand, decode

# `cryptography` is imported where a key is made or used, not here: an agent that only
# verifies loads it on its first command (about 7 MB of a truck agent's memory otherwise).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

C = TypeVar("C", bound=SignedCommand)

#: Clocks of devices and server may differ this much before `issued_at` counts as "future".
DEFAULT_CLOCK_SKEW = timedelta(seconds=30)


class KeyFileError(ValueError):
    """A key file or string that is not an Ed25519 key."""


def generate_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path}: not a PEM private key ({err})") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError as err:
        raise KeyFileError(f"{path}: not a PEM public key ({err})") from err
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


class VerifyKey(Protocol):
    """What checking a signature needs of a key (`Ed25519PublicKey` is one)."""

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return if `signature` holds over `data`; raise (InvalidSignature) if not."""
        ...


#: DER of an Ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410, section 4:
#: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_PUBLIC = ("-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----")


class DeferredEd25519Key:
    """An Ed25519 public key held as its 32 bytes; `cryptography` is loaded on the first
    `verify`, so that an agent which seldom receives a command does not carry it."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        self.raw = raw
        self._key: Ed25519PublicKey | None = None

    def verify(self, signature: bytes, data: bytes) -> None:
        if self._key is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            self._key = Ed25519PublicKey.from_public_bytes(self.raw)
        self._key.verify(signature, data)


def load_verify_key(path: Path) -> DeferredEd25519Key:
    """The Ed25519 public key of a PEM file (SubjectPublicKeyInfo), checked now, by its
    RFC 8410 form, with the same errors as `load_public_key`; used on the first command."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as err:
        raise KeyFileError(f"{path}: not a PEM public key ({err})") from err
    begin, end = _PEM_PUBLIC
    head, found, rest = text.partition(begin)
    body, closed, _ = rest.partition(end)
    if not found or not closed or head.strip():
        raise KeyFileError(f"{path}: not a PEM public key (no {begin} … {end} block)")
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error as err:
        raise KeyFileError(f"{path}: not a PEM public key ({err})") from err
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return DeferredEd25519Key(der[len(_ED25519_SPKI_PREFIX) :])


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def new_command_id() -> str:
    return str(uuid.uuid4())


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """What the signature covers: the canonical JSON of everything but `signature`."""
    return canonical_json({k: v for k, v in payload.items() if k != "signature"})


def sign(command: C, key: Ed25519PrivateKey) -> C:
    """Return `command` with its `signature` set."""
    unsigned = command.model_dump(mode="json", exclude_none=True, exclude={"signature"})
    signature = base64.b64encode(key.sign(signing_bytes(unsigned))).decode("ascii")
    return command.model_copy(update={"signature": signature})


def signature_valid(payload: dict[str, Any], key: VerifyKey) -> bool:
    """Check the signature of a received payload exactly as it arrived."""
    from cryptography.exceptions import InvalidSignature

    text = payload.get("signature")
    if not isinstance(text, str):
        return False
    try:
        raw = base64.b64decode(text, validate=True)
        key.verify(raw, signing_bytes(payload))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


class NonceStore(Protocol):
    """Remembers nonces until their command expires. Durable in devices."""

    def claim(self, nonce: str, expires_at: datetime) -> bool:
        """Record `nonce`; False when it was already recorded."""
        ...


class MemoryNonceStore:
    """A nonce store for tests and the server side; forgets on restart."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}

    def claim(self, nonce: str, expires_at: datetime) -> bool:
        now = utc_now()
        for old in [n for n, exp in self._seen.items() if exp < now]:
            del self._seen[old]
        if nonce in self._seen:
            return False
        self._seen[nonce] = expires_at
        return True


#: Why a command that parsed was not verified; one that did not parse has the contract's
#: reason (`contract.limits.RejectReason`: too_large, too_deep, not_json, invalid, …).
CommandRefusal = Literal["bad_signature", "wrong_node", "future", "expired", "replay"]


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a command. `command` is set when it parsed."""

    ok: bool
    result: CommandOutcome | None
    detail: str
    command: SignedCommand | None = None
    #: Why it was not verified (None when it was).
    reason: RejectReason | CommandRefusal | None = None


class CommandVerifier:
    """Checks commands for one device: signature, addressee, expiry, nonce."""

    def __init__(
        self,
        public_key: VerifyKey,
        node_id: str,
        nonces: NonceStore,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self._key = public_key
        self._node_id = node_id
        self._nonces = nonces
        self._skew = clock_skew

    def verify(
        self, model: type[SignedCommand], raw: bytes | str, now: datetime | None = None
    ) -> Verification:
        """Parse and check `raw`. The nonce is claimed only when all else passed.

        Never raises on what arrives: every payload, however broken, gets an outcome."""
        now = now or utc_now()
        try:  # held to the contract's bounds (size, nesting, digits) before parsing
            command = decode(model, raw, MAX_PAYLOAD_BYTES["command"])
        except PayloadError as err:
            return Verification(False, "refused", f"malformed command: {err}", reason=err.reason)
        try:  # verify over the payload as received, not as re-serialised
            signed = signature_valid(json.loads(raw), self._key)
        except (ValueError, RecursionError):  # what pydantic parsed, json should too
            signed = False
        if not signed:
            return Verification(
                False, "bad_signature", "signature does not verify", command, "bad_signature"
            )
        if command.node_id != self._node_id:
            detail = f"command is for {command.node_id}, not {self._node_id}"
            return Verification(False, "refused", detail, command, "wrong_node")
        if command.issued_at > now + self._skew:
            return Verification(False, "refused", "issued_at is in the future", command, "future")
        if command.expires_at <= now:
            detail = f"expired at {command.expires_at}"
            return Verification(False, "expired", detail, command, "expired")
        if not self._nonces.claim(command.nonce, command.expires_at):
            detail = "nonce already used (replay)"
            return Verification(False, "refused", detail, command, "replay")
        return Verification(True, None, "verified", command)
