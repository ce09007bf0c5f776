"""Tenant and key administration shared by the CLI and the API.

Every change is audited in the same transaction that makes it: a key is never minted,
rotated or revoked, nor a tenant created or suspended, without its audit event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from frostgate.security.audit import new_audit
from frostgate.security.client_ip import ClientAddress
from frostgate.security.keys import Peppers, new_key
from frostgate.store import Database, schema
from frostgate.store import keys as key_repo
from frostgate.store import tenants as tenant_repo
from frostgate.store.audit import append_audit
from frostgate.store.tenancy import bind_platform

__all__ = [
    "CLI_ACTOR",
    "Actor",
    "IssuedKey",
    "audit_change",
    "create_tenant",
    "instant",
    "key_view",
    "mint_key",
    "revoke_key",
    "rotate_key",
    "set_tenant_quota",
    "set_tenant_status",
    "tenant_count",
    "tenant_view",
]


#: The longest a key may live, whoever mints it (API or CLI).
MAX_KEY_TTL = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made an administrative change, for its audit event."""

    key_id: str | None
    address: ClientAddress | None
    via: str


CLI_ACTOR = Actor(key_id=None, address=None, via="cli")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    token: str
    tenant_id: str | None
    kind: str
    scopes: frozenset[str]
    expires_at: datetime | None


def audit_change(
    conn: sa.Connection,
    actor: Actor,
    kind: str,
    tenant_id: str | None,
    now: datetime,
    detail: Mapping[str, Any],
) -> None:
    """Record an administrative change inside the transaction that makes it."""
    append_audit(
        conn,
        [
            new_audit(
                kind,
                "info",
                tenant_id,
                now=now,
                key_id=actor.key_id,
                address=actor.address,
                detail={"via": actor.via, **detail},
            )
        ],
    )


def create_tenant(
    db: Database,
    tenant_id: str,
    name: str | None = None,
    *,
    actor: Actor = CLI_ACTOR,
    daily_event_quota: int | None = None,
) -> tenant_repo.Tenant:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if tenant_repo.get_tenant(conn, tenant_id) is not None:
            raise FileExistsError(f"tenant {tenant_id!r} already exists")
        tenant = tenant_repo.create_tenant(
            conn, tenant_id, name or tenant_id, now, daily_event_quota=daily_event_quota
        )
        audit_change(conn, actor, "tenant_created", None, now, {"tenant_id": tenant_id})
        return tenant


def set_tenant_status(db: Database, tenant_id: str, status: str, *, actor: Actor) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if not tenant_repo.set_status(conn, tenant_id, status):
            return False
        kind = "tenant_suspended" if status == "suspended" else "tenant_resumed"
        audit_change(conn, actor, kind, None, now, {"tenant_id": tenant_id})
        return True


def set_tenant_quota(db: Database, tenant_id: str, quota: int | None, *, actor: Actor) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if not tenant_repo.set_quota(conn, tenant_id, quota):
            return False
        audit_change(
            conn, actor, "tenant_quota_set", None, now, {"tenant_id": tenant_id, "quota": quota}
        )
        return True


def mint_key(
    db: Database,
    peppers: Peppers,
    *,
    tenant_id: str | None,
    scopes: frozenset[str],
    kind: str = "tenant",
    ttl: timedelta | None = None,
    label: str = "",
    actor: Actor = CLI_ACTOR,
) -> IssuedKey:
    if ttl is not None and not timedelta(0) < ttl <= MAX_KEY_TTL:
        raise ValueError(f"a key lives more than zero and at most {MAX_KEY_TTL.days} days")
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        issued = _insert_key(
            conn,
            peppers,
            tenant_id=tenant_id,
            scopes=scopes,
            kind=kind,
            expires_at=_within_actor(conn, actor, now + ttl if ttl is not None else None),
            label=label,
            created_by=actor.key_id,
            now=now,
        )
        audit_change(
            conn,
            actor,
            "key_minted",
            tenant_id,
            now,
            {"key_id": issued.key_id, "kind": kind, "scopes": sorted(scopes)},
        )
    return issued


