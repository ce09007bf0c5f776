"""Read routes: decisions, the live feed (page and SSE), stats, forensics, health.

Database work runs in worker threads (FastAPI runs sync dependencies there; here the
calls are explicit through ``anyio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from frostgate.api._common import (
    THREAT_LEVELS,
    decision_filter,
    decision_summary,
    json_response,
    keyset_page,
    parse_cursor,
    parse_index,
    parse_window,
    read_call,
    tenant_of,
)
from frostgate.api.context import Services, services
from frostgate.decisions import verify_chain
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import decisions as repo
from frostgate.store import is_migrated
from frostgate.store.entries import decision_stream

__all__ = ["router"]

router = APIRouter()


def _limit(value: int | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if value < 1 or value > maximum:
        raise FrostGateError(ErrorCode.FILTER_INVALID, "limit out of range")
    return value


@router.get("/v1/decisions")
async def list_decisions(
    request: Request,
    threat_level: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int | None = Query(default=None),
) -> Response:
    tenant_id = tenant_of(request)
    flt = decision_filter(
        threat_level=threat_level, event_type=event_type, source=source, since=since, until=until
    )
    size = _limit(limit, 50, 500)
    rows = await read_call(
        services(request),
        tenant_id,
        repo.list_page,
        flt,
        before_seq=parse_cursor(cursor),
        limit=size + 1,
    )
    page, next_cursor = keyset_page(rows, size)
    return json_response({"items": [decision_summary(r) for r in page], "next_cursor": next_cursor})


@router.get("/v1/decisions/{event_id}")
async def get_decision(request: Request, event_id: str) -> Response:
    tenant_id = tenant_of(request)
    row = await read_call(services(request), tenant_id, repo.get_decision, event_id)
    if row is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    body = decision_summary(row)
    body["decision"] = orjson.loads(row["response_json"])
    return json_response(body)


def _feed_filter(
    threat_level: str | None,
    event_type: str | None,
    source: str | None,
    only_changed: bool,
    only_actionable: bool,
) -> repo.DecisionFilter:
    return decision_filter(
        threat_level=threat_level,
        event_type=event_type,
        source=source,
        since=None,
        until=None,
        only_changed=only_changed,
        only_actionable=only_actionable,
    )


@router.get("/v1/feed/live")
async def feed_live(
    request: Request,
    since: str | None = None,
    limit: int | None = Query(default=None),
    threat_level: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    only_changed: bool = False,
    only_actionable: bool = False,
) -> Response:
    tenant_id = tenant_of(request)
    flt = _feed_filter(threat_level, event_type, source, only_changed, only_actionable)
    size = _limit(limit, 100, 500)
    after = parse_cursor(since)

    def page(conn: Any, tenant: str) -> list[dict[str, Any]]:
        start = _resume_point(conn, tenant, after)
        return repo.feed_page(conn, tenant, flt, after_seq=start, limit=size)

    rows = await read_call(services(request), tenant_id, page)
    cursor = str(rows[-1]["seq"]) if rows else (since or None)
    return json_response({"items": [decision_summary(r) for r in rows], "next_since": cursor})


def _resume_point(conn: Any, tenant_id: str, after: int | None) -> int:
    """The feed position a client resumes after (-1: the beginning), which must be one
    the feed has reached. A position ahead of the newest decision (a cursor from before a
    restore, or made up) would wait in silence and then skip every decision up to it."""
    if after is None:
        return -1
    head = repo.ledger_head(conn, decision_stream(tenant_id), tenant_id)
    if after > (-1 if head is None else head[0] - 1):
        raise FrostGateError(
            ErrorCode.CURSOR_INVALID, reason="the cursor is ahead of the feed's newest decision"
        )
    return after


class EventStreamResponse(StreamingResponse):
    """Server-Sent Events; declared as such in the OpenAPI document (not JSON)."""

    media_type = "text/event-stream"


#: One event of the feed stream, as Server-Sent Events parsers present it.
_FEED_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["decision", "mitigation"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
    },
}


@router.get(
    "/v1/feed/stream",
    response_class=EventStreamResponse,
    responses={200: {"content": {"text/event-stream": {"schema": _FEED_EVENT}}}},
)
async def feed_stream(
    request: Request,
    since: str | None = None,
    threat_level: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    only_changed: bool = False,
    only_actionable: bool = False,
    last_event_id: str | None = Query(default=None, alias="lastEventId"),
) -> EventStreamResponse:
    """Server-Sent Events. Each decision event's ``id:`` is its sequence number; a client
    that reconnects with ``Last-Event-ID`` resumes right after it (or ``?lastEventId=``,
    which EventSource polyfills send where they cannot set the header). Mitigation
    changes made while connected arrive as ``event: mitigation`` without an ``id:`` (they
    do not move the resume point; bouncers use the mitigation stream, which has its own
    cursor)."""
    tenant_id = tenant_of(request)
    flt = _feed_filter(threat_level, event_type, source, only_changed, only_actionable)
    given = (request.headers.get("last-event-id"), last_event_id, since)
    after = parse_cursor(next((v for v in given if v is not None), None))
    svc = services(request)
    start = await read_call(svc, tenant_id, _resume_point, after)
    key_id = request.state.principal.key_id
    heartbeat = svc.settings.sse_heartbeat_seconds
    svc.live_streams.check(tenant_id)

    async def events() -> AsyncIterator[bytes]:
        if not svc.live_streams.free(tenant_id):
            return  # another stream took the last slot since the check: the client retries
        with svc.live_streams.slot(tenant_id):
            async for chunk in _stream(tenant_id, key_id, flt, start, heartbeat, svc):
                yield chunk

    return EventStreamResponse(events(), headers={"x-accel-buffering": "no"})


async def _stream(
    tenant_id: str,
    key_id: str,
    flt: repo.DecisionFilter,
    start: int,
    heartbeat: float,
    svc: Services,
) -> AsyncIterator[bytes]:
    """The feed stream's body: decisions after ``start``, mitigation changes, heartbeats,
    for as long as the key stays active."""
    cursor = start
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    mitigations = await svc.mitigation_index.view(tenant_id)
    mitigation_cursor = mitigations.seq
    yield b"retry: 2000\n\n"
    # A stream outlives the check its request passed: the key is checked again on
    # every round, so revoking it (or suspending its tenant) ends the stream.
    while await svc.authenticator.still_active(key_id):
        rows = await read_call(svc, tenant_id, repo.feed_page, flt, after_seq=cursor, limit=200)
        for row in rows:
            cursor = int(row["seq"])
            data = orjson.dumps(decision_summary(row))
            yield b"id: %d\nevent: decision\ndata: %s\n\n" % (cursor, data)
            last_sent = loop.time()
        mitigations = await svc.mitigation_index.view(tenant_id)
        delta = mitigations.since(mitigation_cursor, svc.mitigation_index.now())
        for change, entries in (("active", delta.new), ("ended", delta.deleted)):
            for entry in entries:
                data = b'{"change":"%s","mitigation":%s}' % (change.encode(), entry.native)
                yield b"event: mitigation\ndata: %s\n\n" % data
                last_sent = loop.time()
        mitigation_cursor = mitigations.seq
        if len(rows) == 200:
            continue
        if loop.time() - last_sent >= heartbeat:
            yield b": heartbeat\n\n"
            last_sent = loop.time()
        await svc.feed.wait(tenant_id, min(1.0, heartbeat))


def _windows(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime, datetime, datetime]:
    """``(previous_start, start, end)``: the window asked for (default the last 24 h)
    and the equal one before it, which the trend compares against. Both must lie in the
    calendar: a trend against a window that cannot exist is refused, not invented."""
    given_start, given_end = parse_window(since, until)
    try:
        end = given_end or now
        start = given_start or end - timedelta(hours=24)
        if start >= end:
            raise FrostGateError(ErrorCode.RANGE_INVALID, "since must precede until")
        return start - (end - start), start, end
    except OverflowError as exc:
        raise FrostGateError(
            ErrorCode.RANGE_INVALID, "the window and the one before it must lie after year 1"
        ) from exc


async def _stats(request: Request, since: str | None, until: str | None) -> Any:
    tenant_id = tenant_of(request)
    svc = services(request)
    previous_start, start, end = _windows(since, until, datetime.now(UTC))
    with svc.stats_reads.slot(tenant_id):
        current = await read_call(svc, tenant_id, repo.stats, since=start, until=end)
        previous = await read_call(svc, tenant_id, repo.stats, since=previous_start, until=start)
    seconds = (end - start).total_seconds()
    levels = {level: current["by_threat_level"].get(level, 0) for level in THREAT_LEVELS}
    current["by_threat_level"] = levels
    current["window"] = {"since": start.isoformat(), "until": end.isoformat(), "seconds": seconds}
    current["rate_per_minute"] = round(current["total"] / seconds * 60, 3)
    prev_total = previous["total"]
    current["trend"] = {
        "previous_total": prev_total,
        "change": current["total"] - prev_total,
        "direction": "up"
        if current["total"] > prev_total
        else "down"
        if current["total"] < prev_total
        else "flat",
    }
    return current


def _headline(stats: dict[str, Any]) -> str:
    levels = stats["by_threat_level"]
    severe = levels["high"] + levels["critical"]
    return (
        f"{stats['total']} decisions, {severe} high or critical, "
        f"{stats['actionable']} with mitigations, trend {stats['trend']['direction']}"
    )


@router.get("/v1/stats")
async def get_stats(
    request: Request, since: str | None = None, until: str | None = None
) -> Response:
    stats = await _stats(request, since, until)
    stats["headline"] = _headline(stats)
    return json_response(stats)


@router.get("/v1/stats/summary")
async def get_stats_summary(
    request: Request, since: str | None = None, until: str | None = None
) -> Response:
    stats = await _stats(request, since, until)
    return json_response(
        {
            "headline": _headline(stats),
            "total": stats["total"],
            "by_threat_level": stats["by_threat_level"],
            "unique_ips": stats["unique_ips"],
            "rate_per_minute": stats["rate_per_minute"],
            "trend": stats["trend"],
            "top_rule": stats["top_rules"][0]["name"] if stats["top_rules"] else None,
        }
    )


@router.get("/v1/forensics/snapshot/{event_id}")
async def forensics_snapshot(request: Request, event_id: str) -> Response:
    tenant_id = tenant_of(request)
    row = await read_call(services(request), tenant_id, repo.get_decision, event_id)
    if row is None:
        raise FrostGateError(ErrorCode.NOT_FOUND)
    summary = decision_summary(row)
    return json_response(
        {
            "event_id": event_id,
            "summary": summary,
            "request": orjson.loads(row["request_json"]),
            "response": orjson.loads(row["response_json"]),
            "ledger": {
                "stream": decision_stream(tenant_id),
                "index": row["seq"],
                "leaf_hash": row["leaf_hash"],
                "prev_chain_hash": row["prev_chain_hash"],
                "chain_hash": row["chain_hash"],
                "request_sha256": row["request_sha256"],
                "response_sha256": row["response_sha256"],
            },
        }
    )


@router.get("/v1/forensics/chain/verify")
async def chain_verify(
    request: Request, start: str | None = None, end: str | None = None
) -> Response:
    tenant_id = tenant_of(request)
    first = parse_index(start, "start") or 0
    last = parse_index(end, "end")
    if last is not None and last <= first:
        raise FrostGateError(ErrorCode.RANGE_INVALID, "end must be greater than start")
    svc = services(request)

    def run(conn: Any, tenant: str) -> dict[str, Any]:
        head = repo.ledger_head(conn, decision_stream(tenant), tenant)
        if first > 0 and (head is None or first >= head[0]):
            # Nothing there to check: "ok" over zero entries would read as a clean bill.
            raise FrostGateError(ErrorCode.RANGE_INVALID, "start is beyond the chain's end")
        rows = repo.chain_rows(conn, tenant, first, last)
        to_tip = last is None or (head is not None and last >= head[0])
        report = verify_chain(
            rows,
            start=first,
            start_prev_chain=None,
            head=(head or (0, "")) if to_tip and first == 0 else None,
        )
        return report.as_dict()

    with svc.heavy_reads.slot(tenant_id):
        return json_response(await read_call(svc, tenant_id, run))


@router.get("/health/live")
async def health_live() -> Response:
    return json_response({"status": "ok"})


@router.get("/health/ready")
async def health_ready(request: Request) -> Response:
    svc = services(request)

    def check() -> bool:
        try:
            return is_migrated(svc.db.read)
        except Exception:  # noqa: BLE001 - readiness reports the failure as "not ready"
            return False

    ready = await anyio.to_thread.run_sync(check)
    if not ready or svc.anchorer.problems:
        # A ledger gap or inconsistency takes the node out of service: it is logged and
        # recorded as a critical audit event; `frostgate verify` names the entry.
        raise FrostGateError(ErrorCode.NOT_READY)
    body = {"status": "ready", "database": "ok", "schema": "current", "ledger": "consistent"}
    if svc.redis_probe is not None:
        if not await svc.redis_probe.ping():
            raise FrostGateError(ErrorCode.NOT_READY, "redis unreachable")
        body["redis"] = "ok"
    return json_response(body)
