"""Security audit events: rows in ``audit_events``, each a leaf of its stream's ledger.

The stream is ``audit/<tenant>`` for events about one tenant and ``audit/_platform`` for
events with no tenant (unknown keys, platform administration). Rows are append-only and
chained exactly like decisions, so the same verification applies. Tripwire kinds
(canary key use, honeypot hits) also queue their alerts in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from frostgate.ledger import entry_leaf_hash
from frostgate.store import schema
from frostgate.store.entries import ENTRY_VERSION, format_timestamp
from frostgate.store.outbox import enqueue_audit_alerts
from frostgate.store.streams import StreamAppender
from frostgate.store.tenancy import bind_tenant

__all__ = [
    "PLATFORM",
    "PendingAudit",
    "append_audit",
    "audit_entry",
    "audit_page",
    "audit_stream",
]

PLATFORM = "_platform"
SEVERITIES = ("info", "warning", "critical")


def audit_stream(tenant_id: str) -> str:
    return f"audit/{tenant_id}"


@dataclass(slots=True)
class PendingAudit:
    """One security event to record. ``tenant_id`` is a tenant or :data:`PLATFORM`."""

    tenant_id: str
    event_id: str
    kind: str
    severity: str
    created_at: datetime
    actor_key_id: str | None = None
    client_ip: str | None = None
    peer_ip: str | None = None
    forwarded_for: str | None = None
    route: str | None = None
    count: int = 1
    detail: Mapping[str, Any] = field(default_factory=dict)


def audit_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ledger entry of an audit row, rebuilt from its columns."""
    return {
        "v": ENTRY_VERSION,
        "stream": audit_stream(row["tenant_id"]),
        "index": row["seq"],
        "event_id": row["event_id"],
        "kind": row["kind"],
        "severity": row["severity"],
        "actor_key_id": row["actor_key_id"],
        "client_ip": row["client_ip"],
        "peer_ip": row["peer_ip"],
        "forwarded_for": row["forwarded_for"],
        "route": row["route"],
        "count": row["count"],
        "detail": orjson.loads(row["detail"]),
        "created_at": format_timestamp(row["created_at"]),
    }


def append_audit(conn: sa.Connection, items: Sequence[PendingAudit]) -> None:
    """Append ``items`` to their streams inside the caller's transaction."""
    by_tenant: dict[str, list[PendingAudit]] = {}
    for item in items:
        by_tenant.setdefault(item.tenant_id, []).append(item)
    for tenant_id, group in by_tenant.items():
        bind_tenant(conn, tenant_id)
        appender = StreamAppender(conn, audit_stream(tenant_id), tenant_id)
        rows: list[dict[str, Any]] = []
        for item in group:
            row: dict[str, Any] = {
                "tenant_id": tenant_id,
                "seq": appender.next_index,
                "event_id": item.event_id,
                "kind": item.kind,
                "severity": item.severity,
                "actor_key_id": item.actor_key_id,
                "client_ip": item.client_ip,
                "peer_ip": item.peer_ip,
                "forwarded_for": item.forwarded_for,
                "route": item.route,
                "count": item.count,
                "detail": orjson.dumps(dict(item.detail), option=orjson.OPT_SORT_KEYS).decode(),
                "created_at": item.created_at,
            }
            leaf = entry_leaf_hash(audit_entry(row))
            link = appender.append(leaf)
            row["leaf_hash"] = leaf.hex()
            row["prev_chain_hash"] = link.prev_chain.hex()
            row["chain_hash"] = link.chain.hex()
            rows.append(row)
        conn.execute(schema.audit_events.insert(), rows)
        appender.save()
        enqueue_audit_alerts(conn, tenant_id, rows)


def audit_page(
    conn: sa.Connection,
    tenant_id: str,
    *,
    kinds: tuple[str, ...] = (),
    severity: str | None = None,
    since: datetime | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, filtered in SQL."""
    bind_tenant(conn, tenant_id)
    a = schema.audit_events
    query = sa.select(a).where(a.c.tenant_id == tenant_id)
    if kinds:
        query = query.where(a.c.kind.in_(kinds))
    if severity is not None:
        query = query.where(a.c.severity == severity)
    if since is not None:
        query = query.where(a.c.created_at >= since)
    if before_seq is not None:
        query = query.where(a.c.seq < before_seq)
    rows = conn.execute(query.order_by(a.c.seq.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
