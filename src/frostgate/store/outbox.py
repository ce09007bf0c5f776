"""The durable outbox: alert and tripwire messages, written in the causing transaction.

A message row is inserted by the same transaction that stores the decision or audit
event that causes it (the group-commit writer, :func:`frostgate.store.audit.append_audit`),
so a committed decision always has its alerts and an alert never exists without its
cause. Delivery (``frostgate.delivery``) claims due rows, sends them through the egress
client and records every attempt here.

Aggregation (same rule set and target for one endpoint): the first alert is due at
once; repeats inside the window fold into one *summary* message due when the window
closes, carrying the count. A message folds repeats only while it is unsealed
(``body IS NULL``): its body is fixed the first time it is claimed and never changes
afterwards, so every retry of a ``webhook-id`` carries identical bytes.

States: ``pending`` (due at ``next_attempt_at``) → ``inflight`` (claimed until
``lease_until``; a crashed worker's lease runs out and the row is claimed again, with
the same id and body) → ``delivered``, or ``dead`` once the worker's delivery deadline
(counted from ``created_at``) has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import uuid_utils

from frostgate.store import schema
from frostgate.store.entries import format_timestamp
from frostgate.store.keys import aware
from frostgate.store.tenancy import bind_delivery, bind_tenant
from frostgate.store.webhooks import Endpoint, egress_hosts, endpoint_from_row, list_endpoints

__all__ = [
    "ALERT_LEVELS",
    "DEFAULT_AGGREGATE_WINDOW",
    "TRIPWIRE_EVENT_TYPES",
    "Claimed",
    "any_due",
    "claim_due",
    "due_candidates",
    "enqueue_audit_alerts",
    "enqueue_decision_alerts",
    "enqueue_notice",
    "finish_attempt",
    "message_page",
    "new_message_id",
]

ALERT_LEVELS = ("none", "low", "medium", "high", "critical")
_RANK = {level: rank for rank, level in enumerate(ALERT_LEVELS)}
# audit kind -> message type; these audit events are tripwires and always alert.
TRIPWIRE_EVENT_TYPES = {
    "canary_key_used": "tripwire.canary_key",
    "honeypot_hit": "tripwire.honeypot",
}

_o = schema.outbox
_a = schema.delivery_attempts
_e = schema.webhook_endpoints


DEFAULT_AGGREGATE_WINDOW = timedelta(seconds=60)


def new_message_id() -> str:
    return "msg_" + uuid_utils.uuid7().hex


def _insert(
    conn: sa.Connection,
    *,
    tenant_id: str,
    endpoint_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    aggregate_key: str | None,
    now: datetime,
    due: datetime,
) -> str:
    message_id = new_message_id()
    conn.execute(
        _o.insert().values(
            message_id=message_id,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            aggregate_key=aggregate_key,
            count=1,
            payload=orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode(),
            body=None,
            status="pending",
            attempts=0,
            created_at=now,
            last_seen_at=now,
            next_attempt_at=due,
        )
    )
    return message_id


def _enqueue_aggregated(
    conn: sa.Connection,
    *,
    tenant_id: str,
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    aggregate_key: str,
    now: datetime,
    window: timedelta,
) -> None:
    folded = conn.execute(
        _o.update()
        .where(
            _o.c.tenant_id == tenant_id,
            _o.c.endpoint_id == endpoint.endpoint_id,
            _o.c.aggregate_key == aggregate_key,
            _o.c.status == "pending",
            _o.c.body.is_(None),
            _o.c.next_attempt_at > now,
        )
        .values(count=_o.c.count + 1, last_seen_at=now)
    )
    if folded.rowcount:
        return
    recent = conn.execute(
        sa.select(_o.c.message_id)
        .where(
            _o.c.tenant_id == tenant_id,
            _o.c.endpoint_id == endpoint.endpoint_id,
            _o.c.aggregate_key == aggregate_key,
            _o.c.created_at > now - window,
        )
        .limit(1)
    ).first()
    due = now + window if recent is not None else now
    _insert(
        conn,
        tenant_id=tenant_id,
        endpoint_id=endpoint.endpoint_id,
        event_type="decision.alert",
        payload=payload,
        aggregate_key=aggregate_key,
        now=now,
        due=due,
    )


def _decision_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_id": row["event_id"],
        "decision_seq": row["seq"],
        "threat_level": row["threat_level"],
        "score": row["score"],
        "rules": orjson.loads(row["rules"]),
        "actions": orjson.loads(row["actions"]),
        "src_ip": row["src_ip"],
        "source": row["source"],
        "event_type": row["event_type"],
        "policy_hash": row["policy_hash"],
        "decided_at": format_timestamp(row["created_at"]),
    }


def enqueue_decision_alerts(
    conn: sa.Connection,
    tenant_id: str,
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    window: timedelta = DEFAULT_AGGREGATE_WINDOW,
) -> None:
    """Alerts for just-inserted decision rows at or above each endpoint's threshold."""
    top = max((_RANK[r["threat_level"]] for r in rows), default=0)
    if top == 0:
        return
    endpoints = [
        e
        for e in list_endpoints(conn, tenant_id, enabled_only=True)
        if _RANK[e.min_threat_level] <= top
    ]
    if not endpoints:
        return
    for row in rows:
        rank = _RANK[row["threat_level"]]
        for endpoint in endpoints:
            if rank < _RANK[endpoint.min_threat_level] or rank == 0:
                continue
            if endpoint.event_types and row["event_type"] not in endpoint.event_types:
                continue
            rules = ",".join(sorted(orjson.loads(row["rules"])))
            _enqueue_aggregated(
                conn,
                tenant_id=tenant_id,
                endpoint=endpoint,
                payload=_decision_payload(row),
                aggregate_key=f"{rules}|{row['src_ip'] or row['source']}"[:300],
                now=now,
                window=window,
            )


