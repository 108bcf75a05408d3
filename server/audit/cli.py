"""`bondwatch-server audit …`: verify the chain, anchor it, sign checkpoints, make keys.

    audit verify --config FILE [--anchor FILE] [--checkpoints PATH] [--public-key FILE]
    audit anchor --config FILE --anchor FILE
    audit checkpoint --config FILE          # sign and write one checkpoint now
    audit keygen --private FILE --public FILE

`verify` exits 0 when the chain is intact (and holds against the newest signed
checkpoints, when the configuration has `audit.checkpoints` or `--checkpoints` is given),
1 (with the reason) when it is not, 2 when it cannot run (bad configuration, no
database, unreadable checkpoints or key). It only reads: no migration is applied.
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
from contract.signing import (
    KeyFileError,
    generate_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_to_pem,
)
from server.audit.anchor import AnchorFileError, read_anchor, write_anchor
from server.audit.chain import Verification
from server.audit.checkpoint import key_id
from server.audit.checkpointer import AuditCheckpoints
from server.audit.config import CheckpointSettings
from server.audit.log import verify
from server.audit.sinks import CheckpointSourceError, read_checkpoints
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bondwatch-server audit", description="the hash-chained audit log"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="walk the chain; exit 0 intact, 1 broken")
    check.add_argument("--config", type=Path, required=True, help="server YAML file")
    check.add_argument("--anchor", type=Path, help="anchor file: the newest anchor must hold")
    check.add_argument(
        "--checkpoints",
        type=Path,
        help="checkpoint folder, or a file of checkpoint lines (a syslog file); "
        "default: audit.checkpoints of the configuration",
    )
    check.add_argument(
        "--public-key", type=Path, help="the audit public key (PEM); default: configured"
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    pin = commands.add_parser("anchor", help="append the chain head to an anchor file")
    pin.add_argument("--config", type=Path, required=True, help="server YAML file")
    pin.add_argument("--anchor", type=Path, required=True, help="anchor file to append to")
    now = commands.add_parser("checkpoint", help="sign and write one checkpoint now")
    now.add_argument("--config", type=Path, required=True, help="server YAML file")
    keygen = commands.add_parser("keygen", help="make the audit log's Ed25519 key pair")
    keygen.add_argument("--private", type=Path, required=True, help="private key file to create")
    keygen.add_argument("--public", type=Path, required=True, help="public key file to create")
    return parser


def _keygen(private: Path, public: Path) -> int:
    """Write a new key pair; never overwrites (an old checkpoint key must stay readable)."""
    key = generate_private_key()
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        print(f"audit keygen: {private}: {err.strerror or err}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "wb") as out:
        out.write(private_key_to_pem(key))
    try:
        with public.open("xb") as out:
            out.write(public_key_to_pem(key.public_key()))
    except OSError as err:
        private.unlink()
        print(f"audit keygen: {public}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"audit key {key_id(key.public_key())}: private {private}, public {public}")
    return 0


def _verify(engine: Engine, config: ServerConfig, args: argparse.Namespace) -> Verification:
    settings = config.audit.checkpoints
    anchor = read_anchor(args.anchor) if args.anchor else None
    source: Path | None = args.checkpoints
    if settings is not None:
        checker = AuditCheckpoints.for_verifying(settings, args.public_key)
        source = source or checker.source()
        if source is None:
            raise CheckpointSourceError(
                "checkpoints go to syslog only and syslog.read_from is not set: "
                "pass the file the syslog server writes with --checkpoints FILE"
            )
        key, newest = checker.public_key, settings.verify_newest
    elif source is not None:
        if args.public_key is None:
            raise KeyFileError("--checkpoints needs --public-key (no audit.checkpoints configured)")
        key, newest = (
            load_public_key(args.public_key),
            CheckpointSettings.model_fields["verify_newest"].default,
        )
    else:
        return verify(engine, anchor)
    checkpoints = read_checkpoints(source, newest)  # before the chain: see AuditCheckpoints
    return verify(engine, anchor, checkpoints, key)


def _print(result: Verification, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_json()))
        return
    held = f", {result.checkpoints} signed checkpoints hold" if result.checkpoints else ""
    if result.ok:
        print(f"audit log intact: {result.entries} entries{held}")
        return
    where = f" at seq {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    print(f"audit log BROKEN{where}: {result.reason} ({result.entries} entries)")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        return _keygen(args.private, args.public)
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
        if args.command == "checkpoint":
            if config.audit.checkpoints is None:
                raise CannotRun("the configuration has no audit.checkpoints block")
            signer = AuditCheckpoints.for_server(config.audit.checkpoints, config.signing_key_file)
            written = signer.write(engine)
            print(f"checkpoint: seq {written.seq}, {written.count} entries, key {written.key}")
            return 0
        result = _verify(engine, config, args)
    except (AnchorFileError, KeyFileError, CannotRun, SQLAlchemyError, OSError) as err:
        print(f"audit {args.command}: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _print(result, args.json)
    return 0 if result.ok else 1
