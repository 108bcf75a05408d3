"""`bondwatch-server --config FILE` — loads the configuration and starts the server.

`bondwatch-server audit verify --config FILE` — verifies the audit log (server.audit.cli).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from contract.config_file import ConfigError, load_model, print_errors
from server.config import ServerConfig


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["user"]:  # `bondwatch-server user create-admin …` (server.auth.cli)
        from server.auth.cli import main as user_main

        return user_main(argv[1:])
    if argv[:1] == ["audit"]:  # `bondwatch-server audit verify …` (server.audit.cli)
        from server.audit.cli import main as audit_main

        return audit_main(argv[1:])
    parser = argparse.ArgumentParser(prog="bondwatch-server", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="server YAML file")
    parser.add_argument(
        "--validate-config", action="store_true", help="check the file, print every error, exit"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_model(args.config, ServerConfig)
    except ConfigError as err:
        print_errors(err)
        return 1
    if args.validate_config:
        print(f"{args.config}: OK")
        return 0
    from server.app import ServerApp

    asyncio.run(ServerApp(config).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
