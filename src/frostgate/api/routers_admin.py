"""Key, tenant and audit-log administration: thin routers over ``security.admin``.

Rules enforced here (the gate has already checked key kind and scope):
- a tenant key mints only keys of its own tenant, with a subset of its own scopes
  (no escalation); a platform key mints platform keys with a subset of its scopes, or
  a tenant's keys with tenant scopes (that is how a new tenant gets its first key);
- a key that belongs to another tenant is answered 404, as if it did not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from frostgate.api._common import (
    json_body,
    json_response,
    keyset_page,
    parse_cursor,
    parse_time,
    read_object,
)
from frostgate.api.context import services
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import PLATFORM_SCOPES, TENANT_SCOPES, Principal, admin
from frostgate.store import keys as key_repo
from frostgate.store import tenants as tenant_repo
from frostgate.store.audit import PLATFORM, audit_page

__all__ = ["router"]

router = APIRouter()

DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_ROTATION_GRACE = timedelta(days=7)
_STRING = {"type": "string"}
_QUOTA = {"type": ["integer", "null"], "minimum": 0}


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _actor(request: Request) -> admin.Actor:
    principal = _principal(request)
    return admin.Actor(key_id=principal.key_id, address=request.state.client, via="api")


def _issued_view(issued: admin.IssuedKey) -> dict[str, Any]:
    return {
        "key_id": issued.key_id,
        "key": issued.token,
        "tenant_id": issued.tenant_id,
        "kind": issued.kind,
        "scopes": sorted(issued.scopes),
        "expires_at": admin.instant(issued.expires_at),
    }


def _invalid(why: str) -> FrostGateError:
    """A 422 that says which field is wrong and how (a fixed sentence of ours): a bare
    VALIDATION_FAILED left the client guessing."""
    return FrostGateError(ErrorCode.VALIDATION_FAILED, why, reason=why)


def _scopes(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise _invalid("scopes must be a non-empty list of scope names")
    return frozenset(value)


def _seconds(
    field: str, value: Any, default: timedelta | None, maximum: timedelta
) -> timedelta | None:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid(f"{field} must be a positive integer")
    if value > maximum.total_seconds():
        raise _invalid(f"{field} must be at most {int(maximum.total_seconds())}")
    return timedelta(seconds=value)


def _within_grant(principal: Principal, kind: str, scopes: frozenset[str]) -> bool:
    """Whether ``principal`` may issue a ``kind`` key holding ``scopes`` (by minting or
    by rotating a key that holds them): never more than it holds itself, except that a
    platform key issues tenant keys, which it administers."""
    if principal.kind == "platform" and kind == "tenant":
        return True
    return scopes <= principal.scopes


async def _visible_key(request: Request, key_id: str) -> key_repo.KeyRecord:
    """The key, if the caller may manage it; otherwise 404 (foreign looks absent)."""
    principal = _principal(request)
    svc = services(request)

    def load() -> key_repo.KeyRecord | None:
        with svc.db.read.connect() as conn:
            return key_repo.get_key(conn, key_id)

    record = await anyio.to_thread.run_sync(load)
    if record is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    if principal.kind == "tenant" and record.tenant_id != principal.tenant_id:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    if record.kind == "canary":
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return record


@router.post(
    "/v1/keys",
    status_code=201,
    openapi_extra=json_body(
        {
            "scopes": {"type": "array", "items": _STRING, "minItems": 1},
            "label": {"type": "string", "maxLength": 200},
            "ttl_seconds": {"type": "integer", "minimum": 1},
            "tenant_id": _STRING,
            "kind": {"type": "string", "enum": ["tenant", "platform"]},
        },
        required=("scopes",),
    ),
)
async def mint_key(request: Request) -> Response:
    principal = _principal(request)
    body = await read_object(request)
    scopes = _scopes(body.get("scopes"))
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise _invalid("label must be a string of at most 200 characters")
    ttl = _seconds("ttl_seconds", body.get("ttl_seconds"), None, admin.MAX_KEY_TTL)
    tenant_id = body.get("tenant_id")
    default_kind = "tenant" if principal.kind == "tenant" or tenant_id is not None else "platform"
    kind = body.get("kind", default_kind)
    if principal.kind == "tenant":
        if tenant_id is not None and tenant_id != principal.tenant_id:
            raise FrostGateError(ErrorCode.TENANT_MISMATCH)
        if kind != "tenant":
            raise FrostGateError(ErrorCode.SCOPE_ESCALATION, "tenant key minting another kind")
        tenant_id = principal.tenant_id
        if not _within_grant(principal, kind, scopes):
            raise FrostGateError(ErrorCode.SCOPE_ESCALATION)
    elif kind == "platform":
        if tenant_id is not None or not _within_grant(principal, kind, scopes):
            raise FrostGateError(ErrorCode.SCOPE_ESCALATION)
    elif kind == "tenant":
        if not isinstance(tenant_id, str) or not scopes <= TENANT_SCOPES:
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, "a tenant and tenant scopes")
    else:
        raise _invalid("kind must be tenant or platform")
    allowed = TENANT_SCOPES if kind == "tenant" else PLATFORM_SCOPES
    if not scopes <= allowed:
        raise _invalid("scopes names a scope this kind of key cannot hold")
    svc = services(request)

    def mint() -> admin.IssuedKey:
        try:
            return admin.mint_key(
                svc.db,
                svc.authenticator.peppers,
                tenant_id=tenant_id,
                scopes=scopes,
                kind=kind,
                ttl=ttl,
                label=label,
                actor=_actor(request),
            )
        except LookupError as exc:
            raise FrostGateError(ErrorCode.NOT_FOUND, str(exc)) from exc

    issued = await anyio.to_thread.run_sync(mint)
    return json_response(_issued_view(issued), status_code=201)


@router.get("/v1/keys")
async def list_keys(request: Request, tenant_id: str | None = None) -> Response:
    principal = _principal(request)
    svc = services(request)
    scope_tenant = principal.tenant_id if principal.kind == "tenant" else tenant_id

    def load() -> list[key_repo.KeyRecord]:
        with svc.db.read.connect() as conn:
            return key_repo.list_keys(conn, scope_tenant)

    records = await anyio.to_thread.run_sync(load)
    visible = [r for r in records if r.kind != "canary"]
    return json_response({"items": [admin.key_view(r) for r in visible]})


@router.post(
    "/v1/keys/{key_id}/rotate",
    status_code=201,
    openapi_extra=json_body(
        {"grace_seconds": {"type": "integer", "minimum": 1}}, optional_body=True
    ),
)
async def rotate_key(request: Request, key_id: str) -> Response:
    target = await _visible_key(request, key_id)
    # The successor holds the target's scopes and its token goes to the caller: rotating
    # is issuing, so a key may rotate only what it could have minted.
    if not _within_grant(_principal(request), target.kind, target.scopes):
        raise FrostGateError(ErrorCode.SCOPE_ESCALATION, "rotating a key with more scopes")
    body = await read_object(request, optional=True)
    grace = _seconds(
        "grace_seconds", body.get("grace_seconds"), DEFAULT_ROTATION_GRACE, MAX_ROTATION_GRACE
    )
    assert grace is not None
    svc = services(request)

    def rotate() -> tuple[admin.IssuedKey, datetime] | None:
        return admin.rotate_key(
            svc.db, svc.authenticator.peppers, key_id, grace=grace, actor=_actor(request)
        )

    result = await anyio.to_thread.run_sync(rotate)
    if result is None:
        raise FrostGateError(ErrorCode.KEY_NOT_ACTIVE)
    issued, old_expiry = result
    svc.authenticator.invalidate(key_id)
    view = _issued_view(issued)
    view["previous"] = {"key_id": key_id, "expires_at": old_expiry.isoformat()}
    return json_response(view, status_code=201)


@router.delete("/v1/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> Response:
    target = await _visible_key(request, key_id)
    principal = _principal(request)
    # A key revokes itself, or a key it could have minted: a weak key holding only
    # keys:admin must not lock out the administrators above it.
    if key_id != principal.key_id and not _within_grant(principal, target.kind, target.scopes):
        raise FrostGateError(ErrorCode.SCOPE_ESCALATION, "revoking a key with more scopes")
    svc = services(request)
    revoked = await anyio.to_thread.run_sync(
        lambda: admin.revoke_key(svc.db, key_id, actor=_actor(request))
    )
    if not revoked:
        raise FrostGateError(ErrorCode.KEY_NOT_ACTIVE)
    svc.authenticator.invalidate(key_id)
    return json_response({"key_id": key_id, "revoked": True})


def _quota(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**12:
        raise _invalid("daily_event_quota must be an integer from 0 to 10**12, or null")
    return value


@router.post(
    "/v1/tenants",
    status_code=201,
    openapi_extra=json_body(
        {
            "tenant_id": _STRING,
            "name": {"type": "string", "maxLength": 200},
            "daily_event_quota": _QUOTA,
        },
        required=("tenant_id",),
    ),
)
async def create_tenant(request: Request) -> Response:
    body = await read_object(request)
    tenant_id = body.get("tenant_id")
    name = body.get("name")
    if not isinstance(tenant_id, str) or not tenant_repo.TENANT_ID_RE.fullmatch(tenant_id):
        raise _invalid(
            "tenant_id must be 2 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
        )
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise _invalid("name must be a string of at most 200 characters")
    quota = _quota(body.get("daily_event_quota"))
    svc = services(request)

    def create() -> tenant_repo.Tenant:
        try:
            return admin.create_tenant(
                svc.db, tenant_id, name, actor=_actor(request), daily_event_quota=quota
            )
        except FileExistsError as exc:
            raise FrostGateError(ErrorCode.TENANT_EXISTS) from exc

    tenant = await anyio.to_thread.run_sync(create)
    return json_response(admin.tenant_view(tenant), status_code=201)


@router.get("/v1/tenants")
async def list_tenants(request: Request) -> Response:
    svc = services(request)

    def load() -> list[tenant_repo.Tenant]:
        with svc.db.read.connect() as conn:
            return tenant_repo.list_tenants(conn)

    tenants = await anyio.to_thread.run_sync(load)
    return json_response({"items": [admin.tenant_view(t) for t in tenants]})


async def _set_status(request: Request, tenant_id: str, status: str) -> Response:
    svc = services(request)
    changed = await anyio.to_thread.run_sync(
        lambda: admin.set_tenant_status(svc.db, tenant_id, status, actor=_actor(request))
    )
    if not changed:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return json_response({"tenant_id": tenant_id, "status": status})


@router.post("/v1/tenants/{tenant_id}/suspend")
async def suspend_tenant(request: Request, tenant_id: str) -> Response:
    return await _set_status(request, tenant_id, "suspended")


@router.post("/v1/tenants/{tenant_id}/resume")
async def resume_tenant(request: Request, tenant_id: str) -> Response:
    return await _set_status(request, tenant_id, "active")


@router.put("/v1/tenants/{tenant_id}/quota", openapi_extra=json_body({"daily_event_quota": _QUOTA}))
async def set_quota(request: Request, tenant_id: str) -> Response:
    body = await read_object(request)
    quota = _quota(body.get("daily_event_quota"))
    svc = services(request)
    changed = await anyio.to_thread.run_sync(
        lambda: admin.set_tenant_quota(svc.db, tenant_id, quota, actor=_actor(request))
    )
    if not changed:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return json_response({"tenant_id": tenant_id, "daily_event_quota": quota})


_AUDIT_KINDS_MAX = 20


@router.get("/v1/audit")
async def list_audit(
    request: Request,
    kind: str | None = None,
    severity: str | None = None,
    since: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Response:
    """The caller's audit stream: its tenant's, or the platform's for a platform key."""
    principal = _principal(request)
    stream_tenant = principal.tenant_id or PLATFORM
    kinds = tuple(k for k in (kind or "").split(",") if k)
    if len(kinds) > _AUDIT_KINDS_MAX or any(len(k) > 64 for k in kinds):
        raise FrostGateError(ErrorCode.FILTER_INVALID)
    if severity is not None and severity not in ("info", "warning", "critical"):
        raise FrostGateError(ErrorCode.FILTER_INVALID)
    size = 100 if limit is None else limit
    if not 1 <= size <= 500:
        raise FrostGateError(ErrorCode.FILTER_INVALID)
    svc = services(request)
    start = parse_time(since)
    before = parse_cursor(cursor)

    def load() -> list[dict[str, Any]]:
        with svc.db.read.connect() as conn:
            return audit_page(
                conn,
                stream_tenant,
                kinds=kinds,
                severity=severity,
                since=start,
                before_seq=before,
                limit=size + 1,
            )

    rows, next_cursor = keyset_page(await anyio.to_thread.run_sync(load), size)
    items = [
        {
            "seq": r["seq"],
            "event_id": r["event_id"],
            "kind": r["kind"],
            "severity": r["severity"],
            "actor_key_id": r["actor_key_id"],
            "client_ip": r["client_ip"],
            "peer_ip": r["peer_ip"],
            "forwarded_for": r["forwarded_for"],
            "route": r["route"],
            "count": r["count"],
            "detail": orjson.loads(r["detail"]),
            "created_at": admin.instant(r["created_at"]),
            "chain_hash": r["chain_hash"],
        }
        for r in rows
    ]
    return json_response({"items": items, "next_cursor": next_cursor})
