"""The per-process service container the routers reach through ``request.app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from frostgate.api.feed_notifier import FeedNotifier
from frostgate.config import Settings
from frostgate.decisions import DecisionService
from frostgate.jobs import Anchorer
from frostgate.ledger.note import Signer
from frostgate.security import JsonLimits, KeyAuthenticator
from frostgate.security.audit import AuditRecorder
from frostgate.store import Database, GroupCommitWriter

__all__ = ["Services", "services"]


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


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
