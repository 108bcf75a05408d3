"""Many rows into one table through the driver's own `executemany`, with SQLAlchemy's
statement and value conversions prepared once.

The ingest writes thousands of rows a second. SQLAlchemy's Core `insert` builds, for every
row of every batch, its parameters through the compiler (and, with RETURNING, renders
multi-row VALUES): about 40 µs a row on the bench, and on SQLite that work is done with
the single writer's lock held, where a gate passage waits for it. Here the statement is
compiled once per dialect, each value is converted by the column type's own bind
processor (the very conversion SQLAlchemy applies: SQLite's DATETIME text, booleans as
integers), before the transaction begins, and the driver runs the lot (sqlite3 and psycopg
3 both loop in C).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite


class BulkInsert:
    """`INSERT INTO table (columns…) VALUES (…)`, optionally `ON CONFLICT (keys) DO
    NOTHING` or, with `replace`, `ON CONFLICT (keys) DO UPDATE` those columns with the
    new row's (an upsert), for one dialect."""

    def __init__(
        self,
        table: Table,
        dialect: Dialect,
        columns: Sequence[str],
        ignore_conflicts_on: Sequence[str] | None = None,
        replace: Sequence[str] = (),
    ) -> None:
        self.columns = tuple(columns)
        stmt: Any
        if dialect.name == "postgresql":
            stmt = postgresql.insert(table)
        elif dialect.name == "sqlite":
            stmt = sqlite.insert(table)
        else:
            raise ValueError(f"no bulk insert for the {dialect.name} dialect")
        if ignore_conflicts_on is not None and replace:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(ignore_conflicts_on),
                set_={name: stmt.excluded[name] for name in replace},
            )
        elif ignore_conflicts_on is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(ignore_conflicts_on))
        compiled = stmt.compile(dialect=dialect, column_keys=list(self.columns))
        self.sql = compiled.string
        order = compiled.positiontup
        # qmark (SQLite): positional, in the compiled order; pyformat (psycopg): by name.
        self._positions: tuple[int, ...] | None = (
            tuple(self.columns.index(name) for name in order) if order is not None else None
        )
        if self._positions is not None and len(self._positions) != len(self.columns):
            raise ValueError(f"{table.name}: the statement binds {order}, not {self.columns}")
        processors: list[Callable[[Any], Any] | None] = []
        for name in self.columns:
            impl = table.c[name].type.dialect_impl(dialect)
            processor: Callable[[Any], Any] | None = impl.bind_processor(dialect)
            if processor is not None and _default_sqlite_datetime(impl):
                processor = _sqlite_datetime(processor)
            processors.append(processor)
        self._processors = tuple(processors)

    def params(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        """Driver parameters for `rows` (values in `columns` order), converted as
        SQLAlchemy would convert them."""
        converting = [(i, p) for i, p in enumerate(self._processors) if p is not None]
        positions = self._positions
        in_order = positions == tuple(range(len(self.columns)))
        out: list[Any] = []
        for row in rows:
            values = list(row)
            for index, processor in converting:
                value = values[index]
                if value is not None:
                    values[index] = processor(value)
            if positions is None:
                out.append(dict(zip(self.columns, values, strict=True)))
            elif in_order:  # the usual case: bound in the order of `columns`
                out.append(tuple(values))
            else:
                out.append(tuple([values[i] for i in positions]))
        return out

    def execute(self, conn: Connection, params: list[Any]) -> int:
        """Run the insert for every row of `params`; the number of rows inserted (rows
        ignored on a conflict are not counted)."""
        if not params:
            return 0
        result = conn.exec_driver_sql(self.sql, params)
        return int(result.rowcount)


#: SQLAlchemy's text form of a SQLite DATETIME (`sqlite.DATETIME`'s default storage format).
SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _default_sqlite_datetime(impl: Any) -> bool:
    return (
        isinstance(impl, sqlite.DATETIME)
        and getattr(impl, "_storage_format", None) == SQLITE_DATETIME_FORMAT
    )


def _sqlite_datetime(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLAlchemy's SQLite DATETIME text, made by `datetime.isoformat` in C (a quarter of
    the cost of its `%` formatting of seven fields): the same 26 characters, wall-clock
    fields as they are, any UTC offset left out as SQLAlchemy leaves it out. Anything but
    a `datetime` goes to SQLAlchemy's own processor."""

    def process(value: Any) -> Any:
        if type(value) is datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return fallback(value)

    return process
