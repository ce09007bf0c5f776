"""API key repository: stores only keyed hashes, never secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.tenancy import bind_platform, bind_tenant

__all__ = [
    "KeyRecord",
    "aware",
    "get_key",
    "insert_key",
    "is_active",
    "list_keys",
    "revoke_key",
    "set_expiry",
    "touch_keys",
    "upgrade_hash",
]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant_id: str | None
    kind: str
    scopes: frozenset[str]
    secret_hash: str
    pepper_id: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    tenant_status: str | None


_k = schema.api_keys
_t = schema.tenants
_COLUMNS = (
    _k.c.key_id,
    _k.c.tenant_id,
    _k.c.kind,
    _k.c.scopes,
    _k.c.secret_hash,
    _k.c.pepper_id,
    _k.c.label,
    _k.c.created_at,
    _k.c.expires_at,
    _k.c.revoked_at,
    _k.c.last_used_at,
    _t.c.status,
)


def _record(row: sa.Row[Any]) -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        key_id=m["key_id"],
        tenant_id=m["tenant_id"],
        kind=m["kind"],
        scopes=frozenset(str(m["scopes"]).split()),
        secret_hash=m["secret_hash"],
        pepper_id=m["pepper_id"],
        label=m["label"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
        tenant_status=m["status"],
    )


def _select() -> sa.Select[Any]:
    return sa.select(*_COLUMNS).select_from(_k.outerjoin(_t, _k.c.tenant_id == _t.c.tenant_id))


def insert_key(
    conn: sa.Connection,
    *,
    key_id: str,
    tenant_id: str | None,
    kind: str,
    scopes: frozenset[str],
    secret_hash: str,
    pepper_id: str,
    label: str,
    now: datetime,
    expires_at: datetime | None,
    created_by: str | None,
    replaces: str | None = None,
) -> None:
    if tenant_id:
        bind_tenant(conn, tenant_id)
    else:
        bind_platform(conn)
    conn.execute(
        _k.insert().values(
            key_id=key_id,
            tenant_id=tenant_id,
            kind=kind,
            scopes=" ".join(sorted(scopes)),
            secret_hash=secret_hash,
            pepper_id=pepper_id,
            label=label,
            created_at=now,
            expires_at=expires_at,
            created_by=created_by,
            replaces=replaces,
        )
    )


# On PostgreSQL a key is read before any tenant is known, and row-level security hides
# every key from a transaction without context: fg_lookup_key (migration 0003, SECURITY
# DEFINER) returns exactly the one key asked for, joined to its tenant's status.
_LOOKUP = sa.text(
    "SELECT key_id, tenant_id, kind, scopes, secret_hash, pepper_id, label, created_at,"
    " expires_at, revoked_at, last_used_at, status FROM fg_lookup_key(:key_id)"
)


def get_key(conn: sa.Connection, key_id: str) -> KeyRecord | None:
    if conn.dialect.name == "postgresql":
        row = conn.execute(_LOOKUP, {"key_id": key_id}).first()
    else:
        row = conn.execute(_select().where(_k.c.key_id == key_id)).first()
    return None if row is None else _record(row)


def ancestry(conn: sa.Connection, tenant_id: str, key_id: str, *, issuers: bool = True) -> set[str]:
    """``key_id`` and every key of ``tenant_id`` it descends from: the key it replaced by
    rotation (``replaces``) and, with ``issuers``, the key that issued it (``created_by``:
    minting, or rotating, hands the new token to the issuer), and theirs, transitively.
    A recursive query with UNION, which ends on a repeated row, so even a corrupted cycle
    ends."""
    bind_tenant(conn, tenant_id)
    columns = (_k.c.key_id, _k.c.created_by, _k.c.replaces)
    chain = (
        sa.select(*columns)
        .where(_k.c.key_id == key_id, _k.c.tenant_id == tenant_id)
        .cte("ancestry", recursive=True)
    )
    parent = _k.c.key_id == chain.c.replaces
    if issuers:
        parent = sa.or_(parent, _k.c.key_id == chain.c.created_by)
    chain = chain.union(sa.select(*columns).where(parent, _k.c.tenant_id == tenant_id))
    return set(conn.execute(sa.select(chain.c.key_id)).scalars())


def list_keys(conn: sa.Connection, tenant_id: str | None = None) -> list[KeyRecord]:
    query = _select().order_by(_k.c.created_at, _k.c.key_id)
    if tenant_id is not None:
        if tenant_id:
            bind_tenant(conn, tenant_id)
        query = query.where(_k.c.tenant_id == tenant_id)
    else:
        bind_platform(conn)
    return [_record(r) for r in conn.execute(query)]


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored instant is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_active(record: KeyRecord, now: datetime) -> bool:
    if record.revoked_at is not None and aware(record.revoked_at) <= now:
        return False
    return record.expires_at is None or aware(record.expires_at) > now


def touch_keys(conn: sa.Connection, used: dict[str, datetime]) -> None:
    """Record last use for many keys at once."""
    bind_platform(conn)
    for key_id, moment in used.items():
        conn.execute(_k.update().where(_k.c.key_id == key_id).values(last_used_at=moment))


def upgrade_hash(
    conn: sa.Connection, key_id: str, old_pepper: str, new_pepper: str, new_hash: str
) -> None:
    """Re-hash a key under the current pepper (only if still under the old one)."""
    bind_platform(conn)
    conn.execute(
        _k.update()
        .where(_k.c.key_id == key_id, _k.c.pepper_id == old_pepper)
        .values(pepper_id=new_pepper, secret_hash=new_hash)
    )


def set_expiry(conn: sa.Connection, key_id: str, expires_at: datetime) -> None:
    bind_platform(conn)
    conn.execute(_k.update().where(_k.c.key_id == key_id).values(expires_at=expires_at))


def revoke_key(conn: sa.Connection, key_id: str, now: datetime) -> bool:
    bind_platform(conn)
    result = conn.execute(
        _k.update().where(_k.c.key_id == key_id, _k.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount == 1
