"""A site's certificate authority for the broker: devices and server connections prove
who they are with a TLS client certificate whose common name is their account.

The production broker (config/mosquitto/mosquitto.conf) requires a client certificate
and takes its common name as the MQTT user name (`use_identity_as_username`) and the
user name as the client id (`use_username_as_clientid`): a device holding the key of
`TRK-YUE-A01` is `TRK-YUE-A01` at the broker, reaches only that account's topics
(config/mosquitto/bondwatch.acl) and cannot take over any other session.

Keys are ECDSA P-256 (every TLS stack of an embedded gateway speaks it), signatures
SHA-256. Steps for a site: docs/broker-security.md; command: `bondwatch-broker`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from contract.ids import is_node_id

CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
#: A device certificate's default life: renewed at the yearly maintenance visit, with a
#: quarter of slack. The CA's: twenty years (it signs, it never leaves the admin's machine).
DEVICE_DAYS: Final = 456
CA_DAYS: Final = 7305
#: Certificates are valid from a little before issue, for a device whose clock is behind.
BACKDATE: Final = dt.timedelta(hours=1)


class PkiError(ValueError):
    """Bad input to the CA (a name, a missing or existing file); nothing was written."""


@dataclass(frozen=True)
class Issued:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet, with `mode` from its creation on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise PkiError(f"{path} exists already; remove it first to replace it")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(folder: Path, name: str, days: int = CA_DAYS) -> Issued:
    """A new site CA in `folder` (`ca.crt`, and `ca.key` readable by its owner only)."""
    if not name.strip():
        raise PkiError("the CA needs a name, e.g. 'Huangpu Customs BondWatch CA'")
    if days < 1:
        raise PkiError("days must be at least 1")
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    _refuse_existing(cert_path, key_path)
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert=cert_path, key=key_path)


def _load_ca(ca_folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert_path, key_path = ca_folder / CA_CERT, ca_folder / CA_KEY
    for path in (cert_path, key_path):
        if not path.is_file():
            raise PkiError(f"{path} not found: create the CA first (bondwatch-broker ca)")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an ECDSA key of this CA")
    return key, x509.load_pem_x509_certificate(cert_path.read_bytes())


def _usage(*, server: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=server,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    ca_folder: Path,
    out: Path,
    common_name: str,
    days: int,
    *,
    stem: str | None = None,
    hosts: tuple[str, ...] = (),
) -> Issued:
    if days < 1:
        raise PkiError("days must be at least 1")
    ca_key, ca_cert = _load_ca(ca_folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or common_name
    cert_path, key_path = out / f"{stem}.crt", out / f"{stem}.key"
    _refuse_existing(cert_path, key_path)
    key = _new_key()
    now = _now()
    expires = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(server=bool(hosts)), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert=cert_path, key=key_path)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def check_account(account: str) -> None:
    """An account name is a node id or a server connection's account, same syntax."""
    if not is_node_id(account):
        raise PkiError(f"account {account!r} must match [A-Za-z0-9_-]{{1,64}} (a node id)")


def issue_client(ca_folder: Path, out: Path, account: str, days: int = DEVICE_DAYS) -> Issued:
    """A client certificate for `account` (a node id, or a server connection's account):
    `<account>.crt` and `<account>.key` in `out`."""
    check_account(account)
    return _issue(ca_folder, out, account, days)


def issue_broker(ca_folder: Path, out: Path, hosts: list[str], days: int = DEVICE_DAYS) -> Issued:
    """The broker's server certificate (`broker.crt`/`broker.key`), valid for `hosts`
    (the names and addresses the clients connect to; the first is the common name)."""
    if not hosts or any(not h.strip() for h in hosts):
        raise PkiError("give the broker's host names or addresses, e.g. mqtt.customs.example")
    return _issue(ca_folder, out, hosts[0], days, stem="broker", hosts=tuple(hosts))


def common_name(cert_file: Path) -> str:
    """The common name of a PEM certificate (what the broker takes as the user name)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"{cert_file} has no common name")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()
