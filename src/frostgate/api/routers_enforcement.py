"""Mitigations for analysts and enforcement points, plus the CrowdSec bouncer mount.

Thin: parse, call ``enforcement``, shape. Reads for bouncers come from the in-memory
index (see ``enforcement.index``); the CrowdSec mount speaks the LAPI bouncer protocol
(``/v1/decisions/stream``, ``/v1/decisions``, ``X-Api-Key``) under ``/crowdsec`` so an
unmodified bouncer can enforce FrostGate's mitigations.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from frostgate.api._common import (
    json_body,
    json_response,
    query_params,
    raw_json_response,
    read_call,
    read_json,
    read_object,
    storage_call,
)
from frostgate.api.context import services
from frostgate.enforcement.index import CHUNK, Delta, crowdsec_parts, native_fields, native_parts
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import Principal, admin
from frostgate.store import mitigations as repo

__all__ = ["router"]

router = APIRouter()

_STATUSES = ("pending", "active", "lifted", "expired", "rejected")


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _tenant(request: Request) -> str:
    tenant_id = _principal(request).tenant_id
    assert tenant_id is not None  # the gate admits tenant keys only here
    return tenant_id


def _actor(request: Request) -> admin.Actor:
    return admin.Actor(key_id=_principal(request).key_id, address=request.state.client, via="api")


def _view(row: repo.MitigationRow) -> dict[str, Any]:
    """The mitigation record: what bouncers are served, plus the forensic fields (the
    index keeps none of these: see ``enforcement.index``)."""
    out = native_fields(row)
    out.update(
        {
            "origin_event_id": row.origin_event_id,
            "status_reason": row.status_reason,
            "ttl_seconds": row.ttl_seconds,
            "proposed_by": row.proposed_by,
            "approved_by": row.approved_by,
            "lifted_by": row.lifted_by,
        }
    )
    return out


@router.post(
    "/v1/mitigations",
    status_code=201,
    openapi_extra=json_body(
        {
            "action": {"type": "string"},
            "value": {"type": "string"},
            "ttl_seconds": {"type": "integer"},
            "reason": {"type": "string"},
        }
    ),
)
async def add_mitigation(request: Request) -> Response:
    body = await read_object(request)
    action = body.get("action", "block_ip")
    ttl = body.get("ttl_seconds", 3600)
    reason = body.get("reason", "manual")
    if not isinstance(action, str) or type(ttl) is not int or not isinstance(reason, str):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "action, ttl_seconds, reason")
    svc = services(request)
    tenant_id = _tenant(request)
    created = await storage_call(
        lambda: svc.mitigations.add(
            tenant_id, action, body.get("value"), ttl, reason, actor=_actor(request)
        )
    )
    return json_response(_view(created), status_code=201)


@router.get("/v1/mitigations")
async def list_mitigations(
    request: Request,
    ip: str | None = None,
    value: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> Response:
    """``?ip=`` (or ``?value=``): the active mitigations covering it, from the index.
    Otherwise the newest mitigations, optionally by status."""
    svc = services(request)
    tenant_id = _tenant(request)
    probe = ip if ip is not None else value
    if probe is not None:
        if len(probe) > 256:
            raise FrostGateError(ErrorCode.FILTER_INVALID)
        if status not in (None, "active") or limit is not None:
            # A lookup answers what is in force; these filters would be ignored.
            reason = "an ip or value lookup answers active mitigations; no status or limit"
            raise FrostGateError(ErrorCode.FILTER_INVALID, reason, reason=reason)
        view = await svc.mitigation_index.view(tenant_id)
        hits = view.lookup(probe, svc.mitigation_index.now())
        return raw_json_response(b'{"items":' + b"".join(native_parts(hits)) + b"}")
    size = 100 if limit is None else limit
    if (status is not None and status not in _STATUSES) or not 1 <= size <= 500:
        raise FrostGateError(ErrorCode.FILTER_INVALID)

    def load() -> list[repo.MitigationRow]:
        with svc.db.read.connect() as conn:
            return repo.list_mitigations(conn, tenant_id, status=status, limit=size)

    return json_response({"items": [_view(r) for r in await storage_call(load)]})


@router.delete("/v1/mitigations/{mitigation_id}")
async def lift_mitigation(request: Request, mitigation_id: str) -> Response:
    svc = services(request)
    tenant_id = _tenant(request)
    lifted = await storage_call(
        lambda: svc.mitigations.lift(tenant_id, mitigation_id, actor=_actor(request))
    )
    return json_response(_view(lifted))


@router.post("/v1/mitigations/{mitigation_id}/approve")
async def approve_mitigation(request: Request, mitigation_id: str) -> Response:
    svc = services(request)
    tenant_id = _tenant(request)
    approved = await storage_call(
        lambda: svc.mitigations.approve(tenant_id, mitigation_id, actor=_actor(request))
    )
    return json_response(_view(approved))


@router.get("/v1/enforcement/envelope")
async def get_envelope(request: Request) -> Response:
    svc = services(request)
    tenant_id = _tenant(request)
    envelope = await storage_call(lambda: svc.mitigations.envelope(tenant_id))
    return json_response(envelope.as_dict())


# Open here: Envelope.parse refuses unknown fields itself, with the envelope's reason.
@router.put("/v1/enforcement/envelope", openapi_extra=json_body({}, closed=False))
async def put_envelope(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "body must be an object")
    svc = services(request)
    tenant_id = _tenant(request)
    envelope = await storage_call(
        lambda: svc.mitigations.set_envelope(tenant_id, body, actor=_actor(request))
    )
    return json_response(envelope.as_dict())


async def _pull(request: Request, startup: bool) -> tuple[Delta, int]:
    """The caller's changes since its last pull (everything active on startup)."""
    svc = services(request)
    tenant_id = _tenant(request)
    key_id = _principal(request).key_id
    view = await svc.mitigation_index.view(tenant_id)
    now = svc.mitigation_index.now()
    cursor = None if startup else await svc.bouncer_cursors.get(tenant_id, key_id)
    if cursor is None:
        delta = Delta(new=view.live(now), deleted=[], seq=view.seq)
    else:
        delta = view.since(cursor, now)
    svc.bouncer_cursors.advance(tenant_id, key_id, delta.seq)
    return delta, now


