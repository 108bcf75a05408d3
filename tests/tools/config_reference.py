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

from contract.cellular_registry import CellularRegistry
from edge.config import TruckConfig
from edge.gate.config import GateConfig
from edge.jt808.config import GatewayConfig
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


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The models a field may hold (several for a union of models, e.g. by `type`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models_of(arg) if m not in found]
    return found


def _model_of(annotation: Any) -> type[BaseModel] | None:
    found = _models_of(annotation)
    return found[0] if found else None


def _heading(path: str, model: type[BaseModel], several: bool) -> str:
    return f"`{path}` ({model.__name__})" if several else f"`{path}`"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _section(
    model: type[BaseModel], prefix: str, out: list[str], seen: set[str], several: bool = False
) -> None:
    out.append(f"\n### {_heading(prefix, model, several) if prefix else '`(top level)`'}\n")
    doc = (model.__doc__ or "").strip().splitlines()
    if doc and not doc[0].startswith("Usage docs"):
        out.append(doc[0] + "\n")
    out.append("| key | type | default | meaning |")
    out.append("|---|---|---|---|")
    nested: list[tuple[type[BaseModel], str, bool]] = []
    for name, field in model.model_fields.items():
        subs = _models_of(field.annotation)
        path = f"{prefix}.{name}".strip(".")
        several = len(subs) > 1
        kind = (
            " \\| ".join(f"[{s.__name__}](#{_anchor(_heading(path, s, several))})" for s in subs)
            if subs
            else _type_name(field.annotation)
        )
        text = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {kind} | {_default(field)} | {text} |")
        nested.extend((sub, path, several) for sub in subs)
    for sub, path, several in nested:
        _section(sub, path, out, seen, several)


def render() -> str:
    out = [HEADER]
    for title, model in (
        ("Server (`bondwatch-server --config FILE`)", ServerConfig),
        ("Truck gateway (`bondwatch-edge truck --config FILE`)", TruckConfig),
        ("Gate controller (`bondwatch-edge gate --config FILE`)", GateConfig),
        ("JT/T 808 gateway (`bondwatch-jt808 --config FILE`)", GatewayConfig),
        ("Cellular device registry (the JT/T 808 gateway's `registry:` file)", CellularRegistry),
    ):
        out.append(f"\n## {title}\n")
        _section(model, "", out, set())
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