def enqueue_audit_alerts(
    conn: sa.Connection,
    tenant_id: str,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Tripwire alerts for just-inserted audit rows (to every endpoint taking them)."""
    tripwires = [r for r in rows if r["kind"] in TRIPWIRE_EVENT_TYPES]
    if not tripwires:
        return
    endpoints = [e for e in list_endpoints(conn, tenant_id, enabled_only=True) if e.tripwires]
    for row in tripwires:
        payload = {
            "audit_event_id": row["event_id"],
            "audit_seq": row["seq"],
            "kind": row["kind"],
            "severity": row["severity"],
            "client_ip": row["client_ip"],
            "peer_ip": row["peer_ip"],
            "route": row["route"],
            "key_id": row["actor_key_id"],
            "count": row["count"],
            "detail": orjson.loads(row["detail"]),
            "observed_at": format_timestamp(row["created_at"]),
        }
        for endpoint in endpoints:
            _insert(
                conn,
                tenant_id=tenant_id,
                endpoint_id=endpoint.endpoint_id,
                event_type=TRIPWIRE_EVENT_TYPES[row["kind"]],
                payload=payload,
                aggregate_key=None,
                now=row["created_at"],
                due=row["created_at"],
            )


def enqueue_notice(
    conn: sa.Connection,
    tenant_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> None:
    """An operational security notice (e.g. the blast-radius cap was reached) to every
    endpoint that takes tripwires and notices."""
    for endpoint in list_endpoints(conn, tenant_id, enabled_only=True):
        if endpoint.tripwires:
            _insert(
                conn,
                tenant_id=tenant_id,
                endpoint_id=endpoint.endpoint_id,
                event_type=event_type,
                payload=payload,
                aggregate_key=None,
                now=now,
                due=now,
            )


# -- delivery side --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed message with what sending it needs."""

    message_id: str
    tenant_id: str
    endpoint: Endpoint | None  # None: deleted or disabled since the message was queued
    tenant_hosts: frozenset[str] | None
    body: bytes
    attempts: int
    created_at: datetime


def _body(row: Any) -> str:
    payload = orjson.loads(row.payload)
    envelope: dict[str, Any] = {
        "type": row.event_type,
        "timestamp": format_timestamp(row.created_at),
        "tenant_id": row.tenant_id,
        "data": payload,
    }
    if row.aggregate_key is not None:
        envelope["aggregate"] = {
            "count": row.count,
            "first_seen_at": format_timestamp(row.created_at),
            "last_seen_at": format_timestamp(row.last_seen_at),
        }
    return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS).decode()


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(_o.c.status == "pending", _o.c.next_attempt_at <= now),
        sa.and_(_o.c.status == "inflight", _o.c.lease_until < now),
    )


def any_due(conn: sa.Connection, now: datetime) -> bool:
    """Whether a claim would find anything (a read: the poller takes the write lock,
    which SQLite has only one of, only when there is work)."""
    bind_delivery(conn)
    return conn.execute(sa.select(_o.c.message_id).where(_due(now)).limit(1)).first() is not None


def due_candidates(
    conn: sa.Connection,
    now: datetime,
    *,
    limit: int,
    tenant_cap: int,
    held: Mapping[str, int],
) -> list[str]:
    """The ids of up to ``limit`` due messages to claim, oldest first, fair between
    tenants: no tenant gets more than ``tenant_cap`` in flight counting ``held`` (the
    caller's, per tenant), and a tenant at its cap is not even read. Oldest-first over
    one queue let a tenant with a backlog to a receiver that never answers hold every
    slot for its timeout, round after round. A read: it runs outside the write lock
    (SQLite has one), and :func:`claim_due` checks each row is still due."""
    bind_delivery(conn)
    capped = sorted(tenant for tenant, n in held.items() if n >= tenant_cap)
    query = sa.select(_o.c.message_id, _o.c.tenant_id).where(_due(now))
    if capped:
        query = query.where(_o.c.tenant_id.not_in(capped))
    rows = conn.execute(query.order_by(_o.c.next_attempt_at).limit(limit)).all()
    taken: dict[str, int] = dict(held)
    chosen: list[str] = []
    for row in rows:
        tenant_id: str = row.tenant_id
        # Past its cap within this round a tenant's further rows wait for the next one
        # (it is then left out of the read): a round may claim fewer than ``limit``.
        if taken.get(tenant_id, 0) < tenant_cap:
            taken[tenant_id] = taken.get(tenant_id, 0) + 1
            chosen.append(row.message_id)
    return chosen