def _startup_flag(value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise FrostGateError(ErrorCode.FILTER_INVALID)
    return lowered in ("true", "1")


# The bouncer routes read their query themselves (declared for OpenAPI): taking only
# the request, they are served without FastAPI's per-request machinery (api/direct.py),
# which was most of a delta pull's or a lookup's cost.
@router.get("/v1/mitigations/stream", openapi_extra=query_params("startup"))
async def mitigation_stream(request: Request) -> Response:
    delta, _now = await _pull(request, _startup_flag(request.query_params.get("startup")))
    return _bulk_response(
        len(delta.new) + len(delta.deleted),
        (b'{"new":',),
        native_parts(delta.new),
        (b',"deleted":',),
        native_parts(delta.deleted),
        (b',"seq":%d}' % delta.seq,),
    )


@router.get("/v1/mitigations/{mitigation_id}")
async def get_mitigation(request: Request, mitigation_id: str) -> Response:
    """One mitigation's record, whatever its status: where an analyst finds what the
    enforcement forms leave out (its origin event, who proposed and approved it)."""
    row = await read_call(services(request), _tenant(request), repo.get_mitigation, mitigation_id)
    if row is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    return json_response(_view(row))


def _bulk_response(count: int, *pieces: Iterable[bytes]) -> Response:
    """One body from ``pieces``: built at once when small, streamed when it holds more
    than one chunk of entries (a startup pull of 100,000 is 26 MB)."""
    parts = itertools.chain(*pieces)
    if count <= CHUNK:
        return raw_json_response(b"".join(parts))
    return StreamingResponse(parts, media_type="application/json")


# -- CrowdSec LAPI bouncer compatibility ----------------------------------------------


def _scopes(value: str | None) -> set[str]:
    if value is None:
        return {"ip", "range"}
    wanted = {s.strip().lower() for s in value.split(",") if s.strip()}
    mapping = {"ip": "ip", "range": "range", "username": "user", "user": "user", "host": "host"}
    return {mapping[s] for s in wanted if s in mapping}


# The rest of CrowdSec's LAPI query language, which its bouncers may send: declared so
# the gate lets them through, and without effect (every FrostGate decision has one origin,
# no scenario, is never simulated and is listed whole; docs/api.md says so).
_CROWDSEC_FILTERS = ("origins", "scenarios_containing", "scenarios_not_containing")
_CROWDSEC_STREAM_EXTRAS = ("community_pull", "additional_pull", "dedup", "simulated")
_CROWDSEC_LIST_EXTRAS = ("scope", "type", "contains", "limit", "offset", "simulated")


@router.get(
    "/crowdsec/v1/decisions/stream",
    openapi_extra=query_params("startup", "scopes", *_CROWDSEC_FILTERS, *_CROWDSEC_STREAM_EXTRAS),
)
async def crowdsec_stream(request: Request) -> Response:
    query = request.query_params
    delta, now = await _pull(request, _startup_flag(query.get("startup")))
    wanted = _scopes(query.get("scopes"))
    new = [e for e in delta.new if e.scope in wanted]
    deleted = [e for e in delta.deleted if e.scope in wanted]
    return _bulk_response(
        len(new) + len(deleted),
        (b'{"new":',),
        crowdsec_parts(new, now),
        (b',"deleted":',),
        crowdsec_parts(deleted, now, deleted=True),
        (b"}",),
    )


@router.get(
    "/crowdsec/v1/decisions",
    openapi_extra=query_params(
        "ip", "range", "value", "scopes", *_CROWDSEC_FILTERS, *_CROWDSEC_LIST_EXTRAS
    ),
)
async def crowdsec_decisions(request: Request) -> Response:
    # every scope is answered for the probed value, so ``scope`` is not read; a bouncer
    # may name the value as ``ip``, ``range`` or (with ``scope``) ``value``
    svc = services(request)
    query = request.query_params
    # One probe: with two, the second was dropped in silence and its answer missing.
    probes = [v for v in (query.get("ip"), query.get("range"), query.get("value")) if v]
    if len(probes) != 1 or len(probes[0]) > 256:
        reason = "give exactly one of ip, range and value"
        raise FrostGateError(ErrorCode.FILTER_INVALID, reason, reason=reason)
    probe = probes[0]
    view = await svc.mitigation_index.view(_tenant(request))
    now = svc.mitigation_index.now()
    return raw_json_response(b"".join(crowdsec_parts(view.lookup(probe, now), now)))
