"""A payload an agent built from a device's words, fitted to the contract before it is
stored: an optional number the contract would refuse is left out, so that the rest of
the message — a position's place, a lock's tamper event — still reaches the server.

The server refuses a whole message for one value out of its bounds (`invalid`, dead-
lettered). A receiver that says HDOP −3.5 or 300 satellites, or a lock that says its
battery is 255 %, would then cost a good position or a seal's event. The bounds are the
contract's own (the `ge`/`gt`/`le`/`lt` of the fields of `contract.payloads`), read from
the model; the agent counts what it left out. (Read rather than validated with a pydantic
`TypeAdapter`: the truck agent's memory is counted, docs/hil.md.)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Annotated, Any, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

#: Groups of optional numbers left out together (a place is both of its numbers or none).
Groups = Sequence[tuple[str, ...]]

_BOUNDS: tuple[tuple[type[Any], str, Callable[[Any, Any], bool]], ...] = (
    (annotated_types.Ge, "ge", operator.ge),
    (annotated_types.Gt, "gt", operator.gt),
    (annotated_types.Le, "le", operator.le),
    (annotated_types.Lt, "lt", operator.lt),
)


@cache
def _checks(
    model: type[BaseModel], name: str
) -> tuple[tuple[Callable[[Any, Any], bool], Any], ...]:
    """(comparison, bound) of each bound the field declares."""
    field = model.model_fields[name]
    checks = []
    for item in (*field.metadata, *_nested(field.annotation)):
        for kind, attribute, compare in _BOUNDS:
            if isinstance(item, kind):
                checks.append((compare, getattr(item, attribute)))
    return tuple(checks)


def _nested(annotation: Any) -> Iterator[Any]:
    """The constraints inside an annotation: `Latitude | None` holds `Annotated[float,
    Field(ge=-90, le=90)]`."""
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            yield from extra.metadata if isinstance(extra, FieldInfo) else (extra,)
        yield from _nested(base)
    else:
        for arg in get_args(annotation):
            yield from _nested(arg)


@cache
def _whole(model: type[BaseModel], name: str) -> bool:
    """The field takes whole numbers only (`int`, not `float`)."""
    kinds = set(_types(model.model_fields[name].annotation))
    return int in kinds and float not in kinds


def _types(annotation: Any) -> Iterator[Any]:
    if get_origin(annotation) is Annotated:
        yield from _types(get_args(annotation)[0])
    elif args := get_args(annotation):
        for arg in args:
            yield from _types(arg)
    else:
        yield annotation


def within(model: type[BaseModel], name: str, value: Any) -> bool:
    """`value` is a finite number of the field's kind (a whole one for a count) within
    the bounds of `model`'s field `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not math.isfinite(value):
        return False
    if _whole(model, name) and not isinstance(value, int):
        return False
    return all(compare(value, bound) for compare, bound in _checks(model, name))


def fit(
    model: type[BaseModel], payload: Mapping[str, Any], groups: Groups
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`payload` without the groups of `groups` holding a number `model` refuses; and the
    names left out."""
    out = dict(payload)
    dropped: list[str] = []
    for group in groups:
        if any(name in out and not within(model, name, out[name]) for name in group):
            for name in group:
                out.pop(name, None)
            dropped.extend(group)
    return out, tuple(dropped)
