"""`bondwatch-jt808 --config FILE` — loads the configuration and registry, runs the gateway."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from contract.cellular_registry import CellularRegistry, load_cellular_registry
from contract.config_file import ConfigError, load_model, print_errors
from edge.jt808.config import GatewayConfig


def load(path: Path, files: bool = True) -> tuple[GatewayConfig, CellularRegistry] | None:
    """The validated configuration and its registry, or None after printing every error.
    `files`: also check that the secret and the server's key can be read (at start)."""
    try:
        config = load_model(path, GatewayConfig)
        registry = load_cellular_registry(config.registry)
    except ConfigError as err:
        print_errors(err)
        return None
    problems = (
        []
        if not files
        else [
            f"{name}: {file} is not readable"
            for name, file in (
                ("auth_secret_file", config.auth_secret_file),
                ("server_public_key", config.server_public_key),
            )
            if not file.is_file()
        ]
    )
    if problems:
        print_errors(ConfigError(path, problems))
        return None
    print(f"{path}: OK ({len(registry.devices)} devices, {len(registry.nodes())} nodes)")
    return config, registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bondwatch-jt808", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="gateway YAML file")
    parser.add_argument(
        "--validate-config", action="store_true", help="check the files, print every error, exit"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loaded = load(args.config, files=not args.validate_config)
    if loaded is None or args.validate_config:
        return 1 if loaded is None else 0
    asyncio.run(_run(*loaded))
    return 0


async def _run(config: GatewayConfig, registry: CellularRegistry) -> None:
    from edge.jt808.gateway import Jt808Gateway

    gateway = Jt808Gateway(config, registry)
    task = asyncio.ensure_future(gateway.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    ready = asyncio.ensure_future(gateway.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if gateway.ready.is_set():  # for supervisors and test benches
        ports = " ".join(f"{kind}={port}" for kind, port in gateway.ports.items())
        print(f"READY {ports}", flush=True)
    ready.cancel()
    try:
        await task
    except asyncio.CancelledError:
        logging.getLogger("edge.jt808").info("stopped: %s", gateway.metrics.summary())


if __name__ == "__main__":
    sys.exit(main())
