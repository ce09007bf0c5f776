"""Alert endpoints, inbound hook sources and tenant egress allowlists (rows only).

Secrets arrive here already sealed (:mod:`frostgate.security.secret_box`); this module
never sees a plaintext secret. Every function takes the tenant explicitly and binds it,
except :func:`find_hook_source`, which runs in the platform context because an inbound
request names only its source id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
import sqlalchemy as sa

from frostgate.store import schema
from frostgate.store.keys import aware
from frostgate.store.tenancy import bind_platform, bind_tenant

__all__ = [
    "Endpoint",
    "HookSecret",
    "HookSource",
    "add_hook_secret",
    "create_hook_source",
    "delete_endpoint",
    "egress_hosts",
    "endpoint_from_row",
    "find_hook_source",
    "get_endpoint",
    "insert_endpoint",
    "list_endpoints",
    "list_hook_sources",
    "revoke_hook_secret",
    "secret_binding",
    "set_egress_hosts",
    "set_endpoint_enabled",
]

_e = schema.webhook_endpoints
_s = schema.hook_sources
_x = schema.hook_source_secrets
_h = schema.tenant_egress_hosts


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    tenant_id: str
    url: str
    secret_pepper_id: str
    secret_sealed: str
    min_threat_level: str
    event_types: tuple[str, ...]
    tripwires: bool
    enabled: bool
    max_per_minute: int
    description: str
    created_at: datetime


def secret_binding(tenant_id: str, endpoint_id: str) -> str:
    """What an endpoint's sealed secret is bound to: moved to another row or tenant, it
    does not open."""
    return f"{tenant_id}/{endpoint_id}"


def endpoint_from_row(row: sa.Row[tuple[object, ...]]) -> Endpoint:
    m = row._mapping
    filters = orjson.loads(m["filters"])
    return Endpoint(
        endpoint_id=m["endpoint_id"],
        tenant_id=m["tenant_id"],
        url=m["url"],
        secret_pepper_id=m["secret_pepper_id"],
        secret_sealed=m["secret_sealed"],
        min_threat_level=m["min_threat_level"],
        event_types=tuple(filters["event_types"]),
        tripwires=bool(filters["tripwires"]),
        enabled=bool(m["enabled"]),
        max_per_minute=int(m["max_per_minute"]),
        description=m["description"],
        created_at=aware(m["created_at"]),
    )


def insert_endpoint(conn: sa.Connection, endpoint: Endpoint, *, created_by: str | None) -> None:
    bind_tenant(conn, endpoint.tenant_id)
    conn.execute(
        _e.insert().values(
            endpoint_id=endpoint.endpoint_id,
            tenant_id=endpoint.tenant_id,
            url=endpoint.url,
            secret_pepper_id=endpoint.secret_pepper_id,
            secret_sealed=endpoint.secret_sealed,
            min_threat_level=endpoint.min_threat_level,
            filters=orjson.dumps(
                {"event_types": list(endpoint.event_types), "tripwires": endpoint.tripwires}
            ).decode(),
            enabled=endpoint.enabled,
            max_per_minute=endpoint.max_per_minute,
            description=endpoint.description,
            created_at=endpoint.created_at,
            created_by=created_by,
        )
    )


# Built once: the decision writer lists a tenant's enabled endpoints on every batch
# that raises an alert or a notice.
_ENDPOINTS = sa.select(_e).where(
    _e.c.tenant_id == sa.bindparam("tenant"), _e.c.deleted_at.is_(None)
)
_ALL_ENDPOINTS = _ENDPOINTS.order_by(_e.c.created_at)
_ENABLED_ENDPOINTS = _ENDPOINTS.where(_e.c.enabled.is_(True)).order_by(_e.c.created_at)


def count_endpoints(conn: sa.Connection, tenant_id: str) -> int:
    """The tenant's live (not deleted) endpoints."""
    bind_tenant(conn, tenant_id)
    query = sa.select(sa.func.count()).where(_e.c.tenant_id == tenant_id, _e.c.deleted_at.is_(None))
    return int(conn.execute(query).scalar_one())


def list_endpoints(
    conn: sa.Connection, tenant_id: str, *, enabled_only: bool = False
) -> list[Endpoint]:
    bind_tenant(conn, tenant_id)
    query = _ENABLED_ENDPOINTS if enabled_only else _ALL_ENDPOINTS
    return [endpoint_from_row(r) for r in conn.execute(query, {"tenant": tenant_id})]


def get_endpoint(conn: sa.Connection, tenant_id: str, endpoint_id: str) -> Endpoint | None:
    bind_tenant(conn, tenant_id)
    row = conn.execute(
        sa.select(_e).where(
            _e.c.tenant_id == tenant_id,
            _e.c.endpoint_id == endpoint_id,
            _e.c.deleted_at.is_(None),
        )
    ).first()
    return None if row is None else endpoint_from_row(row)


