"""Load a YAML configuration file into a pydantic model, reporting every error with its path.

Relative paths in the file are resolved against the file's own folder by the models
that hold paths (see `resolve_paths`). Secrets never live in these files: only the
name of an environment variable or of a file under a secrets directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used. `errors` has one line per problem."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(errors))
        self.path = path
        self.errors = errors


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(path, [f"cannot read: {err.strerror or err}"]) from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(path, [f"not valid YAML: {err}"]) from err


def format_errors(err: ValidationError) -> list[str]:
    """One line per error: `dotted.path: message`."""
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = (
            "unknown key (check its spelling)" if item["type"] == "extra_forbidden" else item["msg"]
        )
        lines.append(f"{where}: {message}")
    return lines


def resolve_paths(value: Any, base: Path) -> Any:
    """Turn relative `Path` values of a validated model tree into paths under `base`."""
    if isinstance(value, Path):
        return value if value.is_absolute() else (base / value).resolve()
    if isinstance(value, BaseModel):
        updates = {
            name: resolve_paths(getattr(value, name), base) for name in type(value).model_fields
        }
        return value.model_copy(update=updates)
    if isinstance(value, list):
        return [resolve_paths(v, base) for v in value]
    if isinstance(value, dict):
        return {k: resolve_paths(v, base) for k, v in value.items()}
    return value


def print_errors(err: ConfigError) -> None:
    """What `--validate-config` and a failed start print: every error with its path."""
    print(f"{err.path}: {len(err.errors)} error(s)", file=sys.stderr)
    for line in err.errors:
        print(f"  {line}", file=sys.stderr)


def load_model(path: Path, model: type[M]) -> M:
    """Read and validate `path` as `model`, with relative paths resolved; raise `ConfigError`."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError(path, ["the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError(path, ["the top level must be a mapping of keys to values"])
    try:
        loaded = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(path, format_errors(err)) from err
    resolved: M = resolve_paths(loaded, path.parent.resolve())
    return resolved
