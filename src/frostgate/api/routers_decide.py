"""``POST /v1/defend`` and ``POST /v1/ingest``: thin — parse, call the service, shape."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from frostgate.api._common import raw_json_response, read_json, tenant_of
from frostgate.api.context import services
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security.limits import Batch

__all__ = ["router"]

router = APIRouter()

_EVENT_SCHEMA = {
    "type": "object",
    "description": "A security event. Fields may sit at the top level or in `payload`.",
    "properties": {
        "event_id": {"type": "string", "maxLength": 128},
        "event_type": {"type": "string"},
        "source": {"type": "string"},
        "timestamp": {"type": ["string", "number"]},
        "payload": {"type": "object"},
    },
}


@router.post(
    "/v1/defend",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _EVENT_SCHEMA}},
        }
    },
)
async def defend(request: Request) -> Response:
    tenant_id = tenant_of(request)
    raw = await read_json(request)
    svc = services(request)
    outcome = await svc.decisions.decide(tenant_id, raw, key_id=request.state.principal.key_id)
    if outcome.status == "conflict":
        raise FrostGateError(ErrorCode.IDEMPOTENCY_CONFLICT)
    if outcome.status == "quota_exceeded":
        raise FrostGateError(ErrorCode.QUOTA_EXCEEDED)
    if outcome.status == "replayed":
        return raw_json_response(outcome.response, headers={"idempotent-replay": "true"})
    svc.feed.notify(tenant_id)
    return raw_json_response(outcome.response)


@router.post(
    "/v1/ingest",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["events"],
                        "properties": {
                            "events": {"type": "array", "items": _EVENT_SCHEMA, "maxItems": 1000}
                        },
                    }
                }
            },
        }
    },
)
async def ingest(request: Request) -> Response:
    tenant_id = tenant_of(request)
    svc = services(request)
    # Over max_batch_events is BATCH_TOO_LARGE, before any event is looked at.
    raw = await read_json(request, batch=Batch("events", svc.settings.max_batch_events))
    if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
        why = "the body must be an object whose events is a list of events"
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, why, reason=why)
    events = raw["events"]
    if not events:
        raise FrostGateError(ErrorCode.BATCH_EMPTY)
    outcomes = await svc.decisions.decide_batch(
        tenant_id, events, key_id=request.state.principal.key_id
    )
    results: list[dict[str, object]] = []
    counts = dict.fromkeys(("created", "replayed", "conflict", "quota_exceeded"), 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
        result: dict[str, object] = {"event_id": outcome.event_id, "status": outcome.status}
        error = _PER_EVENT_ERRORS.get(outcome.status)
        if error is None:
            result["decision"] = _Raw(outcome.response)
        else:
            result["error_code"] = error.name
        results.append(result)
    if counts["quota_exceeded"] == len(outcomes):
        raise FrostGateError(ErrorCode.QUOTA_EXCEEDED)
    if counts["created"]:
        svc.feed.notify(tenant_id)
    return raw_json_response(_encode_results(results, counts))


_PER_EVENT_ERRORS = {
    "conflict": ErrorCode.IDEMPOTENCY_CONFLICT,
    "quota_exceeded": ErrorCode.QUOTA_EXCEEDED,
}


class _Raw:
    """Marks already-encoded JSON so stored decision bytes are embedded verbatim."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _encode_results(results: list[dict[str, object]], counts: dict[str, int]) -> bytes:
    parts: list[bytes] = []
    for result in results:
        decision = result.pop("decision", None)
        head = orjson.dumps(result)
        if isinstance(decision, _Raw):
            head = head[:-1] + b',"decision":' + decision.data + b"}"
        parts.append(head)
    return b'{"counts":' + orjson.dumps(counts) + b',"results":[' + b",".join(parts) + b"]}"
