"""Each of the server's broker connections under an account of its own.

The production broker binds the client id to the account (`use_username_as_clientid`,
config/mosquitto/mosquitto.conf), so the server's four connections
(`contract.broker.SERVER_CONNECTIONS`) need four accounts: `<client_id>`,
`<client_id>-commands`, `<client_id>-passages` and `<client_id>-gate-commands`, as
`bondwatch-broker acl` writes them for a server in the site registry. By default each
connection's user name is its client id and it uses the `broker` section's password,
certificate and key; `broker_accounts.<connection>` overrides any of them (with client
certificates, the production path: one certificate per connection).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.broker import DEFAULT_SERVER_CLIENT_ID, BrokerSettings, server_accounts


class BrokerAccount(BaseModel):
    """One connection's credentials; what is unset comes from the `broker` section."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        default=None, description="MQTT user name (default: the connection's client id)"
    )
    password_file: Path | None = Field(default=None, description="file holding the password")
    password_env: str | None = Field(
        default=None, description="environment variable holding the password"
    )
    cert_file: Path | None = Field(
        default=None, description="client certificate (CN = the connection's account)"
    )
    key_file: Path | None = Field(default=None, description="the certificate's key")

    @model_validator(mode="after")
    def _one_password_source(self) -> BrokerAccount:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        return self


class BrokerAccounts(BaseModel):
    """The server's broker connections, each under an account of its own: by default the
    user name is the connection's client id (`<client_id>`, `<client_id>-commands`,
    `<client_id>-passages`, `<client_id>-gate-commands`), with the `broker` section's
    password or certificate; set what differs per connection."""

    model_config = ConfigDict(extra="forbid")

    ingest: BrokerAccount = Field(
        default_factory=BrokerAccount, description="the ingest of everything but passages"
    )
    commands: BrokerAccount = Field(
        default_factory=BrokerAccount, description="the command publisher (`-commands`)"
    )
    passages: BrokerAccount = Field(
        default_factory=BrokerAccount, description="the passage ingest (`-passages`)"
    )
    gate_commands: BrokerAccount = Field(
        default_factory=BrokerAccount,
        description="the gate worker's command publisher (`-gate-commands`)",
    )


def connection_id(broker: BrokerSettings, connection: str) -> str:
    """One server connection's client id (and default account name)."""
    return server_accounts(broker.client_id or DEFAULT_SERVER_CLIENT_ID)[connection]


def connection_settings(
    broker: BrokerSettings, accounts: BrokerAccounts, connection: str
) -> BrokerSettings:
    """The broker settings of one server connection: its client id and its account."""
    client_id = connection_id(broker, connection)
    account: BrokerAccount = getattr(accounts, connection)
    update: dict[str, object] = {
        "client_id": client_id,
        "username": account.username or client_id,
    }
    if account.password_file is not None or account.password_env is not None:
        update["password_file"] = account.password_file
        update["password_env"] = account.password_env
    if account.cert_file is not None:
        update["cert_file"] = account.cert_file
        update["key_file"] = account.key_file
    return broker.model_copy(update=update)
