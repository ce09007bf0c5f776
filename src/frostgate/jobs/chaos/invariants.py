"""The invariants a chaos scenario must leave standing, judged from real storage.

Each check reads the database the service wrote (never the service's own answers about
itself) and returns an :class:`Invariant` saying whether it held and, if not, which
events broke it:

* every acknowledged (2xx) event is stored exactly once;
* no event is half-stored: every stored decision is inside its ledger head, the chain
  has no gap, an alert-level decision has its outbox row (or was folded into one: the
  outbox's counts add up to the alert-level decisions), and nothing was stored that no
  sensor sent;
* the ledger verifies (:func:`frostgate.decisions.ledger_audit.verify_database`, the
  ``frostgate verify`` machinery, checkpoints included);
* the outbox delivered everything to a receiver that recovered (:func:`outbox_state`);
* anchoring resumed: the newest signed checkpoint covers the whole decision stream
  (:func:`anchored_sizes`);
* bouncers are told exactly the active mitigations that are stored
  (:func:`active_mitigations` against the service's startup stream).

Refusals are allowed only while the fault lasts (:func:`refused_only_during`). An event
that was refused or got no answer may be stored or absent; the checks above
decide whether what is stored is whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from frostgate.config import Settings
from frostgate.decisions.ledger_audit import verify_database
from frostgate.jobs.chaos.load import Outcome
from frostgate.store import Database, schema
from frostgate.store.entries import decision_stream
from frostgate.store.tenancy import bind_delivery, bind_tenant

__all__ = [
    "ALERT_LEVELS",
    "Invariant",
    "OutboxState",
    "active_mitigations",
    "anchored_sizes",
    "check_ledger",
    "check_stored",
    "outbox_state",
    "refused_only_during",
]

#: Threat levels an endpoint created with ``min_threat_level=high`` is alerted for.
ALERT_LEVELS = frozenset({"high", "critical"})
_SHOWN = 5

_d = schema.decisions
_o = schema.outbox


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    held: bool
    detail: str


def _named(ids: Collection[str]) -> str:
    shown = sorted(ids)[:_SHOWN]
    more = f" (+{len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else ""
    return ", ".join(shown) + more


def check_stored(
    db: Database,
    tenant_id: str,
    outcomes: Sequence[Outcome],
    sent: Collection[str],
    *,
    endpoint_id: str,
) -> list[Invariant]:
    """The storage invariants for ``tenant_id``, whose only sensor is the chaos load.

    ``outcomes`` are the requests judged now; ``sent`` every event id the run has ever
    posted for the tenant (a stored id outside it is a phantom).
    """
    with db.read.connect() as conn, conn.begin():
        bind_tenant(conn, tenant_id)
        rows = conn.execute(
            sa.select(_d.c.event_id, _d.c.seq, _d.c.threat_level).where(_d.c.tenant_id == tenant_id)
        ).all()
        head = conn.execute(
            sa.select(schema.ledger_heads.c.size).where(
                schema.ledger_heads.c.stream == decision_stream(tenant_id)
            )
        ).scalar_one_or_none()
    with db.read.connect() as conn, conn.begin():
        bind_delivery(conn)
        folded = int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(_o.c.count), 0)).where(
                    _o.c.tenant_id == tenant_id,
                    _o.c.endpoint_id == endpoint_id,
                    _o.c.event_type == "decision.alert",
                )
            ).scalar_one()
        )
    stored = Counter(str(r.event_id) for r in rows)
    acknowledged = {o.event_id for o in outcomes if o.acknowledged}
    missing = {e for e in acknowledged if stored[e] == 0}
    repeated = {e for e in acknowledged if stored[e] > 1}
    once = Invariant(
        "acknowledged events stored exactly once",
        not missing and not repeated,
        f"{len(acknowledged)} acknowledged, all stored once"
        if not missing and not repeated
        else f"missing: {_named(missing) or '-'}; stored twice or more: {_named(repeated) or '-'}",
    )
    size = int(head or 0)
    seqs = sorted(int(r.seq) for r in rows)
    problems: list[str] = []
    if seqs != list(range(len(seqs))) or size != len(seqs):
        problems.append(f"{len(seqs)} decisions but ledger head size {size} (or a gap in seq)")
    alerting = sum(1 for r in rows if r.threat_level in ALERT_LEVELS)
    if int(folded) != alerting:
        problems.append(f"{alerting} alert-level decisions but the outbox accounts for {folded}")
    phantoms = set(stored) - set(sent)
    if phantoms:
        problems.append(f"stored but never sent: {_named(phantoms)}")
    unanswered = {o.event_id for o in outcomes if not o.acknowledged} - acknowledged
    whole = Invariant(
        "no event half-stored",
        not problems,
        "; ".join(problems)
        or (
            f"{len(seqs)} decisions whole (ledger head, outbox); of {len(unanswered)} "
            f"unacknowledged, {sum(1 for e in unanswered if stored[e])} stored whole"
        ),
    )
    return [once, whole]


def check_ledger(settings: Settings) -> Invariant:
    """Every stream re-derived from its rows and checked against its signed checkpoints."""
    report = verify_database(settings)
    bad = [s for s in report.streams if not s.ok]
    if bad:
        first = bad[0]
        detail = f"{first.stream}: {first.reason} at index {first.first_bad_index}"
    else:
        checked = sum(s.checked for s in report.streams)
        detail = f"{len(report.streams)} streams, {checked} entries verified"
    return Invariant("ledger verifies", not bad, detail)


@dataclass(frozen=True, slots=True)
class OutboxState:
    """The chaos endpoint's outbox rows by status, and the ids of the delivered ones."""

    by_status: Counter[str]
    delivered_ids: frozenset[str]

    @property
    def settled(self) -> bool:
        return set(self.by_status) <= {"delivered"}