def claim_due(
    conn: sa.Connection, now: datetime, message_ids: Sequence[str], *, lease: timedelta
) -> list[Claimed]:
    """Claim the messages of ``message_ids`` (from :func:`due_candidates`) that are
    still due, in that order, sealing bodies.

    On PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED`` so several
    processes claim disjoint sets; on SQLite the write transaction is exclusive.
    """
    bind_delivery(conn)
    if not message_ids:
        return []
    query = sa.select(_o).where(_o.c.message_id.in_(message_ids), _due(now))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    order = {message_id: position for position, message_id in enumerate(message_ids)}
    rows = sorted(conn.execute(query), key=lambda r: order[r.message_id])
    if not rows:
        return []
    endpoint_ids = {r.endpoint_id for r in rows}
    endpoints = {
        r.endpoint_id: endpoint_from_row(r)
        for r in conn.execute(sa.select(_e).where(_e.c.endpoint_id.in_(endpoint_ids)))
        if r.deleted_at is None and r.enabled
    }
    hosts = {t: egress_hosts(conn, t) for t in {r.tenant_id for r in rows}}
    claimed: list[Claimed] = []
    for row in rows:
        body = row.body if row.body is not None else _body(row)
        conn.execute(
            _o.update()
            .where(_o.c.message_id == row.message_id)
            .values(status="inflight", lease_until=now + lease, body=body)
        )
        claimed.append(
            Claimed(
                message_id=row.message_id,
                tenant_id=row.tenant_id,
                endpoint=endpoints.get(row.endpoint_id),
                tenant_hosts=hosts[row.tenant_id],
                body=body.encode(),
                attempts=row.attempts,
                created_at=aware(row.created_at),
            )
        )
    return claimed


def finish_attempt(
    conn: sa.Connection,
    message: Claimed,
    *,
    started_at: datetime,
    duration_ms: int,
    status_code: int | None,
    outcome: str,
    error: str | None,
    next_attempt_at: datetime | None,
    count_attempt: bool = True,
) -> str:
    """Record the attempt and move the message on; returns its new status.

    ``next_attempt_at`` None means delivered when ``outcome == 'delivered'``, else the
    message is dead. ``count_attempt`` False (rate cap deferral) reschedules without
    recording an attempt.
    """
    bind_delivery(conn)
    attempt = message.attempts + (1 if count_attempt else 0)
    if count_attempt:
        conn.execute(
            _a.insert().values(
                message_id=message.message_id,
                attempt=attempt,
                tenant_id=message.tenant_id,
                endpoint_id=message.endpoint.endpoint_id if message.endpoint else "",
                started_at=started_at,
                duration_ms=duration_ms,
                status_code=status_code,
                outcome=outcome,
                error=error,
            )
        )
    values: dict[str, Any]
    if outcome == "delivered":
        status, values = "delivered", {"delivered_at": started_at, "last_error": None}
    elif next_attempt_at is None:
        status, values = "dead", {"last_error": error}
    else:
        status, values = "pending", {"next_attempt_at": next_attempt_at, "last_error": error}
    conn.execute(
        _o.update()
        .where(_o.c.message_id == message.message_id, _o.c.status == "inflight")
        .values(status=status, attempts=attempt, lease_until=None, **values)
    )
    return status


def message_page(
    conn: sa.Connection, tenant_id: str, endpoint_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Recent messages of one endpoint, newest first, with their attempts."""
    bind_tenant(conn, tenant_id)
    messages = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(_o)
            .where(_o.c.tenant_id == tenant_id, _o.c.endpoint_id == endpoint_id)
            .order_by(_o.c.created_at.desc())
            .limit(limit)
        )
    ]
    ids = [m["message_id"] for m in messages]
    attempts: dict[str, list[dict[str, Any]]] = {}
    if ids:
        for a in conn.execute(sa.select(_a).where(_a.c.message_id.in_(ids)).order_by(_a.c.attempt)):
            attempts.setdefault(a.message_id, []).append(dict(a._mapping))
    for m in messages:
        m["attempt_log"] = attempts.get(m["message_id"], [])
    return messages
