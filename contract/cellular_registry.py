"""The registry of cellular JT/T 808 devices behind a `bondwatch-jt808` gateway.

One file, read by two parts: the gateway (which terminal may connect, and for which
node and lock it speaks) and the broker's access-list generator (`contract.broker_acl`:
the gateway's account may write the topics of exactly these nodes). A device is known
by its terminal phone number (the JT/T 808 header's BCD number) and, when given, the
terminal id of its registration; it speaks for one node (a truck's node id) and, for
an e-lock, one lock id. A node may have several devices (a lock and a tracker).

    devices:
      - phone: "13800000101"
        terminal_id: EL00101       # optional: the registration (0x0100) must carry it
        node_id: TRK-CELL-1
        kind: lock                 # lock | tracker
        lock_id: EL-CELL-1         # a lock's id, as in its BondWatch block and declarations
      - phone: "13800000102"
        kind: lock
        lock_id: EL-CELL-2         # no node_id: the truck a declaration names it for
    fleet: [TRK-CELL-2, TRK-CELL-3]  # the trucks such a lock may be mapped to

A lock listed without `node_id` speaks for the truck whose open declaration names its
lock id (`map_declared_locks`): the declaration's `vehicle_id`, which must be one of the
`fleet` (the broker's access list lets the gateway write exactly the listed nodes and
the fleet). Until a declaration names it, such a lock is refused at authentication, and
its reports wait in the lock (a JT/T 808 terminal keeps what was not answered).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.config_file import load_model
from contract.ids import NodeId

CellularKind = Literal["lock", "tracker"]


def phone_key(phone: str) -> str:
    """A terminal phone number as compared: its BCD digits without the zero padding
    (a 2013 header's `013800000101` and a 2019 header's `00000000013800000101` are
    the same terminal)."""
    return phone.lstrip("0") or "0"


class CellularDevice(BaseModel):
    """One cellular terminal: a BondWatch (or vendor) e-lock, or a vehicle tracker."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        pattern=r"^[0-9]{1,20}$",
        description="terminal phone number (BCD digits of the JT/T 808 header; leading "
        "zeros do not matter)",
    )
    terminal_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,30}$",
        description="terminal id the registration (0x0100) must carry; absent: not checked",
    )
    node_id: NodeId | None = Field(
        default=None,
        description="the truck node this device reports for; absent (locks only): the "
        "truck an open declaration names its lock for (one of the registry's `fleet`)",
    )
    kind: CellularKind = Field(default="lock", description="`lock` (e-lock) or `tracker`")
    lock_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="the lock's id (its BondWatch block and the declarations'); locks only",
    )
    positions: bool = Field(
        default=True,
        description="publish the device's own fixes as the node's positions (turn off for "
        "a lock on a truck whose tracker reports the positions)",
    )

    @model_validator(mode="after")
    def _lock_has_id(self) -> Self:
        if self.kind == "lock" and self.lock_id is None:
            raise ValueError(f"lock with phone {self.phone} needs its lock_id")
        if self.kind == "tracker" and self.lock_id is not None:
            raise ValueError(f"tracker with phone {self.phone} has no lock_id: remove it")
        if self.kind == "tracker" and self.node_id is None:
            raise ValueError(
                f"tracker with phone {self.phone} needs its node_id (only a lock's node may "
                "come from the declarations)"
            )
        return self

    @property
    def node(self) -> str:
        """The node it reports for (of a device mapped to one: `CellularRegistry.mapped`)."""
        if self.node_id is None:
            raise ValueError(f"lock {self.lock_id} (phone {self.phone}) is mapped to no node")
        return self.node_id


