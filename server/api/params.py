"""Bounds of numeric request parameters: what the store's integer columns can hold.

SQLite and PostgreSQL keep ids and offsets in signed 64-bit integers; a larger number in
a path or query must be refused as invalid (422), not reach the driver (which raises).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Query

#: The largest value of a signed 64-bit (BIGINT) column.
DB_INT_MAX: Final = 2**63 - 1

#: `offset` of a paged list.
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX, description="rows to skip")]
