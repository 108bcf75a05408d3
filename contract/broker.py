"""How an edge agent or a server worker reaches the MQTT broker (shared config model)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The server's broker connections. Each has a client id and an account of its own,
#: `<client_id><suffix>` (the broker binds the client id to the account, so two
#: connections can never share one): the ingest of everything but passages, the
#: command publisher, and the gate worker's passage ingest and command publisher.
SERVER_CONNECTIONS: Final[dict[str, str]] = {
    "ingest": "",
    "commands": "-commands",
    "passages": "-passages",
    "gate_commands": "-gate-commands",
}
#: The first server's client id when the configuration names none.
DEFAULT_SERVER_CLIENT_ID: Final = "bondwatch-server-1"


def server_accounts(client_id: str) -> dict[str, str]:
    """Each server connection's client id and account name, by connection."""
    return {name: f"{client_id}{suffix}" for name, suffix in SERVER_CONNECTIONS.items()}


class BrokerSettings(BaseModel):
    """Connection to the broker. Secrets come from a file or an environment variable."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="broker TCP port")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    client_id: str | None = Field(
        default=None, description="MQTT client id; defaults to the node id (persistent session)"
    )
    username: str | None = Field(default=None, description="MQTT user name (the node id)")
    password_file: Path | None = Field(default=None, description="file holding the password")
    password_env: str | None = Field(
        default=None, description="environment variable holding the password"
    )
    tls: bool = Field(default=False, description="connect with TLS")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the broker")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client key (mutual TLS)")
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keep-alive, seconds")
    reconnect_min_s: float = Field(default=0.5, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest reconnect delay")

    @model_validator(mode="after")
    def _one_password_source(self) -> BrokerSettings:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def password(self) -> str | None:
        """Read the password from its file or variable; never logged."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"environment variable {self.password_env} is not set")
            return value
        return None