class CellularRegistry(BaseModel):
    """Every device a gateway accepts (YAML: `devices:`)."""

    model_config = ConfigDict(extra="forbid")

    devices: list[CellularDevice] = Field(
        default_factory=list, description="the terminals this gateway accepts"
    )
    fleet: list[NodeId] = Field(
        default_factory=list,
        description="trucks a lock listed without node_id may be mapped to by a declaration",
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        phones: dict[str, str] = {}
        locks: dict[str, str] = {}
        for device in self.devices:
            key = phone_key(device.phone)
            if key in phones:
                raise ValueError(
                    f"phone {device.phone} is listed twice (nodes {phones[key]} and "
                    f"{device.node_id}): a terminal reports for one node"
                )
            phones[key] = device.node_id or "a declared truck"
            if device.lock_id is not None:
                if device.lock_id in locks:
                    raise ValueError(
                        f"lock {device.lock_id} is listed twice (phones {locks[device.lock_id]}"
                        f" and {device.phone}): give each lock one terminal"
                    )
                locks[device.lock_id] = device.phone
        if self.fleet and all(d.node_id is not None for d in self.devices):
            raise ValueError("fleet is for locks listed without node_id: there are none")
        return self

    def nodes(self) -> list[str]:
        """The node ids the gateway may speak for, each once: the devices' own, then the
        fleet."""
        fixed = [device.node_id for device in self.devices if device.node_id is not None]
        return list(dict.fromkeys([*fixed, *self.fleet]))

    def by_phone(self) -> dict[str, CellularDevice]:
        """Devices by `phone_key`."""
        return {phone_key(device.phone): device for device in self.devices}

    def mapped(self, declared: Mapping[str, str]) -> dict[str, CellularDevice]:
        """The devices that report for a node, by `phone_key`: those listed with one, and
        the locks `declared` (lock id → node, `map_declared_locks`) maps."""
        out: dict[str, CellularDevice] = {}
        for device in self.devices:
            node = device.node_id or declared.get(device.lock_id or "")
            if node is not None:
                out[phone_key(device.phone)] = device.model_copy(update={"node_id": node})
        return out


@dataclass(frozen=True, slots=True)
class DeclaredLocks:
    """An open declaration's locks: the truck (`vehicle_id`) they travel on."""

    trip_id: str
    vehicle_id: str
    lock_ids: tuple[str, ...]
    #: the trip has started: its locks are sealed on `vehicle_id`
    started: bool = False


def map_declared_locks(
    registry: CellularRegistry,
    declarations: Iterable[DeclaredLocks],
    current: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Lock id → node for the registry's locks listed without a node that the open
    `declarations` name, and the problems, one line each (a declared lock left unmapped,
    or naming a lock that is listed with another node: the registry wins).

    A lock that open declarations of different trucks name (a declaration registered
    before the last trip with that lock ended, or a mistake) goes to the one truck whose
    trip has started (its locks are sealed on it), else stays with the truck it is mapped
    to now (`current`, lock id → node): a sealed truck in transit is never blinded by a
    later declaration. Otherwise it is mapped to neither: its reports would raise alarms
    on the wrong trip."""
    current = current or {}
    listed = {d.lock_id: d for d in registry.devices if d.lock_id is not None}
    fleet = set(registry.fleet)
    claims: dict[str, dict[str, str]] = {}  # lock → node → trip
    started: dict[str, set[str]] = {}  # lock → the nodes whose trip naming it has started
    problems: list[str] = []
    for declaration in declarations:
        for lock_id in declaration.lock_ids:
            device = listed.get(lock_id)
            if device is None:
                continue  # not a cellular lock of this gateway (a serial one, or another's)
            node = declaration.vehicle_id
            if device.node_id is not None:
                if device.node_id != node:
                    problems.append(
                        f"declaration {declaration.trip_id} names lock {lock_id} for {node}, "
                        f"but the registry lists it for {device.node_id}: the registry wins"
                    )
                continue
            if node not in fleet:
                problems.append(
                    f"declaration {declaration.trip_id} names lock {lock_id} for {node}, "
                    f"which is not in the registry's fleet: add it there to map the lock"
                )
                continue
            claims.setdefault(lock_id, {}).setdefault(node, declaration.trip_id)
            if declaration.started:
                started.setdefault(lock_id, set()).add(node)
    mapping: dict[str, str] = {}
    for lock_id, nodes in claims.items():
        if len(nodes) == 1:
            mapping[lock_id] = next(iter(nodes))
            continue
        trips = ", ".join(f"{trip} ({node})" for node, trip in nodes.items())
        sealed = started.get(lock_id, set())
        kept = next(iter(sealed)) if len(sealed) == 1 else current.get(lock_id)
        if kept in nodes:
            mapping[lock_id] = kept
            problems.append(
                f"lock {lock_id} is named by open declarations of different trucks: {trips}; "
                f"it stays with {kept} until that trip ends"
            )
        else:
            problems.append(
                f"lock {lock_id} is named by open declarations of different trucks: {trips}; "
                "mapped to none until one of them closes"
            )
    return mapping, problems


def load_cellular_registry(path: Path) -> CellularRegistry:
    """Read and validate a registry file; raise `contract.config_file.ConfigError`."""
    return load_model(path, CellularRegistry)
