"""Mitigation rows, their per-tenant change sequence, bouncer cursors and envelopes.

Every state change of a mitigation takes the next number from the tenant's row in
``mitigation_heads`` inside the same transaction; the row lock makes the numbers follow
commit order, so "everything after N" is a complete answer for a bouncer at N.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
import uuid_utils
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from frostgate.store import schema
from frostgate.store.bulk import insert_rows
from frostgate.store.keys import aware
from frostgate.store.tenancy import bind_tenant

__all__ = [
    "MitigationRow",
    "changed_page",
    "changed_since",
    "count_recent_blocks",
    "due_expiries",
    "expire",
    "get_cursor",
    "get_envelope",
    "get_mitigation",
    "insert_mitigations",
    "list_mitigations",
    "live_statuses",
    "new_mitigation_id",
    "save_cursors",
    "set_envelope",
    "transition",
]

_m = schema.mitigations
_h = schema.mitigation_heads
_c = schema.enforcement_cursors
_e = schema.tenant_envelopes


@dataclass(frozen=True, slots=True)
class MitigationRow:
    mitigation_id: str
    tenant_id: str
    seq: int
    action: str
    scope: str
    value: str
    reason: str
    origin: str
    origin_event_id: str | None
    status: str
    status_reason: str | None
    ttl_seconds: int
    created_at: datetime
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    proposed_by: str | None
    approved_by: str | None
    lifted_by: str | None


def _row(r: Any) -> MitigationRow:
    m = r._mapping
    values: dict[str, Any] = {
        k: (aware(m[k]) if k.endswith("_at") and m[k] is not None else m[k])
        for k in MitigationRow.__slots__
    }
    return MitigationRow(**values)


def new_mitigation_id() -> str:
    return "mit_" + uuid_utils.uuid7().hex


# Statements the decision writer runs on every batch that proposes mitigations, built
# once: building a SQLAlchemy expression per call cost more than running it.
_TAKE_SEQ = (
    _h.update()
    .where(_h.c.tenant_id == sa.bindparam("tenant"))
    .values(seq=_h.c.seq + sa.bindparam("count"))
    .returning(_h.c.seq)
)
_FIRST_HEAD = _h.insert().values(tenant_id=sa.bindparam("tenant"), seq=sa.bindparam("count"))
_RECENT_BLOCKS = (
    sa.select(sa.func.count())
    .select_from(_m)
    .where(
        _m.c.tenant_id == sa.bindparam("tenant"),
        _m.c.action.in_(sa.bindparam("actions", expanding=True)),
        _m.c.activated_at >= sa.bindparam("since"),
    )
)
_LIVE_PAIRS = sa.select(_m.c.action, _m.c.value, _m.c.status).where(
    _m.c.tenant_id == sa.bindparam("tenant"),
    _m.c.value.in_(sa.bindparam("values", expanding=True)),
    _m.c.status.in_(sa.bindparam("statuses", expanding=True)),
)
_ENVELOPE = sa.select(_e.c.envelope).where(_e.c.tenant_id == sa.bindparam("tenant"))
_INSERT_COLUMNS = tuple(c.name for c in _m.columns)
_insert_values = operator.itemgetter(*_INSERT_COLUMNS)  # a row's values, in that order


def _take_seq(conn: sa.Connection, tenant_id: str, count: int) -> int:
    """Reserve ``count`` numbers; returns the first. Locks the tenant's head row."""
    updated = conn.execute(_TAKE_SEQ, {"tenant": tenant_id, "count": count}).scalar()
    if updated is None:
        conn.execute(_FIRST_HEAD, {"tenant": tenant_id, "count": count})
        return 1
    return int(updated) - count + 1


def insert_mitigations(conn: sa.Connection, tenant_id: str, rows: list[dict[str, Any]]) -> None:
    """Insert new rows (``seq`` is assigned here); ``rows`` lack only ``seq`` and
    ``tenant_id``, and hold every other column."""
    if not rows:
        return
    bind_tenant(conn, tenant_id)
    first = _take_seq(conn, tenant_id, len(rows))
    for offset, row in enumerate(rows):
        row["seq"] = first + offset
        row["tenant_id"] = tenant_id
    insert_rows(conn, _m, _INSERT_COLUMNS, list(map(_insert_values, rows)))


