"""Canonical JSON: keys sorted, no spaces, UTF-8. What command signatures cover."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Serialise `value` the one way both signer and verifier agree on."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
