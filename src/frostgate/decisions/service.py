"""Turning raw events into stored, ledgered decisions."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import uuid_utils

from frostgate.decisions.windows import NOTHING_OBSERVED, Observation, WindowStore
from frostgate.engine import Event, Policy, WindowProbe, WindowState, evaluate, normalize
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.store import GroupCommitWriter, PendingDecision, WriteResult
from frostgate.store.entries import format_timestamp

__all__ = ["DecisionService", "Outcome"]

log = logging.getLogger("frostgate.decisions")

#: ``(tenant_id, event_ids) -> the ones already stored``, read outside the writer.
KnownEvents = Callable[[str, list[str]], Awaitable[set[str]]]


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
        windows: WindowStore | None = None,
        known: KnownEvents | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy = policy
        self._writer = writer
        self._windows = windows
        self._known = known
        self._clock = clock

    def admit(self, tenant_id: str, raw: Any, *, require_event_id: bool) -> tuple[Event, str]:
        """Normalize one raw event and settle its id; no I/O. Raises FrostGateError."""
        if not isinstance(raw, dict):
            raise FrostGateError(
                ErrorCode.EVENT_INVALID, "event is not an object", reason="event must be an object"
            )
        event = normalize(raw)
        if event.claimed_tenant is not None and event.claimed_tenant != tenant_id:
            raise FrostGateError(ErrorCode.TENANT_MISMATCH, "event names another tenant")
        if event.event_id is None:
            if require_event_id:
                raise FrostGateError(ErrorCode.EVENT_ID_REQUIRED)
            return event, str(uuid_utils.uuid7())
        return event, event.event_id

    async def observe(
        self, tenant_id: str, event_id: str, probes: Sequence[WindowProbe], now: datetime
    ) -> Observation:
        """Record the event in the windows of the stateful rules it matches (``probes``:
        :meth:`~frostgate.engine.Policy.window_probes` of the event)."""
        if not probes or self._windows is None:
            return NOTHING_OBSERVED
        return await self._windows.observe(tenant_id, event_id, probes, now)

    async def _write(
        self, tenant_id: str, pending: list[PendingDecision], observed: list[Observation]
    ) -> list[WriteResult]:
        """Write, then take back the window observations of events that were not stored:
        a replay, a conflict or a refused quota must not count towards a burst."""
        try:
            results = await self._writer.write(pending)
        except FrostGateError:  # nothing stored (503): nothing counted either
            await self._retract(tenant_id, observed)
            raise
        unstored = [o for o, r in zip(observed, results, strict=True) if r.status != "created"]
        kept = [o for o, r in zip(observed, results, strict=True) if r.status == "created"]
        try:
            await self._retract(tenant_id, unstored, kept)
        except FrostGateError:
            # The created events are committed and must be answered as stored; what could
            # not be taken back only over-counts (a burst seen a little early), never
            # hides one. Logged, not raised.
            log.warning("window observations of %d unstored events kept", len(unstored))
        return results

    async def _stored_among(self, tenant_id: str, watched: list[str]) -> set[str]:
        """Which of ``watched`` (the batch's event ids the windows would observe) are
        already stored.
        Observed, a resent event armed a rule that its own refusal then disarmed, after
        the real events behind it in the batch had been decided in that cooldown: a
        burst resent with one old event was never blocked. (Between this read and the
        write another process may store one; the take-back covers that case.)"""
        if self._known is None or self._windows is None or not watched:
            return set()
        return await self._known(tenant_id, watched)

    async def _retract(
        self, tenant_id: str, observations: list[Observation], kept: Sequence[Observation] = ()
    ) -> None:
        """Take ``observations`` back, except members that a kept (stored) observation
        of this batch recorded too: in a Redis set one member is shared, and removing it
        erased a stored event's user from a distinct count."""
        if self._windows is None:
            return
        shared = {(m.key, member) for o in kept for m in o.marks for member in m.members}
        for observation in observations:
            marks = tuple(
                dataclasses.replace(
                    mark, members=tuple(x for x in mark.members if (mark.key, x) not in shared)
                )
                for mark in observation.marks
            )
            if marks:
                await self._windows.retract(tenant_id, Observation(observation.states, marks))

    def build(
        self,
        tenant_id: str,
        raw: dict[str, Any],
        event: Event,
        event_id: str,
        *,
        now: datetime,
        windows: dict[str, WindowState] | None,
        key_id: str | None,
    ) -> PendingDecision:
        """Evaluate an admitted event (pure given ``windows``) into what will be stored."""
        decision = evaluate(event, self.policy, now=now, windows=windows)
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
        now = self._clock()
        event, event_id = self.admit(tenant_id, raw, require_event_id=False)
        observed = await self.observe(tenant_id, event_id, self.policy.window_probes(event), now)
        pending = self.build(
            tenant_id, raw, event, event_id, now=now, windows=observed.states, key_id=key_id
        )
        (result,) = await self._write(tenant_id, [pending], [observed])
        return Outcome(result.status, pending.event_id, result.response_json.encode())

    async def decide_batch(
        self, tenant_id: str, events: Sequence[Any], *, key_id: str | None = None
    ) -> list[Outcome]:
        """A batch (``/v1/ingest``): every event needs an event_id; all or nothing is
        validated before anything is written, and the batch is written in one commit."""
        now = self._clock()
        admitted = []
        for index, raw in enumerate(events):
            try:
                admitted.append(self.admit(tenant_id, raw, require_event_id=True))
            except FrostGateError as exc:
                raise _in_batch(exc, index) from exc
        seen: dict[str, int] = {}
        for index, (_, event_id) in enumerate(admitted):
            first = seen.setdefault(event_id, index)
            if first != index:
                raise FrostGateError(
                    ErrorCode.DUPLICATE_EVENT_IN_BATCH,
                    reason=f"events[{index}] repeats the event_id of events[{first}]",
                )
        probes = [self.policy.window_probes(event) for event, _ in admitted]
        stored = await self._stored_among(
            tenant_id, [event_id for (_, event_id), p in zip(admitted, probes, strict=True) if p]
        )
        pending = []
        observed = []
        for raw, (event, event_id), event_probes in zip(events, admitted, probes, strict=True):
            if event_id in stored:  # a replay or a conflict: it will count for nothing
                observation = NOTHING_OBSERVED
            else:
                observation = await self.observe(tenant_id, event_id, event_probes, now)
            observed.append(observation)
            pending.append(
                self.build(
                    tenant_id,
                    raw,
                    event,
                    event_id,
                    now=now,
                    windows=observation.states,
                    key_id=key_id,
                )
            )
        results = await self._write(tenant_id, pending, observed)
        return [
            Outcome(r.status, p.event_id, r.response_json.encode())
            for p, r in zip(pending, results, strict=True)
        ]


def _in_batch(exc: FrostGateError, index: int) -> FrostGateError:
    """``exc`` raised for item ``index`` of a batch, with a reason that says which item:
    one bad event refuses the whole batch, so the sensor must be told which one it was."""
    where = f"events[{index}]"
    reason = where if exc.reason is None else f"{where}: {exc.reason}"
    return FrostGateError(exc.code, str(exc), reason=reason)
