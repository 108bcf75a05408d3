"""Roles and what each may do.

- `officer`: handles alarms (ack, comment, clear) and overrides gate decisions with a comment.
- `supervisor`: everything an officer may, and assigns alarms, sees reports and the audit log,
  registers and releases declarations.
- `admin`: accounts and configuration; reads everything, but may not edit or delete alarms,
  gate decisions, declarations or audit entries.
- `integration`: a machine account of the declaration system; API tokens only, no password.
- `device`: a gate controller, named after its node id; API tokens only, no password. It may
  only upload the images of its own passages (`server.auth.policy.DEVICE_ROUTES`).
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["officer", "supervisor", "admin", "integration", "device"]
ROLES: tuple[Role, ...] = get_args(Role)

#: A role also holds the rights of the roles listed here.
INCLUDES: dict[Role, frozenset[Role]] = {
    "officer": frozenset(),
    "supervisor": frozenset({"officer"}),
    "admin": frozenset(),
    "integration": frozenset(),
    "device": frozenset(),
}

#: Roles that sign in with a password at the console.
PERSON_ROLES: frozenset[Role] = frozenset({"officer", "supervisor", "admin"})
#: Machine roles, signing in with API tokens only.
TOKEN_ROLES: frozenset[Role] = frozenset({"integration", "device"})


def holds(role: str, wanted: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether an account of `role` holds any of the `wanted` roles (directly or included)."""
    if role not in INCLUDES:
        return False
    return role in wanted or any(r in wanted for r in INCLUDES[role])
