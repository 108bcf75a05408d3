"""The broker's access list, generated from a site's registry of accounts.

Mosquitto's ACL file has no roles: a `pattern` line applies to every account, so
`pattern write bondwatch/v1/gate/%u/passage` would let a truck's account publish
passages under its own id. Each account therefore gets a `user` block of its own,
written from its role here — the one place the roles are defined:

- **truck**: writes only `bondwatch/v1/truck/<id>/<channel>` for the channels a truck
  publishes, reads only its `command` and `ack` topics;
- **gate**: likewise under `bondwatch/v1/gate/<id>/…`;
- **server** (each of a server's connections, `contract.broker.SERVER_CONNECTIONS`):
  reads every edge topic, writes commands, acknowledgements and the trucks' `declared`
  lists;
- **jt808-gateway** (`bondwatch-jt808`, one account speaking for many cellular devices):
  the truck rules of every node in its device registry (`contract.cellular_registry`),
  and reads each one's `declared` list (its locks mapped by the declarations), one
  explicit line per topic and node — never a wildcard over all trucks. A truck account
  does not read its `declared` list: its locks are wired to it.

An account that is not in the registry can do nothing. Sites keep a registry file
(config/mosquitto/site.yaml is the demo's), run `bondwatch-broker acl site.yaml -o
/etc/mosquitto/bondwatch.acl` after a change and send Mosquitto a SIGHUP (it reloads
the file). docs/broker-security.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract import topics
from contract.broker import server_accounts
from contract.cellular_registry import load_cellular_registry
from contract.config_file import load_model
from contract.ids import NodeId
from contract.version import TOPIC_PREFIX

#: Server client ids are suffixed (`-gate-commands`, 14 characters) and an account
#: name is at most 64 characters, like a node id.
SERVER_ID_MAX: Final = 50


class Jt808GatewayAccount(BaseModel):
    """A `bondwatch-jt808` gateway's account and the registry of the devices it serves."""

    model_config = ConfigDict(extra="forbid")

    account: NodeId = Field(description="the gateway's broker account (its `gateway_id`)")
    registry: Path = Field(
        description="its device registry (the file its `registry:` names; relative to this "
        "file): it may write the topics of exactly these nodes"
    )

    def nodes(self) -> list[str]:
        """The registry's node ids (reads the file; raises `ConfigError`)."""
        return load_cellular_registry(self.registry).nodes()


class SiteRegistry(BaseModel):
    """A site's broker accounts by role (YAML: `servers:`, `trucks:`, `gates:`,
    `jt808_gateways:`)."""

    model_config = ConfigDict(extra="forbid")

    servers: list[NodeId] = Field(
        default_factory=list,
        description="the `broker.client_id` of each server worker; each has one account "
        "per connection (`<id>`, `<id>-commands`, `<id>-passages`, `<id>-gate-commands`)",
    )
    trucks: list[NodeId] = Field(default_factory=list, description="truck gateways' node ids")
    gates: list[NodeId] = Field(default_factory=list, description="gate controllers' node ids")
    jt808_gateways: list[Jt808GatewayAccount] = Field(
        default_factory=list,
        description="cellular device gateways (`bondwatch-jt808`), each with its registry",
    )

    @model_validator(mode="after")
    def _each_account_once(self) -> SiteRegistry:
        for server in self.servers:
            if len(server) > SERVER_ID_MAX:
                raise ValueError(
                    f"server client id {server!r} is longer than {SERVER_ID_MAX} characters "
                    "(its connections' accounts add a suffix of up to 14)"
                )
        seen: dict[str, str] = {}
        for role, name in self.accounts():
            if name in seen:
                raise ValueError(
                    f"account {name!r} is listed as {seen[name]} and as {role}: an account "
                    "has exactly one role"
                )
            seen[name] = role
        return self

    def accounts(self) -> list[tuple[str, str]]:
        """(role, account name) of every account, in registry order."""
        out: list[tuple[str, str]] = []
        for server in self.servers:
            out.extend(("server", account) for account in server_accounts(server).values())
        out.extend(("truck", node) for node in self.trucks)
        out.extend(("gate", node) for node in self.gates)
        out.extend(("jt808-gateway", gateway.account) for gateway in self.jt808_gateways)
        return out


def device_rules(kind: topics.Kind, node_id: str) -> list[str]:
    """The ACL lines of one truck or gate account (after its `user` line)."""
    writes = [topics.build(kind, node_id, ch) for ch in topics.EDGE_CHANNELS[kind]]  # type: ignore[arg-type]
    reads = [topics.command(kind, node_id), topics.ack(kind, node_id)]
    return [f"topic write {t}" for t in writes] + [f"topic read {t}" for t in reads]


#: Every server connection: reads every edge topic, writes commands, acknowledgements and
#: the trucks' `declared` lists (`server.declared`).
SERVER_RULES: Final[tuple[str, ...]] = (
    f"topic read {TOPIC_PREFIX}/#",
    f"topic write {TOPIC_PREFIX}/+/+/command",
    f"topic write {TOPIC_PREFIX}/+/+/ack",
    f"topic write {topics.DECLARED_FILTER}",
)

HEADER: Final = """\
# BondWatch broker access list (Mosquitto 2.0 acl_file), GENERATED by
# `bondwatch-broker acl {source}` — edit the registry, not this file.
# One `user` block per account; no `pattern` lines, which would apply to every account
# (docs/broker-security.md). An account not listed here can neither publish nor read.
"""


def gateway_rules(nodes: list[str]) -> list[str]:
    """The ACL lines of a JT/T 808 gateway's account: each node's truck rules, and its
    `declared` list to read (the registry's locks listed without a node are mapped by it)."""
    return [
        line
        for node in nodes
        for line in [*device_rules("truck", node), f"topic read {topics.declared(node)}"]
    ]


def _gateway_nodes(registry: SiteRegistry) -> dict[str, list[str]]:
    """Each gateway account's nodes; a node has one writer (one gateway, not a truck)."""
    writers = {node: f"truck account {node}" for node in registry.trucks}
    out: dict[str, list[str]] = {}
    for gateway in registry.jt808_gateways:
        nodes = gateway.nodes()
        for node in nodes:
            if node in writers:
                raise ValueError(
                    f"node {node} of jt808 gateway {gateway.account} ({gateway.registry.name}) "
                    f"is also served by {writers[node]}: a node's seqs have one writer — "
                    "remove it from one of them"
                )
            writers[node] = f"jt808 gateway {gateway.account}"
        out[gateway.account] = nodes
    return out


def render(registry: SiteRegistry, source: str) -> str:
    """The ACL file for `registry` (`source` names the registry in the header)."""
    gateways = _gateway_nodes(registry)
    lines = [HEADER.format(source=source)]
    for role, account in registry.accounts():
        lines.append(f"# {role}")
        lines.append(f"user {account}")
        if role == "server":
            lines.extend(SERVER_RULES)
        elif role == "jt808-gateway":
            lines.extend(gateway_rules(gateways[account]))
        else:
            lines.extend(device_rules(role, account))  # type: ignore[arg-type]
        lines.append("")
    return "\n".join(lines)


def load_registry(path: Path) -> SiteRegistry:
    """Read and validate a registry file; raise `contract.config_file.ConfigError`."""
    return load_model(path, SiteRegistry)
