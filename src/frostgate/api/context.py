"""The per-process service container the routers reach through ``request.app.state``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import Request

from frostgate.api.feed_notifier import FeedNotifier
from frostgate.api.heavy import HeavyReads
from frostgate.config import Settings
from frostgate.decisions import DecisionService
from frostgate.delivery import DeliveryWorker
from frostgate.egress import EgressClient
from frostgate.enforcement.cursors import CursorBook
from frostgate.enforcement.index import MitigationIndex
from frostgate.enforcement.service import MitigationService
from frostgate.jobs import Anchorer
from frostgate.ledger.note import Signer
from frostgate.security import JsonLimits, KeyAuthenticator
from frostgate.security.audit import AuditRecorder
from frostgate.security.hook_sources import HookVerifier
from frostgate.security.secret_box import SecretBox
from frostgate.store import Database, GroupCommitWriter
from frostgate.store.redis_pool import RedisProbe

__all__ = ["Services", "app_services", "services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    writer: GroupCommitWriter
    decisions: DecisionService
    authenticator: KeyAuthenticator
    audit: AuditRecorder
    json_limits: JsonLimits
    feed: FeedNotifier
    ledger_signer: Signer
    anchorer: Anchorer
    secret_box: SecretBox
    egress: EgressClient
    hooks: HookVerifier
    delivery: DeliveryWorker
    mitigations: MitigationService
    mitigation_index: MitigationIndex
    bouncer_cursors: CursorBook
    heavy_reads: HeavyReads
    stats_reads: HeavyReads
    live_streams: HeavyReads
    # (method, path) -> the body fields a closed-body route takes (the served OpenAPI).
    body_fields: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # Set when any state lives in Redis (rate limits, windows, replay ids): readiness
    # then includes Redis.
    redis_probe: RedisProbe | None = None


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def app_services(app: object) -> Services:
    """The services of a built application (what :func:`frostgate.api.build_app`
    returns: the gate around the FastAPI app), for tests and harnesses."""
    inner = app
    while not hasattr(inner, "state"):
        inner = inner.app  # type: ignore[attr-defined]
    svc: Services = inner.state.services
    return svc
