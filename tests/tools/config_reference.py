"""Render the configuration reference (docs/configuration.md) from the config models.

`python -m tests.tools.config_reference > docs/configuration.md` regenerates it; a test
keeps the committed file equal to what the models say.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge.config import TruckConfig
from edge.gate.config import GateConfig
from server.config import ServerConfig

HEADER = """# Configuration reference

Generated from the configuration models (`python -m tests.tools.config_reference`); a
test keeps this file true. Every file is YAML; unknown keys are errors; relative paths
are relative to the file. `--validate-config` checks a file and lists every error with
its path. Secrets are never written in these files: passwords come from a file
(`password_file`) or an environment variable (`password_env`).
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map {_type_name(key)} → {_type_name(value)}"
    if annotation is type(None):
        return "null"
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "str": "text",
        "int": "integer",
        "float": "number",
        "bool": "true/false",
        "Path": "path",
    }.get(name, name)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            return "(see below)" if _model_of(field.annotation) else "(empty)"
        return "**required**"
    value = field.default
    if value is None:
        return "—"
    return f"`{value}`"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _section(model: type[BaseModel], prefix: str, out: list[str], seen: set[str]) -> None:
    out.append(f"\n### `{prefix or '(top level)'}`\n")
    doc = (model.__doc__ or "").strip().splitlines()
    if doc and not doc[0].startswith("Usage docs"):
        out.append(doc[0] + "\n")
    out.append("| key | type | default | meaning |")
    out.append("|---|---|---|---|")
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        kind = (
            f"[{sub.__name__}](#{(prefix + '.' + name).strip('.').replace('.', '')})"
            if sub
            else _type_name(field.annotation)
        )
        text = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {kind} | {_default(field)} | {text} |")
        if sub is not None:
            nested.append((sub, f"{prefix}.{name}".strip(".")))
    for sub, path in nested:
        _section(sub, path, out, seen)


def render() -> str:
    out = [HEADER]
    for title, model in (
        ("Server (`bondwatch-server --config FILE`)", ServerConfig),
        ("Truck gateway (`bondwatch-edge truck --config FILE`)", TruckConfig),
        ("Gate controller (`bondwatch-edge gate --config FILE`)", GateConfig),
    ):
        out.append(f"\n## {title}\n")
        _section(model, "", out, set())
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
