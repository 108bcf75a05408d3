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
"""

from __future__ import annotations

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
    node_id: NodeId = Field(description="the truck node this device reports for")
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
        return self


class CellularRegistry(BaseModel):
    """Every device a gateway accepts (YAML: `devices:`)."""

    model_config = ConfigDict(extra="forbid")

    devices: list[CellularDevice] = Field(
        default_factory=list, description="the terminals this gateway accepts"
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
            phones[key] = device.node_id
            if device.lock_id is not None:
                if device.lock_id in locks:
                    raise ValueError(
                        f"lock {device.lock_id} is listed twice (phones {locks[device.lock_id]}"
                        f" and {device.phone}): give each lock one terminal"
                    )
                locks[device.lock_id] = device.phone
        return self

    def nodes(self) -> list[str]:
        """The node ids the devices report for, each once, in registry order."""
        return list(dict.fromkeys(device.node_id for device in self.devices))

    def by_phone(self) -> dict[str, CellularDevice]:
        """Devices by `phone_key`."""
        return {phone_key(device.phone): device for device in self.devices}


def load_cellular_registry(path: Path) -> CellularRegistry:
    """Read and validate a registry file; raise `contract.config_file.ConfigError`."""
    return load_model(path, CellularRegistry)
