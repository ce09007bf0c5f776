"""Alert endpoints, inbound hook sources, tripwires and the inbound hook route.

Thin: parse, call ``delivery.endpoints`` / ``security.hook_sources`` / ``security.admin``,
shape. A platform key manages the platform's own endpoints (honeypot alerts); a tenant
key its tenant's. Another tenant's endpoint or source is answered 404.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from frostgate.api._common import (
    json_body,
    json_response,
    raw_json_response,
    read_call,
    read_json,
    read_object,
    storage_call,
)
from frostgate.api.context import services
from frostgate.delivery import endpoints as endpoint_admin
from frostgate.egress import EgressFailed, EgressRefused
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import Principal, admin, hook_sources
from frostgate.security.hook_sources import HookRejected
from frostgate.security.webhook_signature import decode_secret, signed_headers
from frostgate.store import webhooks as repo
from frostgate.store.audit import PLATFORM
from frostgate.store.entries import format_timestamp
from frostgate.store.outbox import message_page, new_message_id

__all__ = ["router"]

router = APIRouter()


def _owner(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.tenant_id or PLATFORM


def _actor(request: Request) -> admin.Actor:
    principal: Principal = request.state.principal
    return admin.Actor(key_id=principal.key_id, address=request.state.client, via="api")


def _endpoint_view(endpoint: repo.Endpoint) -> dict[str, Any]:
    """An endpoint as listed: never its secret."""
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "min_threat_level": endpoint.min_threat_level,
        "event_types": list(endpoint.event_types),
        "tripwires": endpoint.tripwires,
        "enabled": endpoint.enabled,
        "max_per_minute": endpoint.max_per_minute,
        "created_at": format_timestamp(endpoint.created_at),
    }


def _spec(body: dict[str, Any]) -> endpoint_admin.EndpointSpec:
    url = body.get("url")
    event_types = body.get("event_types", [])
    checks = (
        isinstance(url, str),
        isinstance(body.get("description", ""), str),
        isinstance(body.get("min_threat_level", "high"), str),
        isinstance(event_types, list) and all(isinstance(t, str) for t in event_types),
        isinstance(body.get("tripwires", True), bool),
        isinstance(body.get("enabled", True), bool),
        type(body.get("max_per_minute", 60)) is int,
    )
    if not all(checks):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "webhook fields")
    assert isinstance(url, str)
    return endpoint_admin.EndpointSpec(
        url=url,
        description=body.get("description", ""),
        min_threat_level=body.get("min_threat_level", "high"),
        event_types=tuple(event_types),
        tripwires=body.get("tripwires", True),
        enabled=body.get("enabled", True),
        max_per_minute=body.get("max_per_minute", 60),
    )


@router.post(
    "/v1/webhooks",
    status_code=201,
    openapi_extra=json_body(
        {
            "url": {"type": "string"},
            "description": {"type": "string"},
            "min_threat_level": {"type": "string"},
            "event_types": {"type": "array", "items": {"type": "string"}},
            "tripwires": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "max_per_minute": {"type": "integer"},
        },
        required=("url",),
    ),
)
async def create_webhook(request: Request) -> Response:
    svc = services(request)
    spec = _spec(await read_object(request))
    try:
        endpoint, secret = await storage_call(
            lambda: endpoint_admin.create_endpoint(
                svc.db, svc.secret_box, svc.egress, _owner(request), spec, actor=_actor(request)
            )
        )
    except FrostGateError as exc:
        if exc.code is ErrorCode.WEBHOOK_URL_REFUSED:
            svc.audit.record(
                "egress_refused",
                "warning",
                _owner(request),
                key_id=request.state.principal.key_id,
                address=request.state.client,
                route="POST /v1/webhooks",
                detail={"reason": exc.reason, "at": "create"},
            )
        raise
    return json_response({**_endpoint_view(endpoint), "secret": secret}, status_code=201)


@router.get("/v1/webhooks")
async def list_webhooks(request: Request) -> Response:
    svc = services(request)
    owner = _owner(request)

    def load() -> list[repo.Endpoint]:
        with svc.db.read.connect() as conn:
            return repo.list_endpoints(conn, owner)

    return json_response({"items": [_endpoint_view(e) for e in await storage_call(load)]})


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(request: Request, endpoint_id: str) -> Response:
    svc = services(request)
    deleted = await storage_call(
        lambda: endpoint_admin.delete_endpoint(
            svc.db, _owner(request), endpoint_id, actor=_actor(request)
        )
    )
    if not deleted:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return Response(status_code=204)


@router.patch(
    "/v1/webhooks/{endpoint_id}",
    openapi_extra=json_body({"enabled": {"type": "boolean"}}, required=("enabled",)),
)
async def patch_webhook(request: Request, endpoint_id: str) -> Response:
    svc = services(request)
    body = await read_object(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool) or set(body) != {"enabled"}:
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "only 'enabled' can change")
    changed = await storage_call(
        lambda: endpoint_admin.set_enabled(
            svc.db, _owner(request), endpoint_id, enabled, actor=_actor(request)
        )
    )
    if not changed:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return json_response({"endpoint_id": endpoint_id, "enabled": enabled})


async def _endpoint(request: Request, endpoint_id: str) -> repo.Endpoint:
    endpoint = await read_call(services(request), _owner(request), repo.get_endpoint, endpoint_id)
    if endpoint is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return endpoint


@router.post("/v1/webhooks/{endpoint_id}/test")
async def test_webhook(request: Request, endpoint_id: str) -> Response:
    """Send one signed ``webhook.test`` message now and report what the receiver said."""
    svc = services(request)
    endpoint = await _endpoint(request, endpoint_id)
    owner = _owner(request)

    def tenant_hosts() -> frozenset[str] | None:
        with svc.db.read.connect() as conn:
            return repo.egress_hosts(conn, owner)

    hosts = await storage_call(tenant_hosts)
    message_id = new_message_id()
    now = int(time.time())
    body = orjson.dumps(
        {
            "type": "webhook.test",
            "timestamp": format_timestamp_seconds(now),
            "tenant_id": owner,
            "data": {"endpoint_id": endpoint_id},
        }
    )
    secret = svc.secret_box.open(
        endpoint.secret_pepper_id,
        endpoint.secret_sealed,
        bound_to=repo.secret_binding(endpoint.tenant_id, endpoint.endpoint_id),
    )
    headers = signed_headers(decode_secret(secret), message_id, now, body)
    headers["content-type"] = "application/json"
    result: dict[str, Any] = {"webhook_id": message_id, "delivered": False}
    started = time.monotonic()
    try:
        response = await svc.egress.post(
            endpoint.url, body, headers, tenant_id=owner, tenant_hosts=hosts
        )
    except EgressRefused as refused:
        result["error"] = f"refused: {refused.reason}"
    except EgressFailed as failed:
        result["error"] = failed.reason
    else:
        result["status_code"] = response.status
        result["delivered"] = response.ok
    result["duration_ms"] = int((time.monotonic() - started) * 1000)
    return json_response(result)


def format_timestamp_seconds(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


@router.get("/v1/webhooks/{endpoint_id}/deliveries")
async def list_deliveries(request: Request, endpoint_id: str) -> Response:
    svc = services(request)
    await _endpoint(request, endpoint_id)
    owner = _owner(request)

    def load() -> list[dict[str, Any]]:
        with svc.db.read.connect() as conn:
            return message_page(conn, owner, endpoint_id)

    items = []
    for m in await storage_call(load):
        items.append(
            {
                "webhook_id": m["message_id"],
                "type": m["event_type"],
                "status": m["status"],
                "count": m["count"],
                "attempts": [
                    {
                        "attempt": a["attempt"],
                        "started_at": format_timestamp(a["started_at"]),
                        "outcome": a["outcome"],
                        "status_code": a["status_code"],
                        "duration_ms": a["duration_ms"],
                        "error": a["error"],
                    }
                    for a in m["attempt_log"]
                ],
                "created_at": format_timestamp(m["created_at"]),
                "next_attempt_at": format_timestamp(m["next_attempt_at"]),
                "delivered_at": format_timestamp(m["delivered_at"]) if m["delivered_at"] else None,
                "last_error": m["last_error"],
            }
        )
    return json_response({"items": items})


# -- inbound hook sources -------------------------------------------------------------


@router.post(
    "/v1/hook-sources",
    status_code=201,
    openapi_extra=json_body({"name": {"type": "string"}}, required=("name",)),
)
async def create_hook_source(request: Request) -> Response:
    svc = services(request)
    body = await read_object(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "name")
    tenant_id: str = request.state.principal.tenant_id
    issued = await storage_call(
        lambda: hook_sources.create_source(
            svc.db, svc.secret_box, tenant_id, name, actor=_actor(request)
        )
    )
    return json_response(
        {
            "source_id": issued.source_id,
            "name": name,
            "secret_id": issued.secret_id,
            "secret": issued.secret,
            "url": f"/v1/hooks/{issued.source_id}",
        },
        status_code=201,
    )


@router.get("/v1/hook-sources")
async def list_hook_sources(request: Request) -> Response:
    svc = services(request)
    tenant_id: str = request.state.principal.tenant_id

    def load() -> list[repo.HookSource]:
        with svc.db.read.connect() as conn:
            return repo.list_hook_sources(conn, tenant_id)

    return json_response(
        {
            "items": [
                {
                    "source_id": s.source_id,
                    "name": s.name,
                    "created_at": format_timestamp(s.created_at),
                    "secrets": [
                        {"secret_id": x.secret_id, "created_at": format_timestamp(x.created_at)}
                        for x in s.secrets
                    ],
                }
                for s in await storage_call(load)
            ]
        }
    )


@router.post(
    "/v1/hook-sources/{source_id}/secrets",
    status_code=201,
    openapi_extra=json_body({"secret": {"type": "string"}}, optional_body=True),
)
async def add_hook_secret(request: Request, source_id: str) -> Response:
    svc = services(request)
    body = await read_object(request, optional=True)
    secret = body.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise FrostGateError(ErrorCode.WEBHOOK_SECRET_INVALID)
    tenant_id: str = request.state.principal.tenant_id
    issued = await storage_call(
        lambda: hook_sources.add_secret(
            svc.db, svc.secret_box, tenant_id, source_id, secret, actor=_actor(request)
        )
    )
    return json_response(
        {"source_id": source_id, "secret_id": issued.secret_id, "secret": issued.secret},
        status_code=201,
    )


@router.delete("/v1/hook-sources/{source_id}/secrets/{secret_id}", status_code=204)
async def revoke_hook_secret(request: Request, source_id: str, secret_id: str) -> Response:
    svc = services(request)
    tenant_id: str = request.state.principal.tenant_id
    revoked = await storage_call(
        lambda: hook_sources.revoke_secret(
            svc.db, tenant_id, source_id, secret_id, actor=_actor(request)
        )
    )
    if not revoked:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return Response(status_code=204)


@router.post(
    "/v1/hooks/{source_id}",
    openapi_extra=json_body(
        {"event_type": {"type": "string"}, "source": {"type": "string"}}, closed=False
    ),
)
async def receive_hook(request: Request, source_id: str) -> Response:
    """An event from an external system, signed per Standard Webhooks (no key; F1)."""
    svc = services(request)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        verified = await svc.hooks.verify(source_id, headers, body)
    except HookRejected as exc:
        # The platform's stream sees every refusal; the source's tenant sees those
        # aimed at its own sources.
        for stream_tenant in {None, exc.tenant_id}:
            svc.audit.record(
                "hook_rejected",
                "warning",
                stream_tenant,
                address=request.state.client,
                route="POST /v1/hooks/{source}",
                detail={"source_id": source_id[:64], "reason": str(exc)},
            )
        raise
    try:
        event = await read_json(request)
        if not isinstance(event, dict):
            raise FrostGateError(ErrorCode.EVENT_INVALID, "hook body must be an event object")
        event.setdefault("event_id", verified.webhook_id)
        event.setdefault("source", f"hook:{verified.source_name}")
        outcome = await svc.decisions.decide(
            verified.tenant_id, event, key_id=verified.proposer_key_id
        )
    except FrostGateError as exc:
        if exc.code.status >= 500:
            await svc.hooks.release(verified)  # not processed: the retry must get through
        raise
    if outcome.status == "conflict":
        raise FrostGateError(ErrorCode.IDEMPOTENCY_CONFLICT)
    if outcome.status == "quota_exceeded":
        raise FrostGateError(ErrorCode.QUOTA_EXCEEDED)
    svc.feed.notify(verified.tenant_id)
    return raw_json_response(outcome.response)


# -- tripwires ------------------------------------------------------------------------


@router.post(
    "/v1/tripwires/canary-keys",
    status_code=201,
    openapi_extra=json_body({"label": {"type": "string", "maxLength": 200}}, optional_body=True),
)
async def mint_canary_key(request: Request) -> Response:
    """A key indistinguishable from a real one; any use of it is a critical tripwire."""
    svc = services(request)
    body = await read_object(request, optional=True)
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "label")
    tenant_id: str = request.state.principal.tenant_id
    issued = await storage_call(
        lambda: admin.mint_key(
            svc.db,
            svc.authenticator.peppers,
            tenant_id=tenant_id,
            scopes=frozenset({"decisions:read"}),
            kind="canary",
            label=label,
            actor=_actor(request),
        )
    )
    return json_response({"key_id": issued.key_id, "key": issued.token}, status_code=201)