def live_statuses(
    conn: sa.Connection, tenant_id: str, values: Iterable[str], statuses: Iterable[str]
) -> dict[tuple[str, str], str]:
    """The status of each (action, value) pair of ``values`` that has a mitigation in
    one of ``statuses`` (``active`` wins over ``pending`` when a pair has both)."""
    wanted = sorted(values)
    if not wanted:
        return {}
    bind_tenant(conn, tenant_id)
    params = {"tenant": tenant_id, "values": wanted, "statuses": list(statuses)}
    found: dict[tuple[str, str], str] = {}
    for r in conn.execute(_LIVE_PAIRS, params):
        if found.get((r.action, r.value)) != "active":
            found[(r.action, r.value)] = r.status
    return found


def transition(
    conn: sa.Connection,
    tenant_id: str,
    mitigation_id: str,
    *,
    from_status: Iterable[str],
    values: dict[str, Any],
) -> MitigationRow | None:
    """Move one mitigation on (only from ``from_status``); None when it was not there."""
    bind_tenant(conn, tenant_id)
    current = conn.execute(
        sa.select(_m.c.status).where(
            _m.c.tenant_id == tenant_id, _m.c.mitigation_id == mitigation_id
        )
    ).scalar()
    if current is None or current not in set(from_status):
        return None
    seq = _take_seq(conn, tenant_id, 1)  # locks the tenant's head row until commit
    moved = conn.execute(
        _m.update()
        .where(
            _m.c.tenant_id == tenant_id,
            _m.c.mitigation_id == mitigation_id,
            _m.c.status == current,
        )
        .values(seq=seq, **values)
    )
    if moved.rowcount != 1:
        return None  # changed by a concurrent transaction between the read and the update
    return get_mitigation(conn, tenant_id, mitigation_id)


_EXPIRE = (
    _m.update()
    .where(
        _m.c.tenant_id == sa.bindparam("tenant"),
        _m.c.mitigation_id == sa.bindparam("mid"),
        _m.c.status == "active",
    )
    .values(status="expired", ended_at=sa.bindparam("now"), seq=sa.bindparam("new_seq"))
)


def expire(conn: sa.Connection, tenant_id: str, mitigation_ids: list[str], now: datetime) -> int:
    """Mark these active mitigations expired, each with its own change number, in one
    statement sent with many parameter sets (one round trip per thousand on PostgreSQL,
    not four per row as :func:`transition` would take). A row no longer active (lifted
    meanwhile) is left alone; its reserved number stays unused, which a bouncer's
    "everything after N" does not mind. Returns how many moved."""
    if not mitigation_ids:
        return 0
    bind_tenant(conn, tenant_id)
    first = _take_seq(conn, tenant_id, len(mitigation_ids))  # locks the head until commit
    params = [
        {"tenant": tenant_id, "mid": mid, "now": now, "new_seq": first + offset}
        for offset, mid in enumerate(mitigation_ids)
    ]
    return int(conn.execute(_EXPIRE, params).rowcount)


def get_mitigation(conn: sa.Connection, tenant_id: str, mitigation_id: str) -> MitigationRow | None:
    bind_tenant(conn, tenant_id)
    r = conn.execute(
        sa.select(_m).where(_m.c.tenant_id == tenant_id, _m.c.mitigation_id == mitigation_id)
    ).first()
    return None if r is None else _row(r)


