"""Which roles may call which REST endpoint, for routers included with `guard`.

- Listed in PUBLIC: no account needed (liveness only; metrics and the API documentation
  need an account, server.api.operations).
- Listed in ROUTE_ROLES: the roles named there (a supervisor holds the officer's rights).
- Any other GET/HEAD: any logged-in account.
- Any other write: officers and supervisors only — never an admin (who must not change
  alarms, decisions or audit entries) nor an integration account unless listed here.
- A `device` account (a gate controller) may call the routes listed for it in ROUTE_ROLES
  and nothing else, reads included (`device_may_call`).

Paths are the route templates with every `{param}` written as `{}`.
"""

from __future__ import annotations

import re

from contract.version import API_PREFIX
from server.auth.roles import Role


def endpoint(method: str, path: str) -> tuple[str, str]:
    """A route of the REST API: its method and its template below `API_PREFIX`."""
    return method, f"{API_PREFIX}{path}"


PUBLIC: frozenset[tuple[str, str]] = frozenset({endpoint("GET", "/healthz")})

ROUTE_ROLES: dict[tuple[str, str], tuple[Role, ...]] = {
    endpoint("POST", "/declarations"): ("supervisor", "integration"),
    endpoint("POST", "/declarations/{}/release"): ("supervisor", "integration"),
    endpoint("POST", "/alarms/{}/ack"): ("officer",),
    endpoint("POST", "/alarms/{}/comment"): ("officer",),
    endpoint("POST", "/alarms/{}/clear"): ("officer",),
    endpoint("POST", "/alarms/{}/assign"): ("supervisor",),
    endpoint("POST", "/passages/{}/override"): ("officer",),
    endpoint("POST", "/passages/{}/correct"): ("officer",),
    endpoint("POST", "/appointments"): ("supervisor", "integration"),
    endpoint("POST", "/appointments/{}/cancel"): ("supervisor", "integration"),
    endpoint("POST", "/trips/{}/unseal"): ("officer",),
    endpoint("GET", "/audit"): ("supervisor", "admin"),
    endpoint("GET", "/audit/verify"): ("supervisor", "admin"),
    endpoint("GET", "/dead-letters"): ("admin",),
    # a gate controller uploads its passages' images (server.api.evidence checks the gate)
    endpoint("PUT", "/passages/{}/images/{}"): ("device",),
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_WRITERS: tuple[Role, ...] = ("officer",)

_PARAM = re.compile(r"\{[^}]*\}")


def template(path: str) -> str:
    return _PARAM.sub("{}", path)


def device_may_call(method: str, path_template: str) -> bool:
    """Whether a `device` account may call this route (only those listed for it)."""
    key = (method.upper(), template(path_template))
    return "device" in ROUTE_ROLES.get(key, ())


def roles_for(method: str, path_template: str) -> tuple[Role, ...] | None:
    """The roles allowed; `()` = any logged-in account; None = public."""
    key = (method.upper(), template(path_template))
    if key in PUBLIC or (key[0] == "HEAD" and ("GET", key[1]) in PUBLIC):
        return None
    if key in ROUTE_ROLES:
        return ROUTE_ROLES[key]
    if key[0] in READ_METHODS:
        return ()
    return DEFAULT_WRITERS
