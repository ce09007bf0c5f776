"""The writer's bulk insert: rows reach the driver as tuples and read back as SQLAlchemy
would have written them, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from frostgate.security import admin
from frostgate.store import Database, schema
from frostgate.store import mitigations as repo
from frostgate.store.keys import aware


def _row(value: str, *, active: bool, now: datetime) -> dict[str, object]:
    return {
        "mitigation_id": repo.new_mitigation_id(),
        "action": "block_ip",
        "scope": "ip",
        "value": value,
        "reason": "test",
        "origin": "manual",
        "origin_event_id": None,
        "status": "active" if active else "pending",
        "status_reason": None,
        "ttl_seconds": 600,
        "created_at": now,
        "activated_at": now if active else None,
        "expires_at": now + timedelta(seconds=600) if active else None,
        "ended_at": None,
        "proposed_by": None,
        "approved_by": None,
        "lifted_by": None,
    }


def test_a_timestamp_null_in_the_first_row_is_still_converted_in_later_rows(
    db: Database,
) -> None:
    """Which columns hold timestamps comes from the schema: a pending mitigation (no
    activation time) ahead of an active one must not leave the active one's times in a
    form that reads back wrong."""
    admin.create_tenant(db, "acme")
    # an aware time outside UTC: stored unconverted, it would read back five hours off
    now = datetime(2026, 12, 7, 8, 4, 5, 123456, tzinfo=timezone(timedelta(hours=5)))
    rows = [_row("198.51.100.1", active=False, now=now), _row("198.51.100.2", active=True, now=now)]
    with db.write.begin() as conn:
        repo.insert_mitigations(conn, "acme", rows)
    m = schema.mitigations
    with db.read.connect() as conn:
        stored = {
            r.value: r
            for r in conn.execute(
                sa.select(m.c.value, m.c.activated_at, m.c.expires_at, m.c.seq).where(
                    m.c.tenant_id == "acme"
                )
            )
        }
    assert stored["198.51.100.1"].activated_at is None
    assert aware(stored["198.51.100.2"].activated_at) == now
    assert aware(stored["198.51.100.2"].activated_at).astimezone(UTC).hour == 3
    assert aware(stored["198.51.100.2"].expires_at) == now + timedelta(seconds=600)
    assert sorted(r.seq for r in stored.values()) == [1, 2]
    # and the range query the blast-radius cap runs (with a UTC bound, as the service
    # passes) compares them as times
    since = (now - timedelta(seconds=1)).astimezone(UTC)
    with db.read.connect() as conn:
        count = repo.count_recent_blocks(conn, "acme", ["block_ip"], since)
    assert count == 1
