"""Active mitigations: created from decisions, added, approved, lifted, expired.

Decisions' proposals become mitigation rows inside the decision's own transaction (a
:data:`~frostgate.store.writer.DecisionHook`, run before the decision is built into its
ledger entry, so the stored answer says what became of each), admitted under the
tenant's envelope:
doctrine gating, broad ranges and the blast-radius cap leave them ``pending`` until a
*different* key approves them; allowlisted targets and actions outside the envelope are
recorded as ``rejected`` and never enforced. A target that already has an active or
pending mitigation of the same action is not proposed twice. Every manual change is
audited in the transaction that makes it. After each committed change the process's
:class:`~frostgate.enforcement.index.MitigationIndex` is told which tenant moved (for
decisions, by the writer's commit listener: telling it before the commit would let a
refresh read the old state and then consider itself current).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from frostgate.enforcement.envelope import (
    BLOCKING_ACTIONS,
    DEFAULT_ENVELOPE,
    Envelope,
    EnvelopeInvalid,
    admit,
    never_enforced,
)
from frostgate.enforcement.targets import ACTIONS, Target, TargetInvalid, parse_target
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security.admin import Actor, audit_change
from frostgate.store import Database, PendingDecision
from frostgate.store import keys as key_repo
from frostgate.store import mitigations as repo
from frostgate.store.catalog import all_streams
from frostgate.store.outbox import enqueue_notice
from frostgate.store.tenancy import bind_tenant
from frostgate.store.writer import ProposalOutcomes

__all__ = ["MAX_MANUAL_TTL", "MitigationService"]

log = logging.getLogger("frostgate.enforcement")

MAX_MANUAL_TTL = 90 * 86_400
_LIVE = ("active", "pending")
# A proposal's outcome until it is known (every one is set before it is returned).
_UNSET: tuple[str, str | None, int] = ("advisory", "nothing to enforce", 0)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MitigationService:
    def __init__(
        self,
        db: Database,
        *,
        on_change: Callable[[str], None] = lambda _tenant: None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self._on_change = on_change
        self._clock = clock

    # -- from decisions (writer thread, inside the decision transaction) ---------------

    def record_from_decisions(
        self,
        conn: sa.Connection,
        tenant_id: str,
        items: list[PendingDecision],
        now: datetime,
    ) -> ProposalOutcomes:
        """Admit the decisions' proposals (a :data:`~frostgate.store.writer.DecisionHook`)
        and say what became of each: ``active``, ``pending`` (with why), ``rejected``
        (with why), or ``advisory`` for an action with nothing to enforce (``alert``)."""
        outcomes: ProposalOutcomes = {}
        proposals = [(item, i, p) for item in items for i, p in enumerate(item.proposals)]
        if not proposals:
            return outcomes
        envelope = self._envelope(conn, tenant_id)
        since = now - timedelta(seconds=envelope.blast_radius_window_seconds)
        recent = repo.count_recent_blocks(conn, tenant_id, BLOCKING_ACTIONS, since)
        parsed: list[tuple[PendingDecision, int, str, Target, str, int]] = []
        for item, index, (action, raw_target, reason, ttl) in proposals:
            slots = outcomes.setdefault(item.event_id, [_UNSET] * len(item.proposals))
            try:
                parsed.append((item, index, action, parse_target(action, raw_target), reason, ttl))
            except TargetInvalid as exc:
                # ``alert`` and other advice have nothing to enforce; an enforceable
                # action whose target cannot be parsed is refused, and says why.
                if action in ACTIONS:
                    slots[index] = ("rejected", str(exc), ttl)
                else:
                    slots[index] = ("advisory", "nothing to enforce", ttl)
        # What each (action, target) already is: one live mitigation per pair.
        live: dict[tuple[str, str], tuple[str, str | None]] = {
            pair: (status, f"an earlier mitigation of this target is {status}")
            for pair, status in repo.live_statuses(
                conn, tenant_id, {t.value for _, _, _, t, _, _ in parsed}, _LIVE
            ).items()
        }
        rows: list[dict[str, Any]] = []
        over_cap = 0
        for item, index, action, target, reason, ttl in parsed:
            pair = (action, target.value)
            if pair in live:
                status, why = live[pair]
                outcomes[item.event_id][index] = (status, why, ttl)
                continue
            admission = admit(
                envelope,
                action,
                target,
                ttl,
                needs_approval=item.requires_approval,
                recent_blocks=recent,
            )
            # A later proposal for the pair in this batch is answered as it would be in a
            # later commit: refused for the same reason, or held by this mitigation.
            live[pair] = (
                (admission.status, admission.reason)
                if admission.status == "rejected"
                else (
                    admission.status,
                    f"an earlier mitigation of this target is {admission.status}",
                )
            )
            outcomes[item.event_id][index] = (
                admission.status,
                admission.reason,
                admission.ttl_seconds,
            )
            if admission.status == "active" and action in BLOCKING_ACTIONS:
                recent += 1
            over_cap += admission.over_blast_radius
            rows.append(
                _new_row(
                    action,
                    target,
                    reason,
                    admission.ttl_seconds,
                    status=admission.status,
                    status_reason=admission.reason,
                    origin="decision",
                    origin_event_id=item.event_id,
                    proposed_by=item.key_id,
                    now=now,
                )
            )
        repo.insert_mitigations(conn, tenant_id, rows)
        if over_cap:
            enqueue_notice(
                conn,
                tenant_id,
                "mitigation.blast_radius",
                {
                    "queued_pending": over_cap,
                    "max_blocks": envelope.blast_radius_max,
                    "window_seconds": envelope.blast_radius_window_seconds,
                },
                now,
            )
        return outcomes

    @staticmethod
    def _envelope(conn: sa.Connection, tenant_id: str) -> Envelope:
        stored = repo.get_envelope(conn, tenant_id)
        return DEFAULT_ENVELOPE if stored is None else Envelope.parse(stored)

    # -- analysts ----------------------------------------------------------------------

    def add(
        self,
        tenant_id: str,
        action: str,
        value: object,
        ttl_seconds: int,
        reason: str,
        *,
        actor: Actor,
    ) -> repo.MitigationRow:
        try:
            target = parse_target(action, value)
        except TargetInvalid as exc:
            raise FrostGateError(ErrorCode.MITIGATION_INVALID, str(exc), reason=str(exc)) from exc
        if not 60 <= ttl_seconds <= MAX_MANUAL_TTL:
            raise FrostGateError(ErrorCode.MITIGATION_INVALID, "ttl", reason="ttl out of range")
        now = self._clock()
        with self._db.write.begin() as conn:
            bind_tenant(conn, tenant_id)
            envelope = self._envelope(conn, tenant_id)
            since = now - timedelta(seconds=envelope.blast_radius_window_seconds)
            admission = admit(
                envelope,
                action,
                target,
                ttl_seconds,
                needs_approval=False,
                recent_blocks=repo.count_recent_blocks(conn, tenant_id, BLOCKING_ACTIONS, since),
            )
            row = _new_row(
                action,
                target,
                reason,
                admission.ttl_seconds,
                status=admission.status,
                status_reason=admission.reason,
                origin="manual",
                origin_event_id=None,
                proposed_by=actor.key_id,
                now=now,
            )
            repo.insert_mitigations(conn, tenant_id, [row])
            created = repo.get_mitigation(conn, tenant_id, row["mitigation_id"])
            if created is None:  # inserted in this very transaction: the store is broken
                raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "mitigation not read back")
            audit_change(
                conn,
                actor,
                "mitigation_added",
                tenant_id,
                now,
                {"mitigation_id": created.mitigation_id, "status": created.status},
            )
        self._on_change(tenant_id)
        return created

    def approve(self, tenant_id: str, mitigation_id: str, *, actor: Actor) -> repo.MitigationRow:
        now = self._clock()
        with self._db.write.begin() as conn:
            current = repo.get_mitigation(conn, tenant_id, mitigation_id)
            if current is None:
                raise FrostGateError(ErrorCode.NOT_FOUND)
            if current.status != "pending":
                raise FrostGateError(ErrorCode.MITIGATION_STATE, current.status)
            if self._same_holder(conn, tenant_id, current.proposed_by, actor.key_id):
                raise FrostGateError(ErrorCode.APPROVAL_BY_PROPOSER)
            # Approval lifts the doctrine, broad-range and cap holds, never the envelope:
            # an action removed or a target allowlisted since the proposal stays out.
            envelope = self._envelope(conn, tenant_id)
            target = Target(current.scope, current.value)
            if (
                current.action not in envelope.allowed_actions
                or envelope.allowlisted(target)
                or never_enforced(target) is not None
            ):
                reason = "outside the tenant's envelope now"
                raise FrostGateError(ErrorCode.MITIGATION_INVALID, reason, reason=reason)
            moved = repo.transition(
                conn,
                tenant_id,
                mitigation_id,
                from_status=("pending",),
                values={
                    "status": "active",
                    "status_reason": None,
                    "activated_at": now,
                    "expires_at": now + timedelta(seconds=current.ttl_seconds),
                    "approved_by": actor.key_id,
                },
            )
            if moved is None:
                raise FrostGateError(ErrorCode.MITIGATION_STATE, "changed concurrently")
            audit_change(
                conn, actor, "mitigation_approved", tenant_id, now, {"mitigation_id": mitigation_id}
            )
        self._on_change(tenant_id)
        return moved

    @staticmethod
    def _same_holder(
        conn: sa.Connection, tenant_id: str, proposer: str | None, approver: str | None
    ) -> bool:
        """Whether the approving key is, for the two-key rule, the proposer's: the key
        itself, a key the proposer issued (minted, or rotated into), directly or through
        keys it issued, or the same key across rotations, in either direction (a
        successor stands for its predecessor, and the predecessor keeps working through
        its grace period)."""
        if proposer is None or approver is None:
            return False
        if proposer in key_repo.ancestry(conn, tenant_id, approver):
            return True
        return approver in key_repo.ancestry(conn, tenant_id, proposer, issuers=False)

    def lift(self, tenant_id: str, mitigation_id: str, *, actor: Actor) -> repo.MitigationRow:
        now = self._clock()
        with self._db.write.begin() as conn:
            moved = repo.transition(
                conn,
                tenant_id,
                mitigation_id,
                from_status=_LIVE,
                values={"status": "lifted", "ended_at": now, "lifted_by": actor.key_id},
            )
            if moved is None:
                if repo.get_mitigation(conn, tenant_id, mitigation_id) is None:
                    raise FrostGateError(ErrorCode.NOT_FOUND)
                raise FrostGateError(ErrorCode.MITIGATION_STATE, "not live")
            audit_change(
                conn, actor, "mitigation_lifted", tenant_id, now, {"mitigation_id": mitigation_id}
            )
        self._on_change(tenant_id)
        return moved

    def expire_due(self) -> int:
        """Mark every active mitigation past its expiry as expired (all tenants)."""
        now = self._clock()
        expired = 0
        with self._db.read.connect() as conn:
            tenants = sorted({tenant for tenant, _stream in all_streams(conn)})
        for tenant_id in tenants:
            with self._db.read.connect() as conn:
                due = repo.due_expiries(conn, tenant_id, now)
            if not due:
                continue  # no write transaction (and no SQLite write lock) when idle
            with self._db.write.begin() as conn:
                moved = repo.expire(conn, tenant_id, due, now)
            if moved:
                expired += moved
                self._on_change(tenant_id)
        return expired

    # -- envelope ----------------------------------------------------------------------

    def envelope(self, tenant_id: str) -> Envelope:
        with self._db.read.connect() as conn:
            return self._envelope(conn, tenant_id)

    def set_envelope(self, tenant_id: str, data: dict[str, Any], *, actor: Actor) -> Envelope:
        try:
            envelope = Envelope.parse(data)
        except EnvelopeInvalid as exc:
            raise FrostGateError(ErrorCode.VALIDATION_FAILED, str(exc), reason=str(exc)) from exc
        now = self._clock()
        with self._db.write.begin() as conn:
            repo.set_envelope(conn, tenant_id, envelope.as_dict(), now)
            audit_change(conn, actor, "envelope_set", tenant_id, now, envelope.as_dict())
        return envelope


def _new_row(
    action: str,
    target: Target,
    reason: str,
    ttl_seconds: int,
    *,
    status: str,
    status_reason: str | None,
    origin: str,
    origin_event_id: str | None,
    proposed_by: str | None,
    now: datetime,
) -> dict[str, Any]:
    active = status == "active"
    return {
        "mitigation_id": repo.new_mitigation_id(),
        "action": action,
        "scope": target.scope,
        "value": target.value,
        "reason": reason[:1000],
        "origin": origin,
        "origin_event_id": origin_event_id,
        "status": status,
        "status_reason": status_reason,
        "ttl_seconds": ttl_seconds,
        "created_at": now,
        "activated_at": now if active else None,
        "expires_at": now + timedelta(seconds=ttl_seconds) if active else None,
        "ended_at": now if status == "rejected" else None,
        "proposed_by": proposed_by,
        "approved_by": None,
        "lifted_by": None,
    }