def _within_actor(
    conn: sa.Connection, actor: Actor, expires_at: datetime | None
) -> datetime | None:
    """``expires_at``, brought forward to the acting key's own expiry: a key never issues
    (mints or rotates into) a key that outlives it. A 60-second key used to mint a child
    that never expired, or rotate itself into a fresh 60 seconds, again and again."""
    if actor.key_id is None:
        return expires_at
    record = key_repo.get_key(conn, actor.key_id)
    if record is None:  # deleted since it authenticated: it issues nothing
        raise LookupError("the acting key no longer exists")
    if record.expires_at is None:
        return expires_at
    limit = key_repo.aware(record.expires_at)
    return limit if expires_at is None else min(expires_at, limit)


def _insert_key(
    conn: sa.Connection,
    peppers: Peppers,
    *,
    tenant_id: str | None,
    scopes: frozenset[str],
    kind: str,
    expires_at: datetime | None,
    label: str,
    created_by: str | None,
    now: datetime,
    replaces: str | None = None,
) -> IssuedKey:
    if tenant_id is not None and tenant_repo.get_tenant(conn, tenant_id) is None:
        raise LookupError(f"no tenant {tenant_id!r}")
    minted = new_key(peppers)
    key_repo.insert_key(
        conn,
        key_id=minted.key_id,
        tenant_id=tenant_id,
        kind=kind,
        scopes=scopes,
        secret_hash=minted.secret_hash,
        pepper_id=minted.pepper_id,
        label=label,
        now=now,
        expires_at=expires_at,
        created_by=created_by,
        replaces=replaces,
    )
    return IssuedKey(minted.key_id, minted.token, tenant_id, kind, scopes, expires_at)


def rotate_key(
    db: Database, peppers: Peppers, key_id: str, *, grace: timedelta, actor: Actor
) -> tuple[IssuedKey, datetime] | None:
    """A new key with the same tenant, kind, scopes and label; the old one now expires
    after ``grace`` (or earlier, if it already did). None when no active key matches."""
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        old = key_repo.get_key(conn, key_id)
        if old is None or not key_repo.is_active(old, now):
            return None
        lifetime = (
            None
            if old.expires_at is None
            else key_repo.aware(old.expires_at) - key_repo.aware(old.created_at)
        )
        # Read before the old key's expiry moves: it may be the acting key itself.
        new_expiry = _within_actor(conn, actor, None if lifetime is None else now + lifetime)
        old_expiry = now + grace
        if old.expires_at is not None:
            old_expiry = min(old_expiry, key_repo.aware(old.expires_at))
        key_repo.set_expiry(conn, key_id, old_expiry)
        issued = _insert_key(
            conn,
            peppers,
            tenant_id=old.tenant_id,
            scopes=old.scopes,
            kind=old.kind,
            expires_at=new_expiry,
            label=old.label,
            created_by=actor.key_id,
            now=now,
            replaces=key_id,
        )
        audit_change(
            conn,
            actor,
            "key_rotated",
            old.tenant_id,
            now,
            {
                "key_id": key_id,
                "new_key_id": issued.key_id,
                "old_expires_at": old_expiry.isoformat(),
            },
        )
    return issued, old_expiry


def revoke_key(db: Database, key_id: str, *, actor: Actor = CLI_ACTOR) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        record = key_repo.get_key(conn, key_id)
        if record is None or not key_repo.revoke_key(conn, key_id, now):
            return False
        audit_change(conn, actor, "key_revoked", record.tenant_id, now, {"key_id": key_id})
        return True


def tenant_count(db: Database) -> int:
    with db.read.connect() as conn:
        bind_platform(conn)
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(schema.tenants)).scalar_one()
        )


def instant(value: datetime | None) -> str | None:
    """A stored instant as shown to operators: ISO 8601 with its UTC offset (SQLite
    hands back naive datetimes; without this they printed with no zone at all)."""
    return None if value is None else key_repo.aware(value).isoformat()


def key_view(record: key_repo.KeyRecord) -> dict[str, Any]:
    """A key as listed, by the API and the CLI alike: never its secret or hash."""
    return {
        "key_id": record.key_id,
        "tenant_id": record.tenant_id,
        "kind": record.kind,
        "scopes": sorted(record.scopes),
        "label": record.label,
        "created_at": instant(record.created_at),
        "expires_at": instant(record.expires_at),
        "revoked_at": instant(record.revoked_at),
        "last_used_at": instant(record.last_used_at),
        "active": key_repo.is_active(record, datetime.now(UTC)),
    }


def tenant_view(tenant: tenant_repo.Tenant) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "status": tenant.status,
        "daily_event_quota": tenant.daily_event_quota,
        "created_at": instant(tenant.created_at),
    }
