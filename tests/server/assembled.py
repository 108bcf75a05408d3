"""A server's components for the tests that run its REST API without the broker: built
once, as the server builds them (`server.app.build_services`), with a signing key of
their own and a command publisher that keeps what it was given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.payloads import SignedCommand
from contract.signing import generate_private_key, private_key_to_pem
from contract.topics import Kind
from server.app import build_services
from server.config import GeographySettings, ServerConfig, StorageSettings
from server.evidence.config import EvidenceSettings, FolderStorageSettings
from server.gates.config import GatesSettings
from server.services import Services
from tests.lock_reports import write_lock_secrets

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo"


def demo_geography() -> GeographySettings:
    """The demo's routes and zones (config/demo)."""
    return GeographySettings(
        routes=sorted((DEMO / "routes").glob("*.geojson")), zones=[DEMO / "zones.geojson"]
    )


@dataclass
class Recorder:
    """A `Publisher` (server.gates.commands) that keeps what it was given."""

    sent: list[tuple[Kind, SignedCommand]] = field(default_factory=list)

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        self.sent.append((kind, command))


def signing_key(folder: Path) -> Path:
    """A fresh command signing key (`signing_key_file`) in `folder`."""
    key_file = folder / "server.pem"
    key_file.write_bytes(private_key_to_pem(generate_private_key()))
    return key_file


def server_config(
    folder: Path, lock_secrets: Mapping[str, str] | None = None, **over: Any
) -> ServerConfig:
    """SQLite and the passages' images in `folder`, the demo geography, a fresh signing
    key and, when given, the per-lock secrets (`gates.lock_secrets_file`); `over`
    replaces any of them."""
    fields: dict[str, Any] = {
        "storage": StorageSettings(url=f"sqlite:///{folder / 'store.db'}"),
        "geography": demo_geography(),
        "signing_key_file": signing_key(folder),
        "evidence": EvidenceSettings(storage=FolderStorageSettings(path=folder / "evidence")),
    }
    if lock_secrets is not None:
        path = write_lock_secrets(folder / "lock-secrets.yaml", lock_secrets)
        fields["gates"] = GatesSettings(lock_secrets_file=path)
    return ServerConfig(**(fields | over))


def assemble(config: ServerConfig) -> tuple[Services, Recorder]:
    """The server's components over `config`, and where its gate commands went."""
    commands = Recorder()
    return build_services(config, commands), commands
