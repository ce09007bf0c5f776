"""Turning raw events into stored, ledgered decisions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import uuid_utils

from frostgate.engine import Policy, evaluate, normalize
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import GroupCommitWriter, PendingDecision
from frostgate.store.entries import format_timestamp

__all__ = ["DecisionService", "Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one event: the exact stored response bytes and what happened."""

    status: Literal["created", "replayed", "conflict", "quota_exceeded"]
    event_id: str
    response: bytes


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DecisionService:
    def __init__(
        self,
        policy: Policy,
        writer: GroupCommitWriter,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy = policy
        self._writer = writer
        self._clock = clock

    def prepare(
        self,
        tenant_id: str,
        raw: Any,
        *,
        require_event_id: bool,
        now: datetime,
        key_id: str | None = None,
    ) -> PendingDecision:
        """Normalize and evaluate one raw event; no I/O. Raises FrostGateError."""
        if not isinstance(raw, dict):
            raise FrostGateError(ErrorCode.EVENT_INVALID, "event is not an object")
        event = normalize(raw)
        if event.claimed_tenant is not None and event.claimed_tenant != tenant_id:
            raise FrostGateError(ErrorCode.TENANT_MISMATCH, "event names another tenant")
        if event.event_id is None:
            if require_event_id:
                raise FrostGateError(ErrorCode.EVENT_ID_REQUIRED)
            event_id = str(uuid_utils.uuid7())
        else:
            event_id = event.event_id
        decision = evaluate(event, self.policy, now=now)
        body: dict[str, Any] = {
            "event_id": event_id,
            "tenant_id": tenant_id,
            "source": event.source,
            "event_type": event.event_type,
            "decided_at": format_timestamp(now),
        }
        body.update(decision.as_dict())
        return PendingDecision(
            tenant_id=tenant_id,
            event_id=event_id,
            source=event.source,
            event_type=event.event_type,
            src_ip=event.src_ip,
            threat_level=decision.threat_level,
            score=decision.score,
            rules=list(decision.rules_triggered),
            actions=[f"{m.action}:{m.target}" for m in decision.mitigations],
            policy_hash=self.policy.hash,
            created_at=now,
            request_json=orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode(),
            response_json=orjson.dumps(body).decode(),
            proposals=tuple(
                (m.action, m.target, m.reason, m.ttl_seconds) for m in decision.mitigations
            ),
            requires_approval=decision.tie_d.gating_decision == "require_approval",
            key_id=key_id,
        )

    async def decide(self, tenant_id: str, raw: Any, *, key_id: str | None = None) -> Outcome:
        """One event (``/v1/defend``): the event_id is optional and assigned if absent.
        ``key_id`` is the submitting key: the proposer of any mitigation it causes."""
        pending = self.prepare(
            tenant_id, raw, require_event_id=False, now=self._clock(), key_id=key_id
        )
        (result,) = await self._writer.write([pending])
        return Outcome(result.status, pending.event_id, result.response_json.encode())

    async def decide_batch(
        self, tenant_id: str, events: Sequence[Any], *, key_id: str | None = None
    ) -> list[Outcome]:
        """A batch (``/v1/ingest``): every event needs an event_id; all or nothing is
        validated before anything is written, and the batch is written in one commit."""
        now = self._clock()
        pending = [
            self.prepare(tenant_id, raw, require_event_id=True, now=now, key_id=key_id)
            for raw in events
        ]
        seen: set[str] = set()
        for item in pending:
            if item.event_id in seen:
                raise FrostGateError(ErrorCode.DUPLICATE_EVENT_IN_BATCH)
            seen.add(item.event_id)
        results = await self._writer.write(pending)
        return [
            Outcome(r.status, p.event_id, r.response_json.encode())
            for p, r in zip(pending, results, strict=True)
        ]
