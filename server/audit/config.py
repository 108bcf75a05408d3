"""The `audit:` block of the server configuration: signed checkpoints of the chain."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SyslogFacility = Literal[
    "user",
    "daemon",
    "auth",
    "authpriv",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
]


class SyslogSink(BaseModel):
    """One syslog message per checkpoint."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        default="/dev/log",
        description="a local syslog socket path, or HOST:PORT of a (central) syslog server",
    )
    protocol: Literal["udp", "tcp"] = Field(
        default="udp", description="transport to HOST:PORT (ignored for a socket path)"
    )
    facility: SyslogFacility = Field(default="local0", description="syslog facility")
    read_from: Path | None = Field(
        default=None,
        description="where `audit verify` reads the checkpoints back: the file the syslog "
        "server writes them to (lines without a checkpoint are skipped); without it the "
        "server cannot check its checkpoints itself — verify on the syslog host with "
        "`--checkpoints FILE`",
    )


class CheckpointSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_file: Path = Field(
        description="Ed25519 private key (PEM) of the audit log, its own — never the command "
        "key `signing_key_file` (`bondwatch-server audit keygen` makes one)"
    )
    public_key_file: Path | None = Field(
        default=None,
        description="its public key (PEM), for verifying; derived from key_file when absent",
    )
    interval_s: float = Field(
        default=300.0, ge=1.0, le=86_400.0, description="seconds between two checkpoints"
    )
    verify_newest: int = Field(
        default=288,
        ge=0,
        description="how many of the newest checkpoints `audit verify` checks (0: all)",
    )
    folder: Path | None = Field(
        default=None,
        description="folder the checkpoints are appended to, one file per UTC day "
        "(`checkpoints-YYYY-MM-DD.log`, each line fsynced): put it where the database's "
        "administrators cannot write (another host's mount, WORM storage)",
    )
    syslog: SyslogSink | None = Field(
        default=None, description="send each checkpoint to syslog (as well as to `folder`)"
    )

    @model_validator(mode="after")
    def _somewhere_outside(self) -> CheckpointSettings:
        if self.folder is None and self.syslog is None:
            raise ValueError("checkpoints need somewhere to go: set `folder`, `syslog` or both")
        return self


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoints: CheckpointSettings | None = Field(
        default=None,
        description="signed checkpoints of the chain head written outside the database on a "
        "timer (off when absent) — see docs/alarms-and-audit.md",
    )
