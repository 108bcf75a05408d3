"""`bondwatch-server audit verify --config FILE [--anchor FILE]` and
`bondwatch-server audit anchor --config FILE --anchor FILE`.

`verify` exits 0 when the chain is intact, 1 (with the reason) when it is not, 2 when
it cannot run (bad configuration, no database). It only reads: no migration is applied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from contract.config_file import ConfigError, load_model, print_errors
from server.audit.anchor import AnchorFileError, read_anchor, write_anchor
from server.audit.log import verify
from server.config import ServerConfig


class CannotRun(RuntimeError):
    pass


def _engine(config: ServerConfig) -> Engine:
    url = make_url(config.storage.url)
    if config.storage.password_env:
        url = url.set(password=os.environ.get(config.storage.password_env))
    if url.drivername.startswith("sqlite") and not Path(url.database or "").is_file():
        raise CannotRun(f"no SQLite database at {url.database}")
    engine = create_engine(url)
    try:
        has_log = inspect(engine).has_table("audit_log")
    except SQLAlchemyError as err:
        engine.dispose()
        raise CannotRun(f"cannot reach the database: {err.__class__.__name__}: {err}") from err
    if not has_log:
        engine.dispose()
        raise CannotRun("the database has no audit log (start the server once to migrate it)")
    return engine


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bondwatch-server audit", description="the hash-chained audit log"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="walk the chain; exit 0 intact, 1 broken")
    check.add_argument("--config", type=Path, required=True, help="server YAML file")
    check.add_argument("--anchor", type=Path, help="anchor file: the newest anchor must hold")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    pin = commands.add_parser("anchor", help="append the chain head to an anchor file")
    pin.add_argument("--config", type=Path, required=True, help="server YAML file")
    pin.add_argument("--anchor", type=Path, required=True, help="anchor file to append to")
    args = parser.parse_args(argv)
    try:
        config = load_model(args.config, ServerConfig)
        engine = _engine(config)
    except ConfigError as err:
        print_errors(err)
        return 2
    except CannotRun as err:
        print(f"audit {args.command}: {err}", file=sys.stderr)
        return 2
    try:
        if args.command == "anchor":
            record = write_anchor(engine, args.anchor)
            print(f"anchored seq {record['seq']} hash {record['hash']} in {args.anchor}")
            return 0
        anchor = read_anchor(args.anchor) if args.anchor else None
        result = verify(engine, anchor)
    except (AnchorFileError, SQLAlchemyError) as err:
        print(f"audit {args.command}: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(result.as_json()))
    elif result.ok:
        print(f"audit log intact: {result.entries} entries")
    else:
        print(
            f"audit log BROKEN at seq {result.first_bad_seq}: {result.reason} "
            f"({result.entries} entries)"
        )
    return 0 if result.ok else 1
