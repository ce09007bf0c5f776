"""Tenant repository."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.tenancy import bind_platform, bind_tenant

__all__ = [
    "TENANT_ID_RE",
    "Tenant",
    "create_tenant",
    "get_tenant",
    "list_tenants",
    "set_quota",
    "set_status",
]

TENANT_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    status: str
    daily_event_quota: int | None
    created_at: datetime


def _tenant(row: sa.Row[Any]) -> Tenant:
    m = row._mapping
    return Tenant(m["tenant_id"], m["name"], m["status"], m["daily_event_quota"], m["created_at"])


def create_tenant(
    conn: sa.Connection,
    tenant_id: str,
    name: str,
    now: datetime,
    *,
    daily_event_quota: int | None = None,
) -> Tenant:
    if not TENANT_ID_RE.fullmatch(tenant_id):
        raise ValueError("tenant id must be 2-63 chars of a-z, 0-9 and '-', starting alnum")
    bind_platform(conn)
    conn.execute(
        schema.tenants.insert().values(
            tenant_id=tenant_id,
            name=name,
            status="active",
            daily_event_quota=daily_event_quota,
            created_at=now,
        )
    )
    return Tenant(tenant_id, name, "active", daily_event_quota, now)


def set_status(conn: sa.Connection, tenant_id: str, status: str) -> bool:
    if status not in ("active", "suspended"):
        raise ValueError("status must be active or suspended")
    bind_platform(conn)
    t = schema.tenants
    result = conn.execute(t.update().where(t.c.tenant_id == tenant_id).values(status=status))
    return result.rowcount == 1


def set_quota(conn: sa.Connection, tenant_id: str, quota: int | None) -> bool:
    bind_platform(conn)
    t = schema.tenants
    result = conn.execute(
        t.update().where(t.c.tenant_id == tenant_id).values(daily_event_quota=quota)
    )
    return result.rowcount == 1


def get_tenant(conn: sa.Connection, tenant_id: str) -> Tenant | None:
    if not tenant_id:
        return None
    bind_tenant(conn, tenant_id)  # exactly this tenant's row, whatever the caller's context
    t = schema.tenants
    row = conn.execute(
        sa.select(t.c.tenant_id, t.c.name, t.c.status, t.c.daily_event_quota, t.c.created_at).where(
            t.c.tenant_id == tenant_id
        )
    ).first()
    return None if row is None else _tenant(row)


def list_tenants(conn: sa.Connection) -> list[Tenant]:
    bind_platform(conn)
    t = schema.tenants
    rows = conn.execute(
        sa.select(
            t.c.tenant_id, t.c.name, t.c.status, t.c.daily_event_quota, t.c.created_at
        ).order_by(t.c.tenant_id)
    )
    return [_tenant(r) for r in rows]
