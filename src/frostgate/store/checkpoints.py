"""Signed checkpoints (never rewritten) and the reads that ledger proofs need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.tenancy import bind_tenant

__all__ = ["StoredCheckpoint", "checkpoints_since", "insert_checkpoint", "latest_checkpoint"]

_c = schema.checkpoints


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    stream: str
    size: int
    root_hash: str
    note: str
    created_at: datetime


def _row(row: sa.Row[Any]) -> StoredCheckpoint:
    m = row._mapping
    return StoredCheckpoint(m["stream"], int(m["size"]), m["root_hash"], m["note"], m["created_at"])


_COLUMNS = (_c.c.stream, _c.c.size, _c.c.root_hash, _c.c.note, _c.c.created_at)


def latest_checkpoint(conn: sa.Connection, tenant_id: str, stream: str) -> StoredCheckpoint | None:
    bind_tenant(conn, tenant_id)
    row = conn.execute(
        sa.select(*_COLUMNS).where(_c.c.stream == stream).order_by(_c.c.size.desc()).limit(1)
    ).first()
    return None if row is None else _row(row)


def checkpoints_since(
    conn: sa.Connection, tenant_id: str, stream: str, since_size: int, limit: int = 1000
) -> list[StoredCheckpoint]:
    bind_tenant(conn, tenant_id)
    rows = conn.execute(
        sa.select(*_COLUMNS)
        .where(_c.c.stream == stream, _c.c.size >= since_size)
        .order_by(_c.c.size)
        .limit(limit)
    )
    return [_row(r) for r in rows]


def insert_checkpoint(
    conn: sa.Connection,
    tenant_id: str,
    stream: str,
    size: int,
    root_hash: bytes,
    note: str,
    now: datetime,
) -> None:
    bind_tenant(conn, tenant_id)
    conn.execute(
        _c.insert().values(
            stream=stream,
            tenant_id=tenant_id,
            size=size,
            root_hash=root_hash.hex(),
            note=note,
            created_at=now,
        )
    )
