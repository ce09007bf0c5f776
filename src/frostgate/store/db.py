"""Database engines for the embedded default (SQLite) and PostgreSQL.

SQLite runs in WAL mode at ``synchronous=FULL``: FrostGate acknowledges a decision only
once it is durable, and group commit (see ``writer``), not weaker sync, pays for it.
Transactions on SQLite begin with ``BEGIN IMMEDIATE`` so a writer takes the write lock
before reading the ledger head it is about to extend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

__all__ = ["Database", "create_db_engine", "open_database"]


@dataclass(frozen=True, slots=True)
class Database:
    """The engines of one database: ``write`` for transactions that change data,
    ``read`` for queries. On SQLite a read transaction must not take the write lock
    (it would stall the group-commit writer), so the two differ; on PostgreSQL they
    are the same engine."""

    write: sa.Engine
    read: sa.Engine

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()


def open_database(url: str) -> Database:
    if url.startswith("sqlite"):
        return Database(
            write=_sqlite_engine(url, immediate=True), read=_sqlite_engine(url, immediate=False)
        )
    engine = create_db_engine(url)
    return Database(write=engine, read=engine)


def _sqlite_engine(url: str, *, immediate: bool) -> sa.Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=8,
        poolclass=sa.pool.QueuePool,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit
        # transactions would defer locking until the first write).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_db_engine(url: str) -> sa.Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql://...`` (psycopg 3)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
