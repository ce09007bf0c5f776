"""Alert endpoint administration: validated, sealed, audited in one transaction.

The URL is checked against the egress policy (and the tenant's host allowlist) when it
is saved, so a forbidden destination is refused with its reason at once (the router
records the refusal as an audit event); the worker
checks it again, with DNS, on every delivery. The endpoint's ``whsec_`` secret is
generated here, returned once and stored sealed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from frostgate.egress import EgressClient, EgressRefused
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security.admin import Actor, audit_change
from frostgate.security.secret_box import SecretBox
from frostgate.security.webhook_signature import new_secret
from frostgate.store import Database
from frostgate.store import webhooks as repo
from frostgate.store.outbox import ALERT_LEVELS
from frostgate.store.tenancy import bind_tenant, serialize_tenant_change

__all__ = [
    "MAX_ENDPOINTS_PER_TENANT",
    "EndpointSpec",
    "create_endpoint",
    "delete_endpoint",
    "set_enabled",
]

MAX_EVENT_TYPES = 50
#: Every live endpoint is one more delivery per alert, sharing the delivery workers.
MAX_ENDPOINTS_PER_TENANT = 50


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    description: str = ""
    min_threat_level: str = "high"
    event_types: tuple[str, ...] = field(default_factory=tuple)
    tripwires: bool = True
    enabled: bool = True
    max_per_minute: int = 60

    def validate(self) -> None:
        if self.min_threat_level not in ALERT_LEVELS[1:]:
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, "min_threat_level")
        if len(self.description) > 200 or len(self.event_types) > MAX_EVENT_TYPES:
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, "description or event_types")
        if any(not t or len(t) > 256 for t in self.event_types):
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, "event_types entries")
        if not 1 <= self.max_per_minute <= 10_000:
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, "max_per_minute")


def create_endpoint(
    db: Database,
    box: SecretBox,
    egress: EgressClient,
    tenant_id: str,
    spec: EndpointSpec,
    *,
    actor: Actor,
) -> tuple[repo.Endpoint, str]:
    """The stored endpoint and its secret (the only time the secret is shown)."""
    spec.validate()
    now = datetime.now(UTC)
    endpoint_id = "whe_" + secrets.token_hex(12)
    secret = new_secret()
    sealed = box.seal(secret, bound_to=repo.secret_binding(tenant_id, endpoint_id))
    with db.write.begin() as conn:
        bind_tenant(conn, tenant_id)
        serialize_tenant_change(conn, tenant_id, "endpoints")
        if repo.count_endpoints(conn, tenant_id) >= MAX_ENDPOINTS_PER_TENANT:
            reason = (
                f"a tenant holds at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints: "
                "delete one first"
            )
            raise FrostGateError(ErrorCode.LIMIT_REACHED, reason, reason=reason)
        try:
            egress.policy.destination(spec.url, repo.egress_hosts(conn, tenant_id))
        except EgressRefused as refused:
            raise FrostGateError(
                ErrorCode.WEBHOOK_URL_REFUSED, refused.reason, reason=refused.reason
            ) from refused
        endpoint = repo.Endpoint(
            endpoint_id=endpoint_id,
            tenant_id=tenant_id,
            url=spec.url,
            secret_pepper_id=sealed.pepper_id,
            secret_sealed=sealed.ciphertext,
            min_threat_level=spec.min_threat_level,
            event_types=spec.event_types,
            tripwires=spec.tripwires,
            enabled=spec.enabled,
            max_per_minute=spec.max_per_minute,
            description=spec.description,
            created_at=now,
        )
        repo.insert_endpoint(conn, endpoint, created_by=actor.key_id)
        audit_change(
            conn,
            actor,
            "webhook_created",
            tenant_id,
            now,
            # the host only: webhook URLs often carry a capability token in their path
            {"endpoint_id": endpoint_id, "host": egress.policy.destination(spec.url).host},
        )
    return endpoint, secret


def delete_endpoint(db: Database, tenant_id: str, endpoint_id: str, *, actor: Actor) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if not repo.delete_endpoint(conn, tenant_id, endpoint_id, now):
            return False
        audit_change(conn, actor, "webhook_deleted", tenant_id, now, {"endpoint_id": endpoint_id})
        return True


def set_enabled(
    db: Database, tenant_id: str, endpoint_id: str, enabled: bool, *, actor: Actor
) -> bool:
    now = datetime.now(UTC)
    with db.write.begin() as conn:
        if not repo.set_endpoint_enabled(conn, tenant_id, endpoint_id, enabled):
            return False
        kind = "webhook_enabled" if enabled else "webhook_disabled"
        audit_change(conn, actor, kind, tenant_id, now, {"endpoint_id": endpoint_id})
        return True
