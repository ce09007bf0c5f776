"""Tenant and key administration shared by the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from frostgate.security.keys import Peppers, new_key
from frostgate.store import Database, schema
from frostgate.store import keys as key_repo
from frostgate.store import tenants as tenant_repo

__all__ = ["IssuedKey", "create_tenant", "mint_key", "revoke_key", "tenant_count"]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    token: str
    tenant_id: str | None
    scopes: frozenset[str]
    expires_at: datetime | None


def create_tenant(db: Database, tenant_id: str, name: str | None = None) -> tenant_repo.Tenant:
    with db.write.begin() as conn:
        if tenant_repo.get_tenant(conn, tenant_id) is not None:
            raise ValueError(f"tenant {tenant_id!r} already exists")
        return tenant_repo.create_tenant(conn, tenant_id, name or tenant_id, datetime.now(UTC))


def mint_key(
    db: Database,
    peppers: Peppers,
    *,
    tenant_id: str | None,
    scopes: frozenset[str],
    kind: str = "tenant",
    ttl: timedelta | None = None,
    label: str = "",
    created_by: str | None = None,
) -> IssuedKey:
    now = datetime.now(UTC)
    minted = new_key(peppers)
    expires_at = now + ttl if ttl is not None else None
    with db.write.begin() as conn:
        if tenant_id is not None and tenant_repo.get_tenant(conn, tenant_id) is None:
            raise ValueError(f"no tenant {tenant_id!r}")
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
        )
    return IssuedKey(minted.key_id, minted.token, tenant_id, scopes, expires_at)


def revoke_key(db: Database, key_id: str) -> bool:
    with db.write.begin() as conn:
        return key_repo.revoke_key(conn, key_id, datetime.now(UTC))


def tenant_count(db: Database) -> int:
    with db.read.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(schema.tenants)).scalar_one()
        )
