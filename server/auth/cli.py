"""`bondwatch-server user create-admin --config FILE --username NAME` — the first admin.

The password is read from `--password-file FILE` (first line) or from standard input (first
line; a terminal prompts without echo). It is never taken from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from contract.config_file import ConfigError, load_model, print_errors
from contract.ids import utc_now
from server.auth.accounts import AccountStore
from server.config import ServerConfig
from server.store import Store, StoreError


def _read_password(path: Path | None) -> str:
    if path is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def create_admin(
    config: ServerConfig, username: str, display_name: str, password: str, actor: str
) -> str:
    """Create the first admin; refuse when an active admin exists already."""
    password_env = config.storage.password_env
    store = Store.open(config.storage.url, os.environ.get(password_env) if password_env else None)
    try:
        accounts = AccountStore(store.engine, config.auth)
        if accounts.count("admin") > 0:
            raise StoreError(
                "conflict",
                "an active admin exists already: create further accounts in the console "
                "or with POST /api/v1/users",
                "username",
            )
        account = accounts.create(actor, username, display_name, "admin", password, utc_now())
        return account.username
    finally:
        store.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bondwatch-server user", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-admin", help="create the first admin account")
    create.add_argument("--config", type=Path, required=True, help="server YAML file")
    create.add_argument("--username", required=True, help="login name of the admin")
    create.add_argument("--display-name", default=None, help="name shown in the console")
    create.add_argument(
        "--password-file", type=Path, default=None, help="file whose first line is the password"
    )
    args = parser.parse_args(argv)
    try:
        config = load_model(args.config, ServerConfig)
    except ConfigError as err:
        print_errors(err)
        return 1
    try:
        password = _read_password(args.password_file)
        if not password:
            raise ValueError("no password given (stdin or --password-file)")
        actor = f"cli:{getpass.getuser()}"
        name = create_admin(
            config, args.username, args.display_name or args.username, password, actor
        )
    except (StoreError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"admin {name} created")
    return 0