def list_mitigations(
    conn: sa.Connection, tenant_id: str, *, status: str | None, limit: int
) -> list[MitigationRow]:
    bind_tenant(conn, tenant_id)
    query = sa.select(_m).where(_m.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(_m.c.status == status)
    return [_row(r) for r in conn.execute(query.order_by(_m.c.seq.desc()).limit(limit))]


def changed_since(conn: sa.Connection, tenant_id: str, seq: int) -> list[MitigationRow]:
    """Every row whose latest change is numbered above ``seq``, in sequence order."""
    bind_tenant(conn, tenant_id)
    query = sa.select(_m).where(_m.c.tenant_id == tenant_id, _m.c.seq > seq).order_by(_m.c.seq)
    return [_row(r) for r in conn.execute(query)]


# The columns enforcement points need, in this order (see ``changed_page``).
PAGE_COLUMNS = (
    _m.c.mitigation_id,
    _m.c.seq,
    _m.c.action,
    _m.c.scope,
    _m.c.value,
    _m.c.reason,
    _m.c.origin,
    _m.c.status,
    _m.c.created_at,
    _m.c.activated_at,
    _m.c.expires_at,
)


def changed_page(
    conn: sa.Connection, tenant_id: str, seq: int, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows changed after ``seq`` as plain tuples of :data:`PAGE_COLUMNS`
    (no row objects: the index loads 100,000 of these at start)."""
    bind_tenant(conn, tenant_id)
    query = (
        sa.select(*PAGE_COLUMNS)
        .where(_m.c.tenant_id == tenant_id, _m.c.seq > seq)
        .order_by(_m.c.seq)
        .limit(limit)
    )
    return [tuple(r) for r in conn.execute(query)]


def count_recent_blocks(
    conn: sa.Connection, tenant_id: str, actions: Iterable[str], since: datetime
) -> int:
    """Blocking mitigations that took effect since ``since`` (the blast-radius count)."""
    bind_tenant(conn, tenant_id)
    params = {"tenant": tenant_id, "actions": list(actions), "since": since}
    return int(conn.execute(_RECENT_BLOCKS, params).scalar_one())


def due_expiries(conn: sa.Connection, tenant_id: str, now: datetime) -> list[str]:
    bind_tenant(conn, tenant_id)
    return list(
        conn.execute(
            sa.select(_m.c.mitigation_id).where(
                _m.c.tenant_id == tenant_id, _m.c.status == "active", _m.c.expires_at <= now
            )
        ).scalars()
    )


def get_envelope(conn: sa.Connection, tenant_id: str) -> dict[str, Any] | None:
    bind_tenant(conn, tenant_id)
    text = conn.execute(_ENVELOPE, {"tenant": tenant_id}).scalar()
    return None if text is None else dict(orjson.loads(text))


def set_envelope(
    conn: sa.Connection, tenant_id: str, envelope: Mapping[str, Any], now: datetime
) -> None:
    bind_tenant(conn, tenant_id)
    insert = pg_insert(_e) if conn.dialect.name == "postgresql" else sqlite_insert(_e)
    text = orjson.dumps(dict(envelope), option=orjson.OPT_SORT_KEYS).decode()
    conn.execute(
        insert.values(tenant_id=tenant_id, envelope=text, updated_at=now).on_conflict_do_update(
            index_elements=[_e.c.tenant_id], set_={"envelope": text, "updated_at": now}
        )
    )


def get_cursor(conn: sa.Connection, tenant_id: str, key_id: str) -> int | None:
    bind_tenant(conn, tenant_id)
    value = conn.execute(
        sa.select(_c.c.seq).where(_c.c.tenant_id == tenant_id, _c.c.key_id == key_id)
    ).scalar()
    return None if value is None else int(value)


def save_cursors(
    conn: sa.Connection, tenant_id: str, cursors: Mapping[str, int], now: datetime
) -> None:
    bind_tenant(conn, tenant_id)
    insert = pg_insert(_c) if conn.dialect.name == "postgresql" else sqlite_insert(_c)
    for key_id, seq in cursors.items():
        conn.execute(
            insert.values(
                key_id=key_id, tenant_id=tenant_id, seq=seq, updated_at=now
            ).on_conflict_do_update(
                index_elements=[_c.c.key_id], set_={"seq": seq, "updated_at": now}
            )
        )
