"""`bondwatch-broker`: a site's broker accounts — its CA, certificates and access list.

    bondwatch-broker ca DIR --name "Huangpu Customs BondWatch CA"
    bondwatch-broker broker-cert DIR mqtt.customs.example [MORE HOSTS] --out DIR
    bondwatch-broker cert DIR TRK-YUE-A01 [MORE ACCOUNTS] --out DIR
    bondwatch-broker accounts site.yaml          # every account name, one a line
    bondwatch-broker acl site.yaml -o bondwatch.acl

docs/broker-security.md walks through a site's setup.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from contract.broker_acl import load_registry, render
from contract.config_file import ConfigError, print_errors
from contract.pki import (
    CA_DAYS,
    DEVICE_DAYS,
    PkiError,
    check_account,
    create_ca,
    issue_broker,
    issue_client,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bondwatch-broker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ca = sub.add_parser("ca", help="create the site CA (ca.crt, ca.key) in DIR")
    ca.add_argument("dir", type=Path)
    ca.add_argument("--name", required=True, help="the CA's common name")
    ca.add_argument("--days", type=int, default=CA_DAYS)
    broker = sub.add_parser("broker-cert", help="issue the broker's TLS server certificate")
    broker.add_argument("dir", type=Path, help="the CA's folder")
    broker.add_argument("hosts", nargs="+", help="names/addresses clients connect to")
    broker.add_argument("--out", type=Path, required=True)
    broker.add_argument("--days", type=int, default=DEVICE_DAYS)
    cert = sub.add_parser("cert", help="issue client certificates (CN = the account)")
    cert.add_argument("dir", type=Path, help="the CA's folder")
    cert.add_argument("accounts", nargs="+", help="node ids or server connection accounts")
    cert.add_argument("--out", type=Path, required=True)
    cert.add_argument("--days", type=int, default=DEVICE_DAYS)
    accounts = sub.add_parser("accounts", help="list a registry's account names")
    accounts.add_argument("registry", type=Path)
    acl = sub.add_parser("acl", help="write the broker's ACL file from a registry")
    acl.add_argument("registry", type=Path)
    acl.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    return parser


def _write_atomically(path: Path, text: str) -> None:
    """The broker may reload the file at any moment: it sees the old or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "ca":
            issued = create_ca(args.dir, args.name, args.days)
            print(f"wrote {issued.cert} and {issued.key} (keep the key offline)")
        elif args.command == "broker-cert":
            issued = issue_broker(args.dir, args.out, args.hosts, args.days)
            print(f"wrote {issued.cert} and {issued.key}")
        elif args.command == "cert":
            for account in args.accounts:  # every name checked before the first is issued
                check_account(account)
            for account in args.accounts:
                issued = issue_client(args.dir, args.out, account, args.days)
                print(f"wrote {issued.cert} and {issued.key}")
        elif args.command == "accounts":
            for _role, account in load_registry(args.registry).accounts():
                print(account)
        else:
            text = render(load_registry(args.registry), args.registry.name)
            if args.output is None:
                sys.stdout.write(text)
            else:
                _write_atomically(args.output, text)
                print(f"wrote {args.output}; reload the broker (SIGHUP) to apply it")
    except ConfigError as err:
        print_errors(err)
        return 2
    except (PkiError, ValueError) as err:  # ValueError: a node with two writers
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
