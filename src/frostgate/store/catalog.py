"""Which ledger streams exist: one platform audit stream, and for every tenant its
decisions and audit streams."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.audit import PLATFORM, audit_entry, audit_stream
from frostgate.store.entries import decision_entry, decision_stream
from frostgate.store.tenancy import bind_platform

__all__ = ["EntryOf", "all_streams", "ledger_tenants", "stream_source"]

EntryOf = Callable[[Mapping[str, Any]], dict[str, Any]]


def stream_source(stream: str) -> tuple[sa.Table, EntryOf]:
    """The table that holds a stream's rows, and the function rebuilding their entries."""
    if stream.startswith("decisions/"):
        return schema.decisions, decision_entry
    if stream.startswith("audit/"):
        return schema.audit_events, audit_entry
    raise ValueError(f"unknown stream {stream!r}")


def all_streams(conn: sa.Connection) -> list[tuple[str, str]]:
    """``(tenant_id, stream)`` pairs, the platform stream first, tenants in id order."""
    bind_platform(conn)
    tenant_ids: list[str] = list(
        conn.execute(
            sa.select(schema.tenants.c.tenant_id).order_by(schema.tenants.c.tenant_id)
        ).scalars()
    )
    streams = [(PLATFORM, audit_stream(PLATFORM))]
    for tenant_id in tenant_ids:
        streams += [(tenant_id, decision_stream(tenant_id)), (tenant_id, audit_stream(tenant_id))]
    return streams


def ledger_tenants(conn: sa.Connection) -> set[str]:
    """Every tenant id the ledger tables hold rows of, whether or not its ``tenants``
    record exists. Tenants are never deleted, so for a verifier one missing from
    :func:`all_streams` is itself evidence; listing streams from the tenants table alone
    would skip exactly the ledger whose record was removed. (On PostgreSQL an RLS-bound
    role sees none of these rows; a superuser or the owner sees all.)"""
    found: set[str] = set()
    for table in (schema.ledger_heads, schema.checkpoints, schema.decisions, schema.audit_events):
        found.update(conn.execute(sa.select(table.c.tenant_id).distinct()).scalars())
    found.discard(PLATFORM)
    return found
