"""The engine's value types: the normalized event and the decision it produces.

All of them are frozen slotted dataclasses: they are built on the hot path (tens of
thousands per second), must be cheap to create, and must not change after the decision
is hashed into the ledger. ``as_dict`` builds the JSON-ready body the service encodes once
with orjson; it returns fresh lists/dicts so a caller can never mutate a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

__all__ = [
    "THREAT_LEVELS",
    "Decision",
    "Event",
    "GatingDecision",
    "Mitigation",
    "ThreatLevel",
    "TieD",
]

ThreatLevel = Literal["none", "low", "medium", "high", "critical"]
GatingDecision = Literal["allow", "require_approval"]

#: The threat levels in increasing order of severity (the order is part of the contract:
#: consumers compare levels by their index here).
THREAT_LEVELS: Final[tuple[ThreatLevel, ...]] = ("none", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Event:
    """A sensor event after normalization: every field has one spelling and one type.

    ``claimed_tenant`` is whatever ``tenant_id`` the body carried. The engine never uses
    it; it is kept only so the service can refuse a body that names a tenant other than
    the API key's (there is no default or ``unknown`` tenant anywhere).

    ``payload`` is the sensor's raw payload object behind a read-only proxy. It is excluded
    from ``hash()`` (a mapping is not hashable) but takes part in equality.
    """

    event_id: str | None
    claimed_tenant: str | None
    source: str
    event_type: str
    src_ip: str | None
    src_net: str | None  # src_ip for IPv4; its /64 (``2001:db8:1:2::/64``) for IPv6
    user: str | None
    failures: int | None
    timestamp: datetime | None
    persona: str | None
    classification: str | None
    ecs_category: tuple[str, ...]
    ecs_outcome: str | None
    payload: Mapping[str, Any] = field(hash=False)
    # What normalization did not use, in words (a second address, a lower count, a value
    # that does not parse): repeated in the decision's summary, never dropped in silence.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mitigation:
    """One action a rule asks enforcement points to take (e.g. ``block_ip`` on an address)."""

    action: str
    target: str | None
    reason: str
    confidence: float
    ttl_seconds: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "confidence": self.confidence,
            "ttl_seconds": self.ttl_seconds,
        }


@dataclass(frozen=True, slots=True)
class TieD:
    """Doctrine outcome: rules of engagement, impact estimates and the gating decision.

    It is always present in a decision (never null), so a consumer can rely on
    ``gating_decision`` and on the policy fingerprint that produced the decision.
    """

    roe_applied: bool
    disruption_limited: bool
    ao_required: bool
    persona: str | None
    classification: str | None
    service_impact: float
    user_impact: float
    gating_decision: GatingDecision
    policy_version: str
    policy_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "roe_applied": self.roe_applied,
            "disruption_limited": self.disruption_limited,
            "ao_required": self.ao_required,
            "persona": self.persona,
            "classification": self.classification,
            "service_impact": self.service_impact,
            "user_impact": self.user_impact,
            "gating_decision": self.gating_decision,
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine decided about one event under one policy at one instant.

    ``clock_drift_ms`` is the true signed difference ``now - event.timestamp`` (positive
    when the event is in the past), ``None`` when the event carried no timestamp. It is
    never zeroed: the audited system hid stale or future-dated events by reporting 0.
    """

    threat_level: ThreatLevel
    score: int
    anomaly_score: float
    ai_adversarial_score: float
    rules_triggered: tuple[str, ...]
    mitigations: tuple[Mitigation, ...]
    tie_d: TieD
    clock_drift_ms: int | None
    clock_stale: bool
    policy_hash: str
    summary: str

    @property
    def actionable(self) -> bool:
        """True when the decision carries at least one mitigation (what the feed shows)."""
        return bool(self.mitigations)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready decision body (the service adds event and tenant identity)."""
        rules = list(self.rules_triggered)
        return {
            "threat_level": self.threat_level,
            "score": self.score,
            "anomaly_score": self.anomaly_score,
            "ai_adversarial_score": self.ai_adversarial_score,
            "rules_triggered": rules,
            "mitigations": [m.as_dict() for m in self.mitigations],
            "explain": {
                "summary": self.summary,
                "rules_triggered": list(rules),
                "score": self.score,
                "anomaly_score": self.anomaly_score,
                "tie_d": self.tie_d.as_dict(),
            },
            "tie_d": self.tie_d.as_dict(),
            "clock_drift_ms": self.clock_drift_ms,
            "clock_stale": self.clock_stale,
            "policy_hash": self.policy_hash,
        }


@dataclass(frozen=True, slots=True)
class WindowProbe:
    """One windowed rule's observation of an event, for the window state store.

    ``key`` identifies the counter (rule and grouping value, e.g. the source IP);
    ``member`` is the value counted distinctly (e.g. the user) or None for plain counts
    (then the event id is the member, so a replayed event is not counted twice).
    ``weight`` is how many the event counts for in a plain count (``weight: failures``:
    an event reporting four failed logins is four of them), at most the threshold.
    """

    rule_id: str
    key: str
    member: str | None
    seconds: int
    threshold: int
    cooldown_seconds: int
    weight: int = 1


@dataclass(frozen=True, slots=True)
class WindowState:
    """What the store saw for one probe: the count in the window, and whether this event
    crossed the threshold outside a cooldown (``armed``: propose the mitigation now)."""

    count: int
    armed: bool
