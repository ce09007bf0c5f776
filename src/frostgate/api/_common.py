"""Small helpers shared by the routers: body parsing, principal access, query parsing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import Response

from frostgate.api.context import Services, services
from frostgate.errors import ErrorCode, FrostGateError, unknown_name_reason
from frostgate.security import Principal, parse_json
from frostgate.security.limits import Batch
from frostgate.store.decisions import DecisionFilter
from frostgate.store.entries import format_timestamp

THREAT_LEVELS = ("none", "low", "medium", "high", "critical")
MAX_INDEX = 2**62
T = TypeVar("T")


def tenant_of(request: Request) -> str:
    """The caller's tenant. The gate guarantees a tenant key on tenant-data routes."""
    principal: Principal = request.state.principal
    if principal.tenant_id is None:
        raise FrostGateError(ErrorCode.SCOPE_DENIED, "platform key on tenant route")
    return principal.tenant_id


async def read_json(request: Request, *, batch: Batch | None = None) -> Any:
    """The JSON body within the input limits (and ``batch``'s, see :class:`Batch`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise FrostGateError(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    body = await request.body()
    return parse_json(body, services(request).json_limits, batch=batch)


async def read_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """A JSON object body (:func:`read_json`'s limits first) holding only the fields its
    route declares in the served OpenAPI document (:func:`json_body`). A field a handler
    does not know was ignored before: ``"ttl"`` for ``ttl_seconds`` took the default.
    ``optional``: an empty body is ``{}``."""
    if optional and not await request.body():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, "body must be an object")
    spec = request.state.route
    declared = services(request).body_fields[(spec.method, spec.path)]
    for name in body:
        if name not in declared:
            reason = unknown_name_reason("field", name)
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, reason, reason=reason)
    if _holds_nul(body):
        # These fields are stored as text, which PostgreSQL cannot hold a NUL in: the
        # write failed as 503 STORAGE_UNAVAILABLE instead of refusing the value.
        reason = "a field contains a NUL character"
        raise FrostGateError(ErrorCode.VALIDATION_FAILED, reason, reason=reason)
    return body


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def json_body(
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    optional_body: bool = False,
    closed: bool = True,
) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON object body. Handlers read bodies with
    :func:`read_json` (size, depth and string limits first), so FastAPI cannot see them;
    without this the served document says the operation takes no body. ``closed``: no
    other field is taken (:func:`read_object` holds the handler to it); events and
    documents with their own parser are open."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    if required:
        schema["required"] = list(required)
    return {
        "requestBody": {
            "required": not optional_body,
            "content": {"application/json": {"schema": schema}},
        }
    }


def query_params(*names: str) -> dict[str, Any]:
    """``openapi_extra`` declaring optional string query parameters, for handlers that
    read their query themselves (the direct routes, api/direct.py)."""
    return {
        "parameters": [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in names
        ]
    }


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps(payload),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def raw_json_response(
    body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=body, status_code=status_code, media_type="application/json", headers=headers
    )


def parse_time(value: str | None) -> datetime | None:
    """A query timestamp (ISO 8601; naive means UTC) as an instant in UTC. A time whose
    UTC form falls outside years 1-9999 (``0001-01-01T00:00:00+01:00``) is refused here
    rather than overflowing in a comparison or a query later (a 500)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise FrostGateError(ErrorCode.TIMESTAMP_INVALID, "bad query timestamp") from exc


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``since`` (inclusive) and ``until`` (exclusive); both given, ``since`` must come
    first, on every route that takes the pair (an empty window is a mistake, not a page)."""
    start, end = parse_time(since), parse_time(until)
    if start is not None and end is not None and start >= end:
        raise FrostGateError(ErrorCode.RANGE_INVALID, "since must precede until")
    return start, end


def parse_index(value: str | None, name: str) -> int | None:
    """A ledger position or size from the query: ASCII digits, at most 2**62 (beyond
    what any database integer holds, so never an overflow in the query)."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) > MAX_INDEX:
        raise FrostGateError(ErrorCode.RANGE_INVALID, f"{name} must be a non-negative integer")
    return int(value)


def keyset_page(rows: list[dict[str, Any]], size: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page from ``size + 1`` rows read newest first: the first ``size`` rows, and the
    next page's cursor only when the extra row proves there is one (a last page that
    happens to be full must not send the client on to an empty page)."""
    if len(rows) > size:
        return rows[:size], str(rows[size - 1]["seq"])
    return rows, None


def parse_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    # ASCII only: str.isdigit() also holds for "²" (int() then raises: a 500) and for
    # other scripts' digits (int() accepts those: a second spelling of one cursor).
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise FrostGateError(ErrorCode.CURSOR_INVALID)
    return int(value)


def decision_filter(
    *,
    threat_level: str | None,
    event_type: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    only_changed: bool = False,
    only_actionable: bool = False,
) -> DecisionFilter:
    levels: tuple[str, ...] = ()
    if threat_level is not None:
        levels = tuple(v.strip() for v in threat_level.split(",") if v.strip())
        if not levels or any(level not in THREAT_LEVELS for level in levels):
            raise FrostGateError(ErrorCode.FILTER_INVALID, "unknown threat level")
    for text in (event_type, source):
        if text is not None and (not text or len(text) > 256):
            raise FrostGateError(ErrorCode.FILTER_INVALID)
    start, end = parse_window(since, until)
    return DecisionFilter(
        threat_levels=levels,
        event_type=event_type,
        source=source,
        since=start,
        until=end,
        only_changed=only_changed,
        only_actionable=only_actionable,
    )


def decision_summary(row: dict[str, Any]) -> dict[str, Any]:
    """The public view of a stored decision row."""
    return {
        "id": row["event_id"],
        "seq": row["seq"],
        "event_id": row["event_id"],
        "source": row["source"],
        "event_type": row["event_type"],
        "src_ip": row["src_ip"],
        "threat_level": row["threat_level"],
        "score": row["score"],
        "rules_triggered": orjson.loads(row["rules"]),
        "action_taken": orjson.loads(row["actions"]),
        "actionable": bool(row["actionable"]),
        "changed": bool(row["changed"]),
        "diff": None if row["diff"] is None else orjson.loads(row["diff"]),
        "policy_hash": row["policy_hash"],
        "created_at": format_timestamp(row["created_at"]),
    }


async def storage_call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking storage call in a worker thread; a database failure answers 503
    ``STORAGE_UNAVAILABLE`` (fail closed, no detail), a ``FrostGateError`` passes."""

    def run() -> T:
        try:
            return fn(*args)
        except sa.exc.SQLAlchemyError as exc:
            raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "storage call failed") from exc

    return await anyio.to_thread.run_sync(run)


async def read_call(
    svc: Services, owner: str, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """``fn(conn, owner, …)`` on a read connection, through :func:`storage_call` (a
    database failure is 503 ``STORAGE_UNAVAILABLE``); ``owner`` is the tenant whose
    rows ``fn`` reads."""

    def run() -> T:
        with svc.db.read.connect() as conn:
            return fn(conn, owner, *args, **kwargs)

    return await storage_call(run)
