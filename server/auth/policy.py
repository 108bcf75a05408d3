"""Which roles may call which REST endpoint, for routers included with `guard`.

- Listed in PUBLIC: no account needed (liveness and metrics).
- Listed in ROUTE_ROLES: the roles named there (a supervisor holds the officer's rights).
- Any other GET/HEAD: any logged-in account.
- Any other write: officers and supervisors only — never an admin (who must not change
  alarms, decisions or audit entries) nor an integration account unless listed here.

Paths are the route templates with every `{param}` written as `{}`.
"""

from __future__ import annotations

import re

from server.auth.roles import Role

PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/api/v1/healthz"), ("GET", "/api/v1/metrics")}
)

ROUTE_ROLES: dict[tuple[str, str], tuple[Role, ...]] = {
    ("POST", "/api/v1/declarations"): ("supervisor", "integration"),
    ("POST", "/api/v1/declarations/{}/release"): ("supervisor", "integration"),
    ("POST", "/api/v1/alarms/{}/ack"): ("officer",),
    ("POST", "/api/v1/alarms/{}/comment"): ("officer",),
    ("POST", "/api/v1/alarms/{}/clear"): ("officer",),
    ("POST", "/api/v1/alarms/{}/assign"): ("supervisor",),
    ("POST", "/api/v1/passages/{}/override"): ("officer",),
    ("POST", "/api/v1/trips/{}/unseal"): ("officer",),
    ("GET", "/api/v1/audit"): ("supervisor", "admin"),
    ("GET", "/api/v1/audit/verify"): ("supervisor", "admin"),
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_WRITERS: tuple[Role, ...] = ("officer",)

_PARAM = re.compile(r"\{[^}]*\}")


def template(path: str) -> str:
    return _PARAM.sub("{}", path)


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
