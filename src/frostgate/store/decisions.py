"""Read side of the decisions table: lookups, filtered pages, the live feed, stats.

Every function takes the tenant explicitly and filters on it; on PostgreSQL the
connection is also bound to the tenant for row-level security. Filters are applied in
SQL so a page is always full when enough matching rows exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.tenancy import bind_tenant

__all__ = [
    "DecisionFilter",
    "chain_rows",
    "feed_page",
    "get_decision",
    "known_event_ids",
    "ledger_head",
    "list_page",
    "stats",
]

_d = schema.decisions


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    threat_levels: tuple[str, ...] = ()
    event_type: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    only_changed: bool = False
    only_actionable: bool = False

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if self.threat_levels:
            out.append(_d.c.threat_level.in_(self.threat_levels))
        if self.event_type is not None:
            out.append(_d.c.event_type == self.event_type)
        if self.source is not None:
            out.append(_d.c.source == self.source)
        if self.since is not None:
            out.append(_d.c.created_at >= self.since)
        if self.until is not None:
            out.append(_d.c.created_at < self.until)
        if self.only_changed:
            out.append(_d.c.changed.is_(True))
        if self.only_actionable:
            out.append(_d.c.actionable.is_(True))
        return out


def get_decision(conn: sa.Connection, tenant_id: str, event_id: str) -> dict[str, Any] | None:
    bind_tenant(conn, tenant_id)
    row = conn.execute(
        sa.select(_d).where(_d.c.tenant_id == tenant_id, _d.c.event_id == event_id)
    ).first()
    return None if row is None else dict(row._mapping)


def known_event_ids(conn: sa.Connection, tenant_id: str, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` the tenant has stored (one indexed lookup per 500)."""
    bind_tenant(conn, tenant_id)
    found: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        found.update(
            conn.execute(
                sa.select(_d.c.event_id).where(
                    _d.c.tenant_id == tenant_id, _d.c.event_id.in_(chunk)
                )
            ).scalars()
        )
    return found


def list_page(
    conn: sa.Connection,
    tenant_id: str,
    flt: DecisionFilter,
    *,
    before_seq: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first; ``before_seq`` is the keyset cursor of the previous page."""
    bind_tenant(conn, tenant_id)
    query = sa.select(_d).where(_d.c.tenant_id == tenant_id, *flt.clauses())
    if before_seq is not None:
        query = query.where(_d.c.seq < before_seq)
    rows = conn.execute(query.order_by(_d.c.seq.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def feed_page(
    conn: sa.Connection, tenant_id: str, flt: DecisionFilter, *, after_seq: int, limit: int
) -> list[dict[str, Any]]:
    """Oldest first after the cursor: what a live consumer has not seen yet."""
    bind_tenant(conn, tenant_id)
    rows = conn.execute(
        sa.select(_d)
        .where(_d.c.tenant_id == tenant_id, _d.c.seq > after_seq, *flt.clauses())
        .order_by(_d.c.seq)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def ledger_head(conn: sa.Connection, stream: str, tenant_id: str) -> tuple[int, str] | None:
    bind_tenant(conn, tenant_id)
    h = schema.ledger_heads
    row = conn.execute(
        sa.select(h.c.size, h.c.chain_hash).where(h.c.stream == stream, h.c.tenant_id == tenant_id)
    ).first()
    return None if row is None else (int(row.size), str(row.chain_hash))


def chain_rows(
    conn: sa.Connection,
    tenant_id: str,
    start: int,
    end: int | None,
    *,
    table: sa.Table = _d,
    chunk: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Rows ``start <= seq < end`` of a ledgered table (decisions by default), in order,
    read in keyset chunks (never the whole log)."""
    bind_tenant(conn, tenant_id)
    position = start
    while end is None or position < end:
        query = sa.select(table).where(table.c.tenant_id == tenant_id, table.c.seq >= position)
        if end is not None:
            query = query.where(table.c.seq < end)
        rows = conn.execute(query.order_by(table.c.seq).limit(chunk)).all()
        if not rows:
            return
        for row in rows:
            yield dict(row._mapping)
        position = int(rows[-1].seq) + 1


def _rules_exploded(conn: sa.Connection) -> sa.FromClause:
    """A (tenant_id, created_at, rule) relation over the JSON ``rules`` arrays."""
    if conn.dialect.name == "postgresql":
        rule = sa.func.jsonb_array_elements_text(
            sa.cast(_d.c.rules, sa.dialects.postgresql.JSONB)
        ).label("rule")
        return sa.select(_d.c.tenant_id, _d.c.created_at, rule).subquery()
    each = sa.func.json_each(_d.c.rules).table_valued("value").alias("each")
    return (
        sa.select(_d.c.tenant_id, _d.c.created_at, each.c.value.label("rule"))
        .select_from(_d.join(each, sa.true()))
        .subquery()
    )


def _int(value: Any) -> int:
    return int(value)


def stats(
    conn: sa.Connection, tenant_id: str, *, since: datetime, until: datetime, top: int = 10
) -> dict[str, Any]:
    """Counts per level, top rules / event types / sources, unique IPs, in one window."""
    bind_tenant(conn, tenant_id)
    window = (_d.c.tenant_id == tenant_id, _d.c.created_at >= since, _d.c.created_at < until)
    levels: dict[str, int] = {
        str(level): _int(count)
        for level, count in conn.execute(
            sa.select(_d.c.threat_level, sa.func.count()).where(*window).group_by(_d.c.threat_level)
        )
    }
    totals = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(_d.c.src_ip)),
            sa.func.coalesce(sa.func.sum(sa.case((_d.c.actionable.is_(True), 1), else_=0)), 0),
        ).where(*window)
    ).one()

    def top_of(column: sa.ColumnElement[Any]) -> list[dict[str, Any]]:
        count = sa.func.count().label("n")
        rows = conn.execute(
            sa.select(column, count)
            .where(*window)
            .group_by(column)
            .order_by(count.desc(), column)
            .limit(top)
        )
        return [{"name": name, "count": _int(n)} for name, n in rows]

    exploded = _rules_exploded(conn)
    n = sa.func.count().label("n")
    top_rules = [
        {"name": name, "count": _int(cnt)}
        for name, cnt in conn.execute(
            sa.select(exploded.c.rule, n)
            .where(
                exploded.c.tenant_id == tenant_id,
                exploded.c.created_at >= since,
                exploded.c.created_at < until,
            )
            .group_by(exploded.c.rule)
            .order_by(n.desc(), exploded.c.rule)
            .limit(top)
        )
    ]
    return {
        "total": int(totals[0]),
        "unique_ips": int(totals[1]),
        "actionable": int(totals[2]),
        "by_threat_level": levels,
        "top_rules": top_rules,
        "top_event_types": top_of(_d.c.event_type),
        "top_sources": top_of(_d.c.source),
    }
