"""Demo accounts: one per role, with fresh random passwords printed at start-up."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from contract.ids import utc_now
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store

#: (username, display name, role)
DEMO_PEOPLE = [
    ("admin", "系统管理员 System admin", "admin"),
    ("supervisor", "值班科长 Duty supervisor", "supervisor"),
    ("officer", "监控关员 Monitoring officer", "officer"),
]
INTEGRATION = ("declaration-system", "报关系统 Declaration system")


@dataclass(frozen=True)
class DemoCredentials:
    passwords: dict[str, str]
    integration_token: str
    #: gate node id → the API token of its `device` account (evidence uploads)
    device_tokens: dict[str, str] = field(default_factory=dict)


def create_demo_accounts(database_url: str, gates: Sequence[str] = ()) -> DemoCredentials:
    store = Store.open(database_url)
    try:
        accounts = AccountStore(store.engine, AuthSettings())
        now = utc_now()
        passwords = {}
        for username, name, role in DEMO_PEOPLE:
            password = secrets.token_urlsafe(9)
            accounts.create("demo-setup", username, name, role, password, now)  # type: ignore[arg-type]
            passwords[username] = password
        accounts.create("demo-setup", INTEGRATION[0], INTEGRATION[1], "integration", None, now)
        token, _ = accounts.issue_token("demo-setup", INTEGRATION[0], "demo", None, now)
        devices = {}
        for gate in gates:  # each gate uploads its passages' images with a token of its own
            accounts.create("demo-setup", gate, gate, "device", None, now)
            devices[gate], _ = accounts.issue_token("demo-setup", gate, "evidence", None, now)
        return DemoCredentials(passwords, token, devices)
    finally:
        store.close()
