"""`bondwatch-edge truck|gate --config FILE` — loads the configuration and starts an agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from contract.config_file import ConfigError, load_model, print_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bondwatch-edge", description=__doc__)
    parser.add_argument("kind", choices=["truck", "gate"], help="which agent to run")
    parser.add_argument("--config", type=Path, required=True, help="agent YAML file")
    parser.add_argument(
        "--validate-config", action="store_true", help="check the file, print every error, exit"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from edge.config import GateConfig, TruckConfig

    model: type[TruckConfig] | type[GateConfig] = GateConfig if args.kind == "gate" else TruckConfig
    try:
        config = load_model(args.config, model)
    except ConfigError as err:
        print_errors(err)
        return 1
    if args.validate_config:
        print(f"{args.config}: OK")
        return 0
    if isinstance(config, GateConfig):
        from edge.gate.agent import GateAgent

        asyncio.run(_run_until_signal(GateAgent(config).run()))
        return 0
    from edge.truck.agent import TruckAgent

    asyncio.run(_run_until_signal(TruckAgent(config).run()))
    return 0


async def _run_until_signal(agent_run: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(agent_run)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        logging.getLogger("edge").info("stopped")


if __name__ == "__main__":
    sys.exit(main())
