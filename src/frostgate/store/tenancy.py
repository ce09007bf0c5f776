"""Binding a transaction to one tenant.

On PostgreSQL the tenant is set per transaction (``set_config(..., is_local => true)``,
the function form of ``SET LOCAL``) so row-level security policies see it and it cannot
leak into the next transaction on a pooled connection. SQLite has no RLS; there the
repositories' explicit ``tenant_id`` predicates are the only guard, and every
repository function takes the tenant as a required argument.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["bind_delivery", "bind_platform", "bind_tenant", "serialize_tenant_change"]


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


_TENANT_CHANGE_LOCKS = 0x46474C54  # "FGLT"


def serialize_tenant_change(conn: sa.Connection, tenant_id: str, what: str) -> None:
    """Hold, until the transaction ends, the right to change ``what`` of the tenant, so
    a count checked against a limit (or a row found absent) is still true at commit.
    SQLite transactions here begin IMMEDIATE and already run one at a time; PostgreSQL
    takes a transaction-level advisory lock on the pair."""
    if conn.dialect.name == "postgresql":
        # The two-key form: its own lock space, apart from the anchoring job's bigint key.
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:k))"),
            {"space": _TENANT_CHANGE_LOCKS, "k": f"{what}|{tenant_id}"},
        )
