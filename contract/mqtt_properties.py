"""A cheaper MQTT 5 `Properties` for paho-mqtt 2.2: the same behaviour, without rebuilding
its constant tables for every packet.

paho builds a `Properties` for every MQTT 5 PUBLISH it receives. Its `__init__` rebuilds
the name, type and property tables (27 entries, each `types.index(...)` looked up again),
and `unpack` first calls `clear`, which strips the spaces of all 27 names and asks
`hasattr` for each. Measured on this project's bench (`bench/bench_server.py`, 40,000
positions from a Mosquitto backlog into a bare aiomqtt client, 2 cores): 9,000 messages/s
over MQTT 5 against 19,700/s over 3.1.1; with `install()`, 18,200/s over MQTT 5. The
tables are never written after construction (paho reads them only), so every instance
can share one set; `unpack` of an empty property section (what a broker sends with most
publishes) is answered at once, as paho would answer it, and `clear` of an instance that
holds no property (every received PUBLISH and PUBACK) returns at once: its 27 `pop`s were
another 4 % of the server's ingest time (cProfile, a 40,000-position backlog).

Only paho-mqtt 2.2.x is patched: its `Properties` is what this module was checked against
(`tests/contract/test_mqtt_properties.py` compares both on every property).
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

#: paho-mqtt versions whose `Properties` this module was checked against.
CHECKED_VERSIONS = ("2.2.",)

_original: dict[str, Any] = {
    "__init__": Properties.__init__,
    "clear": Properties.clear,
    "unpack": Properties.unpack,
}
_template = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TYPES = _template.types
_NAMES = _template.names
_TABLE = _template.properties
_ATTRIBUTES = tuple(name.replace(" ", "") for name in _NAMES)
#: The instance fields every `Properties` has (`_init`); any more are property values.
_BASE_FIELDS = len(_template.__dict__)


def _init(self: Properties, packetType: int) -> None:
    # As paho's own __init__ does (through its __setattr__, which stores these four
    # directly), with the constant tables shared.
    fields = self.__dict__
    fields["packetType"] = packetType
    fields["types"] = _TYPES
    fields["names"] = _NAMES
    fields["properties"] = _TABLE


def _clear(self: Properties) -> None:
    fields = self.__dict__
    if len(fields) == _BASE_FIELDS:  # no property set: the usual case, on every PUBLISH
        return
    for name in _ATTRIBUTES:
        fields.pop(name, None)


def _unpack(self: Properties, buffer: Any) -> tuple[Properties, int]:
    if buffer[:1] == b"\x00":  # property length 0 (one byte): nothing to read
        self.clear()  # type: ignore[no-untyped-call]
        return self, 1
    result: tuple[Properties, int] = _original["unpack"](self, buffer)
    return result


def paho_checked(otherwise: str) -> bool:
    """Whether the installed paho-mqtt is one this project's changes to it were checked
    against; if not, log `otherwise` (what is left as paho does it)."""
    version = getattr(paho.mqtt, "__version__", "")
    if version.startswith(CHECKED_VERSIONS):
        return True
    log.info("paho-mqtt %s: %s", version, otherwise)
    return False


def installed() -> bool:
    return Properties.__init__ is _init


def install() -> bool:
    """Use the shared tables (idempotent). False, and paho left as it is, for a paho
    version this module was not checked against."""
    if installed():
        return True
    if not paho_checked("MQTT 5 properties left as paho builds them"):
        return False
    Properties.__init__ = _init  # type: ignore[method-assign]
    Properties.clear = _clear  # type: ignore[method-assign]
    Properties.unpack = _unpack  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """paho's own methods again (for the comparison test)."""
    for name, method in _original.items():
        setattr(Properties, name, method)