def outbox_state(db: Database, tenant_id: str, endpoint_id: str) -> OutboxState:
    with db.read.connect() as conn, conn.begin():
        bind_delivery(conn)
        rows = conn.execute(
            sa.select(_o.c.message_id, _o.c.status).where(
                _o.c.tenant_id == tenant_id, _o.c.endpoint_id == endpoint_id
            )
        ).all()
    return OutboxState(
        Counter(str(r.status) for r in rows),
        frozenset(str(r.message_id) for r in rows if r.status == "delivered"),
    )


def active_mitigations(db: Database, tenant_id: str) -> frozenset[str]:
    """Ids of the tenant's stored mitigations in force now (what a bouncer must block)."""
    m = schema.mitigations
    with db.read.connect() as conn, conn.begin():
        bind_tenant(conn, tenant_id)
        rows = conn.execute(
            sa.select(m.c.mitigation_id).where(
                m.c.tenant_id == tenant_id,
                m.c.status == "active",
                m.c.expires_at > sa.func.now(),
            )
        ).all()
    return frozenset(str(r.mitigation_id) for r in rows)


def anchored_sizes(db: Database, tenant_id: str) -> tuple[int, int]:
    """(ledger head size, newest checkpoint size) of the tenant's decision stream."""
    stream = decision_stream(tenant_id)
    c = schema.checkpoints
    with db.read.connect() as conn, conn.begin():
        bind_tenant(conn, tenant_id)
        head = conn.execute(
            sa.select(schema.ledger_heads.c.size).where(schema.ledger_heads.c.stream == stream)
        ).scalar_one_or_none()
        newest = conn.execute(
            sa.select(sa.func.max(c.c.size)).where(c.c.stream == stream)
        ).scalar_one_or_none()
    return int(head or 0), int(newest or 0)


def refused_only_during(
    outcomes: Sequence[Outcome], started: float, ended: float, grace: float
) -> Invariant:
    """A request that did not overlap the fault (from ``started`` to ``ended`` plus
    ``grace``, monotonic seconds) must have been acknowledged: the service may fail only
    while something it needs is down."""
    late = ended + grace
    outside = [
        o for o in outcomes if not o.acknowledged and (o.ended < started or o.started > late)
    ]
    during = sum(1 for o in outcomes if not o.acknowledged) - len(outside)
    if outside:
        first = min(outside, key=lambda o: o.started)
        return Invariant(
            "refused only while the fault lasted",
            False,
            f"{len(outside)} refused outside the fault, the first sent "
            f"{first.started - started:+.1f} s from its start: {first.status} {first.error_code}",
        )
    return Invariant(
        "refused only while the fault lasted",
        True,
        f"{during} refused or unanswered during the fault, none outside it",
    )
