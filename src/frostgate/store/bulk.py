"""Bulk inserts straight to the DBAPI cursor for the writer's hot path.

SQLAlchemy Core spends tens of microseconds per row preparing parameters for an
``executemany``; a 1,000-event batch then costs more in Python than in the database.
Here the INSERT is rendered once per (table, columns, dialect) and rows go to the
driver as tuples. Values must already be in the driver's native form; the only
conversion done is the one SQLAlchemy itself applies on SQLite, timestamps as
``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text, so rows read back identically either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

__all__ = ["insert_rows"]


@lru_cache(maxsize=32)
def _statement(table: str, columns: tuple[str, ...], paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    names = ", ".join(columns)
    markers = ", ".join(marker for _ in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({markers})"  # noqa: S608 - fixed names


@lru_cache(maxsize=256)
def _sqlite_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


@lru_cache(maxsize=32)
def _time_positions(table: sa.Table, columns: tuple[str, ...]) -> tuple[int, ...]:
    """Where in ``columns`` the table keeps timestamps (from its schema, not from the
    values: a nullable timestamp may be None in one row and set in the next)."""
    return tuple(i for i, name in enumerate(columns) if isinstance(table.c[name].type, sa.DateTime))


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``INSERT`` many rows of ``columns`` (values in that order) in one executemany."""
    if not rows:
        return
    dialect = conn.dialect
    sql = _statement(table.name, columns, dialect.paramstyle)
    positions = _time_positions(table, columns) if dialect.name == "sqlite" else ()
    if positions:
        converted = []
        for row in rows:
            values = list(row)
            for i in positions:
                if values[i] is not None:
                    values[i] = _sqlite_time(values[i])
            converted.append(tuple(values))
        rows = converted
    conn.exec_driver_sql(sql, list(rows))
