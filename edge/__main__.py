"""`bondwatch-edge truck|gate --config FILE` — loads the configuration and starts an agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import types
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from contract.config_file import ConfigError, load_model, print_errors

if TYPE_CHECKING:  # both build pydantic models: imported once plugin discovery is off
    from edge.commands import CommandHandler
    from edge.config import AgentCommon

C = TypeVar("C", bound="AgentCommon")


class _Agent(Protocol):
    commands: CommandHandler

    def run(self) -> Coroutine[Any, Any, None]: ...


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bondwatch-edge", description=__doc__)
    parser.add_argument("kind", choices=["truck", "gate"], help="which agent to run")
    parser.add_argument("--config", type=Path, required=True, help="agent YAML file")
    parser.add_argument(
        "--validate-config", action="store_true", help="check the file, print every error, exit"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    args = parser.parse_args(argv)
    skip_pydantic_plugin_discovery()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Each kind imports only its own drivers: a truck gateway has no OpenCV, OCR or Modbus.
    if args.kind == "gate":
        from edge.gate.config import GateConfig

        gate = _load(args.config, GateConfig)
        if gate is None or args.validate_config:
            return 1 if gate is None else 0
        from edge.gate.agent import GateAgent

        asyncio.run(_run_until_signal(GateAgent(gate)))
        return 0
    from edge.config import TruckConfig

    truck = _load(args.config, TruckConfig)
    if truck is None or args.validate_config:
        return 1 if truck is None else 0
    from edge.truck.agent import TruckAgent

    asyncio.run(_run_until_signal(TruckAgent(truck)))
    return 0


def skip_pydantic_plugin_discovery() -> None:
    """Build the agent's models without looking for pydantic plugins (about 1 MB).

    pydantic looks for plugins (`pydantic` entry points) when it builds its first model,
    and importing `importlib.metadata` for that also brings in `zipfile`, `csv`,
    `tempfile` and `importlib.resources`, resident for the agent's life: about 1 MB of
    the truck agent's 40 MB (docs/hil.md). A gateway installs no pydantic plugin, so
    pydantic gets its own answer for none, through its loader's one function
    (`get_plugins`, pydantic pinned in pyproject.toml; tests/edge/test_truck_imports.py).
    Must run before the first model is built; does nothing after it.
    """
    name = "pydantic.plugin._loader"
    if name not in sys.modules:
        loader = types.ModuleType(name, "pydantic plugins: none on an edge agent")
        loader.get_plugins = tuple  # type: ignore[attr-defined]  # no plugins: ()
        sys.modules[name] = loader


def _load(path: Path, model: type[C]) -> C | None:
    """The validated file, or None after printing every error with its path."""
    try:
        config = load_model(path, model)
    except ConfigError as err:
        print_errors(err)
        return None
    print(f"{path}: OK")
    return config


async def _run_until_signal(agent: _Agent) -> None:
    task = asyncio.ensure_future(agent.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    log = logging.getLogger("edge")
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped")
    finally:
        log.info("commands since start: %s", agent.commands.tally())


if __name__ == "__main__":
    sys.exit(main())
