"""Binding a transaction to one tenant.

On PostgreSQL the tenant is set per transaction (``set_config(..., is_local => true)``,
the function form of ``SET LOCAL``) so row-level security policies see it and it cannot
leak into the next transaction on a pooled connection. SQLite has no RLS; there the
repositories' explicit ``tenant_id`` predicates are the only guard, and every
repository function takes the tenant as a required argument.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["bind_delivery", "bind_platform", "bind_tenant"]


def bind_tenant(conn: sa.Connection, tenant_id: str) -> None:
    if not tenant_id:
        raise ValueError("a tenant id is required")
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('fg.tenant_id', :t, true)"), {"t": tenant_id})


def bind_platform(conn: sa.Connection) -> None:
    """Platform administration context: tenants and keys of every tenant, no tenant data."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('fg.platform', 'on', true)"))


def bind_delivery(conn: sa.Connection) -> None:
    """Delivery-worker context: the outbox, endpoints and attempts of every tenant only."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('fg.delivery', 'on', true)"))