def delete_endpoint(conn: sa.Connection, tenant_id: str, endpoint_id: str, now: datetime) -> bool:
    """Soft delete: the endpoint stops receiving; its delivery history stays."""
    bind_tenant(conn, tenant_id)
    result = conn.execute(
        _e.update()
        .where(
            _e.c.tenant_id == tenant_id,
            _e.c.endpoint_id == endpoint_id,
            _e.c.deleted_at.is_(None),
        )
        .values(deleted_at=now, enabled=False)
    )
    return result.rowcount == 1


def set_endpoint_enabled(
    conn: sa.Connection, tenant_id: str, endpoint_id: str, enabled: bool
) -> bool:
    bind_tenant(conn, tenant_id)
    result = conn.execute(
        _e.update()
        .where(
            _e.c.tenant_id == tenant_id,
            _e.c.endpoint_id == endpoint_id,
            _e.c.deleted_at.is_(None),
        )
        .values(enabled=enabled)
    )
    return result.rowcount == 1


def egress_hosts(conn: sa.Connection, tenant_id: str) -> frozenset[str] | None:
    """The tenant's egress host allowlist; None when it has none (any public host)."""
    bind_tenant(conn, tenant_id)  # unbound, RLS would hide the rows: "no allowlist"
    hosts: list[str] = list(
        conn.execute(sa.select(_h.c.host).where(_h.c.tenant_id == tenant_id)).scalars()
    )
    return frozenset(hosts) or None


def set_egress_hosts(conn: sa.Connection, tenant_id: str, hosts: Iterable[str]) -> None:
    bind_tenant(conn, tenant_id)
    conn.execute(_h.delete().where(_h.c.tenant_id == tenant_id))
    rows = [{"tenant_id": tenant_id, "host": host} for host in sorted(set(hosts))]
    if rows:
        conn.execute(_h.insert(), rows)


# -- inbound hook sources -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HookSecret:
    secret_id: str
    pepper_id: str
    sealed: str
    created_at: datetime
    created_by: str | None = None  # the key that added the secret (and was shown it)


@dataclass(frozen=True, slots=True)
class HookSource:
    source_id: str
    tenant_id: str
    name: str
    created_at: datetime
    secrets: tuple[HookSecret, ...]
    created_by: str | None = None  # the key that set the source up (and saw its secret)


def create_hook_source(
    conn: sa.Connection,
    *,
    source_id: str,
    tenant_id: str,
    name: str,
    now: datetime,
    created_by: str | None,
) -> None:
    bind_tenant(conn, tenant_id)
    conn.execute(
        _s.insert().values(
            source_id=source_id,
            tenant_id=tenant_id,
            name=name,
            created_at=now,
            created_by=created_by,
        )
    )


def add_hook_secret(
    conn: sa.Connection,
    *,
    source_id: str,
    tenant_id: str,
    secret_id: str,
    pepper_id: str,
    sealed: str,
    now: datetime,
    created_by: str | None,
) -> None:
    bind_tenant(conn, tenant_id)
    conn.execute(
        _x.insert().values(
            secret_id=secret_id,
            source_id=source_id,
            tenant_id=tenant_id,
            secret_pepper_id=pepper_id,
            secret_sealed=sealed,
            created_at=now,
            created_by=created_by,
        )
    )


def revoke_hook_secret(
    conn: sa.Connection, tenant_id: str, source_id: str, secret_id: str, now: datetime
) -> bool:
    bind_tenant(conn, tenant_id)
    result = conn.execute(
        _x.update()
        .where(
            _x.c.tenant_id == tenant_id,
            _x.c.source_id == source_id,
            _x.c.secret_id == secret_id,
            _x.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def _with_secrets(conn: sa.Connection, rows: list[sa.Row[tuple[object, ...]]]) -> list[HookSource]:
    ids = [r.source_id for r in rows]
    secrets: dict[str, list[HookSecret]] = {}
    if ids:
        for s in conn.execute(
            sa.select(_x)
            .where(_x.c.source_id.in_(ids), _x.c.revoked_at.is_(None))
            .order_by(_x.c.created_at)
        ):
            secrets.setdefault(s.source_id, []).append(
                HookSecret(
                    s.secret_id,
                    s.secret_pepper_id,
                    s.secret_sealed,
                    aware(s.created_at),
                    s.created_by,
                )
            )
    return [
        HookSource(
            r.source_id,
            r.tenant_id,
            r.name,
            aware(r.created_at),
            tuple(secrets.get(r.source_id, ())),
            r.created_by,
        )
        for r in rows
    ]


def list_hook_sources(conn: sa.Connection, tenant_id: str) -> list[HookSource]:
    bind_tenant(conn, tenant_id)
    rows = list(
        conn.execute(sa.select(_s).where(_s.c.tenant_id == tenant_id).order_by(_s.c.created_at))
    )
    return _with_secrets(conn, rows)


def find_hook_source(conn: sa.Connection, source_id: str) -> HookSource | None:
    """The source an inbound request names, with its active secrets (platform context).
    A source of a tenant that is not active is not found."""
    bind_platform(conn)
    t = schema.tenants
    rows = list(
        conn.execute(
            sa.select(_s)
            .join(t, t.c.tenant_id == _s.c.tenant_id)
            .where(_s.c.source_id == source_id, t.c.status == "active")
        )
    )
    found = _with_secrets(conn, rows)
    return found[0] if found else None
