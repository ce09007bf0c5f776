"""Application factory: the FastAPI app behind the auth gate, plus its lifecycle."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from frostgate import __version__
from frostgate.api import (
    routers_admin,
    routers_decide,
    routers_enforcement,
    routers_ledger,
    routers_packets,
    routers_read,
    routers_webhooks,
)
from frostgate.api._common import storage_call
from frostgate.api.context import Services
from frostgate.api.direct import DirectRoutes, direct_handlers
from frostgate.api.feed_notifier import FeedNotifier
from frostgate.api.heavy import HeavyReads
from frostgate.api.openapi import body_fields, bodyless, complete_openapi, query_names
from frostgate.config import Settings, get_settings
from frostgate.decisions import DecisionService
from frostgate.decisions.service import KnownEvents
from frostgate.decisions.windows import MemoryWindowStore, RedisWindowStore, WindowStore
from frostgate.delivery import DeliverySettings, DeliveryWorker
from frostgate.egress import EgressClient, EgressRefused, client_from_settings
from frostgate.enforcement.cursors import CursorBook
from frostgate.enforcement.index import MitigationIndex
from frostgate.enforcement.service import MitigationService
from frostgate.engine import load_policy
from frostgate.errors import ErrorCode, FrostGateError, error_body
from frostgate.jobs import Anchorer
from frostgate.jobs.witness import (
    WitnessPublisher,
    WitnessResult,
    failure_detail,
    parse_witness_urls,
)
from frostgate.security import ROUTES, AuthGate, JsonLimits, KeyAuthenticator, RouteTable
from frostgate.security.audit import AuditRecorder
from frostgate.security.client_ip import TrustedProxies
from frostgate.security.gate import GateLimits
from frostgate.security.hook_sources import HookVerifier
from frostgate.security.ledger_key import load_ledger_signer
from frostgate.security.peppers import load_peppers
from frostgate.security.ratelimit import (
    AddressRateLimit,
    BucketPolicy,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    WriteRateLimit,
)
from frostgate.security.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from frostgate.security.secret_box import SecretBox
from frostgate.store import Database, GroupCommitWriter, open_database
from frostgate.store import decisions as decisions_repo
from frostgate.store.catalog import all_streams
from frostgate.store.redis_pool import RedisProbe

__all__ = ["build_app"]

log = logging.getLogger("frostgate.app")

# The gate admits only declared (method, path) pairs, so a router-level 404/405 would
# mean the table and the routers disagree; both are answered as "no such resource".
_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.NOT_FOUND}


def _error(request: Request, code: ErrorCode, reason: str | None = None) -> Response:
    request_id = getattr(request.state, "request_id", "")
    return Response(
        content=error_body(code, request_id, reason),
        status_code=code.status,
        media_type="application/json",
    )


def _render_frostgate_error(request: Request, exc: FrostGateError) -> Response:
    if exc.code.status >= 500:
        log.warning("request failed: %s (%s)", exc.code.name, exc)
    return _error(request, exc.code, exc.reason)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_frostgate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FrostGateError)
        return _render_frostgate_error(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        return _error(request, ErrorCode.VALIDATION_FAILED)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _error(request, _HTTP_CODES.get(exc.status_code, ErrorCode.INTERNAL))

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        # Starlette answers an unhandled exception itself, in plain text, before the gate
        # can; this makes that answer the contract's INTERNAL body. The exception goes on
        # to the gate, which logs it with the request id.
        return _error(request, ErrorCode.INTERNAL)

    app.add_exception_handler(FrostGateError, on_frostgate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)


# The hot routes, called without FastAPI's per-request machinery (api/direct.py): the
# decision routes and what enforcement points poll.
_DIRECT_DECISIONS = (("POST", "/v1/defend"), ("POST", "/v1/ingest"))
_DIRECT_BOUNCERS = (
    ("GET", "/v1/mitigations/stream"),
    ("GET", "/crowdsec/v1/decisions/stream"),
    ("GET", "/crowdsec/v1/decisions"),
)

_MAINTENANCE_SECONDS = 5.0


async def _maintenance(
    svc: Services, audit: AuditRecorder, witnesses: WitnessPublisher | None = None
) -> None:
    """Every few seconds: write closed audit summaries, persist key usage, and anchor the
    ledger when the interval has passed or enough entries were committed (new
    checkpoints are handed to the witness publisher, which posts them on its own task)."""
    loop = asyncio.get_running_loop()
    last_anchor = loop.time()
    anchored_at_count = svc.writer.committed_entries
    while True:
        await asyncio.sleep(min(_MAINTENANCE_SECONDS, svc.settings.anchor_interval_seconds))
        try:
            await audit.flush()
            await anyio.to_thread.run_sync(svc.authenticator.flush_usage)
            await anyio.to_thread.run_sync(svc.bouncer_cursors.flush)
            grown = svc.writer.committed_entries - anchored_at_count
            due = loop.time() - last_anchor >= svc.settings.anchor_interval_seconds
            if due or grown >= svc.settings.anchor_every_entries:
                anchored_at_count = svc.writer.committed_entries
                last_anchor = loop.time()
                outcomes = await anyio.to_thread.run_sync(svc.anchorer.run_once)
                if witnesses is not None:
                    witnesses.submit(outcomes)
        except Exception:
            log.exception("maintenance pass failed; retrying next interval")


_EXPIRY_SECONDS = 1.0


async def _warm_mitigation_index(svc: Services) -> None:
    """Load every tenant's mitigation index before the server listens, so a bouncer's
    first startup pull after a restart is not the one that pays for it (100,000
    mitigations take a second or two to load) and the loaded index is frozen out of the
    collector's passes with the rest of the process's long-lived objects."""

    def tenants() -> list[str]:
        with svc.db.read.connect() as conn:
            return sorted({tenant for tenant, _ in all_streams(conn)})

    try:
        for tenant_id in await anyio.to_thread.run_sync(tenants):
            await svc.mitigation_index.view(tenant_id)
    except Exception:
        log.exception("warming the mitigation index failed; it loads on first use")


async def _expire_mitigations(svc: Services) -> None:
    """Every second mark expired mitigations, so delta pulls list them as deleted (reads
    already stop serving them at the instant of expiry)."""
    while True:
        await asyncio.sleep(_EXPIRY_SECONDS)
        try:
            await anyio.to_thread.run_sync(svc.mitigations.expire_due)
        except Exception:
            log.exception("mitigation expiry pass failed; retrying")


def _rate_limiter(settings: Settings) -> RateLimiter:
    if settings.rate_limit_backend == "redis":
        if not settings.redis_url:
            raise RuntimeError("FG_RATE_LIMIT_BACKEND=redis needs FG_REDIS_URL")
        return RedisRateLimiter(settings.redis_url)
    return MemoryRateLimiter()


def _window_store(settings: Settings) -> WindowStore:
    if settings.window_backend == "redis":
        if not settings.redis_url:
            raise RuntimeError("FG_WINDOW_BACKEND=redis needs FG_REDIS_URL")
        return RedisWindowStore(settings.redis_url)
    return MemoryWindowStore(max_keys=settings.window_max_keys)


def _replay_cache(settings: Settings) -> ReplayCache:
    if settings.replay_cache_backend == "redis":
        if not settings.redis_url:
            raise RuntimeError("FG_REPLAY_CACHE_BACKEND=redis needs FG_REDIS_URL")
        return RedisReplayCache(settings.redis_url)
    return MemoryReplayCache()


def _redis_probe(settings: Settings) -> RedisProbe | None:
    backends = (
        settings.rate_limit_backend,
        settings.window_backend,
        settings.replay_cache_backend,
    )
    return RedisProbe(settings.redis_url) if "redis" in backends else None


def _egress(settings: Settings, audit: AuditRecorder) -> EgressClient:
    def refused(tenant_id: str | None, refusal: EgressRefused) -> None:
        detail = {"reason": refusal.reason, "host": refusal.host}
        audit.record("egress_refused", "warning", tenant_id, detail=detail)
        if refusal.detail != refusal.reason and tenant_id is not None:
            # What DNS answered is the operator's to know, never the tenant's.
            precise = {"reason": refusal.detail, "host": refusal.host, "tenant_id": tenant_id}
            audit.record("egress_refused", "warning", None, detail=precise)

    return client_from_settings(settings, on_refusal=refused)


def _witnesses(
    settings: Settings, egress: EgressClient, audit: AuditRecorder
) -> WitnessPublisher | None:
    urls = parse_witness_urls(settings.anchor_witness_urls)
    if not urls:
        return None

    def failed(first: WitnessResult, failed_posts: int) -> None:
        detail = failure_detail(first, failed_posts)
        audit.record("witness_failed", "warning", None, detail=detail)

    return WitnessPublisher(egress, urls, on_failure=failed)


def _known_events(db: Database) -> KnownEvents:
    """Which event ids a tenant has stored, read in a worker thread (503 on failure)."""

    async def known(tenant_id: str, event_ids: list[str]) -> set[str]:
        def read() -> set[str]:
            with db.read.connect() as conn:
                return decisions_repo.known_event_ids(conn, tenant_id, event_ids)

        return await storage_call(read)

    return known


def build_app(settings: Settings | None = None) -> AuthGate:
    """Build the service. Refuses to build when a mounted route is not declared."""
    settings = settings or get_settings()
    db = open_database(settings.database_url)
    mitigation_index = MitigationIndex(db)
    mitigations = MitigationService(db, on_change=mitigation_index.mark_changed)
    writer = GroupCommitWriter(
        db.write,
        max_batch=settings.writer_max_batch,
        linger=settings.writer_linger_ms / 1000,
        alert_window=timedelta(seconds=settings.alert_aggregate_seconds),
        decision_hooks=[mitigations.record_from_decisions],
        commit_listeners=[mitigation_index.mark_changed],
    )
    policy = load_policy(settings.policy_path, settings.rule_pack_paths)
    authenticator = KeyAuthenticator(
        db, load_peppers(settings), cache_seconds=settings.key_cache_seconds
    )
    audit = AuditRecorder(writer, window_seconds=settings.audit_summary_seconds)
    secret_box = SecretBox(authenticator.peppers)
    egress = _egress(settings, audit)
    witnesses = _witnesses(settings, egress, audit)
    replay = _replay_cache(settings)
    windows = _window_store(settings)
    signer = load_ledger_signer(settings)
    anchorer = Anchorer(
        db,
        signer,
        origin_prefix=settings.ledger_origin,
        lock_path=settings.data_dir / "anchor.lock" if settings.is_sqlite else None,
        export_dir=settings.anchor_export_dir,
        pause_seconds=0.004,  # about 2 ms of re-deriving, then 4 ms for requests
    )
    limiter = _rate_limiter(settings)
    rate_limit = WriteRateLimit(
        limiter,
        per_key=BucketPolicy(
            settings.rate_limit_key_burst, settings.rate_limit_key_per_second, name="key"
        ),
        per_tenant=BucketPolicy(
            settings.rate_limit_tenant_burst, settings.rate_limit_tenant_per_second, name="tenant"
        ),
    )
    hook_rate_limit = AddressRateLimit(
        limiter,
        per_address=BucketPolicy(
            settings.hook_rate_limit_burst, settings.hook_rate_limit_per_second, name="address"
        ),
    )
    svc = Services(
        settings=settings,
        db=db,
        writer=writer,
        decisions=DecisionService(policy, writer, windows=windows, known=_known_events(db)),
        authenticator=authenticator,
        audit=audit,
        json_limits=JsonLimits(
            max_depth=settings.max_json_depth,
            max_array_items=settings.max_array_items,
            max_string_bytes=settings.max_string_bytes,
        ),
        feed=FeedNotifier(),
        ledger_signer=signer,
        anchorer=anchorer,
        secret_box=secret_box,
        egress=egress,
        hooks=HookVerifier(
            db, secret_box, replay, tolerance_seconds=settings.webhook_tolerance_seconds
        ),
        delivery=DeliveryWorker(
            db,
            egress,
            secret_box,
            settings=DeliverySettings(
                poll_seconds=settings.delivery_poll_seconds,
                lease=timedelta(seconds=settings.delivery_lease_seconds),
                deadline=timedelta(seconds=settings.delivery_deadline_seconds),
                concurrency=settings.delivery_concurrency,
                backoff_base_seconds=settings.delivery_backoff_base_seconds,
                backoff_cap_seconds=settings.delivery_backoff_cap_seconds,
            ),
            audit=audit,
        ),
        mitigations=mitigations,
        mitigation_index=mitigation_index,
        bouncer_cursors=CursorBook(db),
        heavy_reads=HeavyReads(),
        # Two per tenant; six in all, within the read pool's sixteen connections.
        stats_reads=HeavyReads(per_tenant=2, process_limit=6, what="statistics are"),
        live_streams=HeavyReads(
            per_tenant=settings.sse_streams_per_tenant,
            process_limit=settings.sse_streams_per_process,
            what="as many live streams as allowed are",
        ),
        redis_probe=_redis_probe(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        await _warm_mitigation_index(svc)
        # Everything built so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise walk the whole heap every few hundred
        # requests and stall the event loop for tens of milliseconds.
        gc.collect()
        gc.freeze()
        # A request allocates a few hundred tracked objects that nearly all die by
        # reference count; at CPython's default (a young pass every 700 net
        # allocations) the collector ran about 100 times a second under load and a full
        # pass every 1 to 2 s. Every 10,000 keeps a young pass at a few milliseconds.
        gc.set_threshold(10_000, 10, 10)
        maintenance = asyncio.create_task(_maintenance(svc, audit, witnesses))
        delivery = asyncio.create_task(svc.delivery.run())
        expiry = asyncio.create_task(_expire_mitigations(svc))
        tasks = [maintenance, delivery, expiry]
        if witnesses is not None:
            tasks.append(asyncio.create_task(witnesses.run()))
        try:
            yield
        finally:
            # Deliveries in flight are abandoned, not lost: their lease runs out and
            # they are sent again (same webhook-id) by the next worker to poll.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await svc.delivery.cancel_inflight()
            await audit.drain()
            await audit.flush(everything=True)
            await anyio.to_thread.run_sync(authenticator.flush_usage)
            await anyio.to_thread.run_sync(svc.bouncer_cursors.flush)
            writer.stop()
            await rate_limit.limiter.close()
            await replay.close()
            await windows.close()
            if svc.redis_probe is not None:
                await svc.redis_probe.close()
            db.dispose()

    app = FastAPI(
        title="FrostGate",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.services = svc
    _install_error_handlers(app)
    app.include_router(routers_decide.router)
    app.include_router(routers_read.router)
    app.include_router(routers_admin.router)
    app.include_router(routers_ledger.router)
    app.include_router(routers_packets.router)
    app.include_router(routers_webhooks.router)
    app.include_router(routers_enforcement.router)

    table = RouteTable(ROUTES)
    # The OpenAPI document lists every mounted operation (FastAPI's public view of its
    # routes). A route hidden from it would still be unreachable: the gate serves only
    # declared (method, path) pairs.
    mounted = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    mounted.append(("GET", app.openapi_url or "/openapi.json"))
    problems = table.check_mounted(mounted)
    if problems:
        raise RuntimeError("route table disagrees with mounted routes: " + "; ".join(problems))
    app.openapi_schema = complete_openapi(app.openapi(), table)
    svc.body_fields = body_fields(app.openapi_schema)
    handlers = direct_handlers(routers_decide.router, _DIRECT_DECISIONS)
    handlers.update(direct_handlers(routers_enforcement.router, _DIRECT_BOUNCERS))
    direct = DirectRoutes(app, handlers, _render_frostgate_error)
    return AuthGate(
        direct,
        routes=table,
        authenticator=authenticator,
        audit=audit,
        limits=GateLimits(
            max_body_bytes=settings.max_body_bytes,
            max_header_count=settings.max_header_count,
            max_header_bytes=settings.max_header_bytes,
            max_path_bytes=settings.max_path_bytes,
            max_query_bytes=settings.max_query_bytes,
            request_timeout_seconds=settings.request_timeout_seconds,
            max_concurrent_requests=settings.max_concurrent_requests,
            max_concurrent_per_address=settings.max_concurrent_per_address,
            max_concurrent_per_tenant=settings.max_concurrent_per_tenant,
        ),
        trusted_proxies=TrustedProxies.parse(settings.trusted_proxy_cidrs),
        query_names=query_names(app.openapi_schema),
        bodyless=bodyless(app.openapi_schema),
        cors_origins=frozenset(o.strip() for o in settings.cors_origins.split(",") if o.strip()),
        rate_limit=rate_limit,
        address_rate_limit=hook_rate_limit,
        honeypots=frozenset(p.strip() for p in settings.honeypot_paths.split(",") if p.strip()),
    )
