"""The group-commit writer: many requests, one transaction, one fsync.

Requests hand fully evaluated decisions to :meth:`GroupCommitWriter.write` and wait.
A single thread drains the queue, writes every waiting decision in one transaction
(decision rows, their ledger leaves and chain links, the ledger heads, the alert
messages they cause in the outbox) and only after
the commit returns wakes the waiting requests. A request is therefore acknowledged only
once its decision is durable; if the commit fails, every request in the batch fails
with ``STORAGE_UNAVAILABLE`` and nothing of the batch is stored (fail closed).

A batch holds every request already waiting and, under concurrency, lingers up to
``linger`` seconds (default 2 ms) for as many requests as lately waited on one commit
(the peak of the last quarter to half a second): a commit costs about 17 statements
whatever its size, and with 16 clients gathering them all cut the CPU per decision by
a quarter (``docs/benchmarks.md``). A client that has been alone for half a second
never waits, and a batch never waits while more requests are queued.

The thread is the only place the event loop hands work to; the hot path hops threads
exactly once. It keeps one connection from commit to commit (checking one out of the
pool for every batch, and on PostgreSQL pinging it, was about a tenth of the writer's
work on single-event requests) and throws it away after any failed commit, so a broken
connection costs at most one refused batch (SQLAlchemy itself replaces a connection it
sees was cut) and the next batch starts on a fresh one.

Idempotency (same tenant + event_id) is settled here, inside the same transaction that
would insert the row, so two racing requests cannot both insert.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import operator
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from frostgate.errors import ErrorCode, FrostGateError
from frostgate.ledger import entry_leaf_hash
from frostgate.store import schema
from frostgate.store.audit import PendingAudit, append_audit
from frostgate.store.bulk import insert_rows
from frostgate.store.entries import decision_entry, decision_flags, decision_stream
from frostgate.store.outbox import DEFAULT_AGGREGATE_WINDOW, enqueue_decision_alerts
from frostgate.store.streams import StreamAppender
from frostgate.store.tenancy import bind_tenant

__all__ = [
    "DecisionHook",
    "GroupCommitWriter",
    "PendingDecision",
    "ProposalOutcomes",
    "WriteResult",
]

log = logging.getLogger("frostgate.writer")


@dataclass(slots=True)
class PendingDecision:
    """One evaluated event, ready to be stored. ``response_json`` is the exact answer."""

    tenant_id: str
    event_id: str
    source: str
    event_type: str
    src_ip: str | None
    threat_level: str
    score: int
    rules: list[str]
    actions: list[str]
    policy_hash: str
    created_at: datetime
    request_json: str
    response_json: str
    # (action, target, reason, ttl_seconds) the engine proposed, for enforcement
    proposals: tuple[tuple[str, str | None, str, int], ...] = ()
    requires_approval: bool = False
    key_id: str | None = None


#: What became of each proposed mitigation of a decision, in the order of its
#: ``proposals``: ``(status, status_reason, ttl_seconds)``, by event id.
ProposalOutcomes = dict[str, list[tuple[str, str | None, int]]]

# Called inside the commit with each tenant's decisions about to be stored, before their
# rows and ledger entries are built: enforcement admits their proposed mitigations in
# the same transaction and says what became of each, which the stored answer then says
# too (the decision's ``mitigations[].status``).
DecisionHook = Callable[
    [sa.Connection, str, list[PendingDecision], datetime], ProposalOutcomes | None
]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to one pending decision: stored, an idempotent replay, or a conflict."""

    status: Literal["created", "replayed", "conflict", "quota_exceeded"]
    response_json: str
    seq: int | None


@dataclass(slots=True)
class _Job:
    items: Sequence[PendingDecision | PendingAudit]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[WriteResult]]
    results: list[WriteResult | None] = field(default_factory=list)
    failure: BaseException | None = None


_STOP = object()
# A batch this large already spreads a commit's fixed cost thin: it does not wait.
_LINGER_ITEMS = 256


class _RecentPeak:
    """How many requests a batch can expect to gather: the most that waited on one
    commit lately (in this window of ``window`` seconds or the one before).

    Under steady load every request in flight ends up waiting on one commit, so the
    peak converges to the number of concurrent clients, and a batch that waits for that
    many waits only as long as they take to arrive. After a stall that queued hundreds,
    or when clients leave, the peak falls within two windows; until then a batch waits
    at most the linger, and only when nothing else is queued.
    """

    def __init__(self, window: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._started = clock()
        self._current = 0
        self._previous = 0

    def expected(self) -> int:
        self._roll()
        return max(self._current, self._previous)

    def observe(self, waiting: int) -> None:
        self._roll()
        self._current = max(self._current, waiting)

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._started
        if elapsed >= self._window:
            self._previous = self._current if elapsed < 2 * self._window else 0
            self._current = 0
            self._started = now


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _diff(previous: Any, item: PendingDecision) -> dict[str, Any] | None:
    """What changed since the previous decision of the same tenant+source+event_type."""
    if previous is None:
        return None
    diff: dict[str, Any] = {"previous_event_id": previous.event_id}
    if previous.threat_level != item.threat_level:
        diff["threat_level"] = [previous.threat_level, item.threat_level]
    if previous.score != item.score:
        diff["score"] = [previous.score, item.score]
    before = set(orjson.loads(previous.rules))
    after = set(item.rules)
    if before != after:
        diff["rules_added"] = sorted(after - before)
        diff["rules_removed"] = sorted(before - after)
    return diff


class GroupCommitWriter:
    """One per process. ``start()`` before use, ``stop()`` drains and joins the thread."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        max_batch: int = 4096,
        linger: float = 0.002,
        alert_window: timedelta = DEFAULT_AGGREGATE_WINDOW,
        decision_hooks: Sequence[DecisionHook] = (),
        commit_listeners: Sequence[Callable[[str], None]] = (),
    ) -> None:
        self._engine = engine
        self._hooks = tuple(decision_hooks)
        self._listeners = tuple(commit_listeners)
        self._max_batch = max_batch
        self._linger = linger
        self._waiters = _RecentPeak()
        self._alert_window = alert_window
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sa.Connection | None = None  # the writer thread's own
        # Admission and the stop marker go through one lock, so no job can be queued
        # behind the marker, where nobody would ever answer it.
        self._admission = threading.Lock()
        self._stopping = False
        self.committed_entries = 0

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fg-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with self._admission:
                self._stopping = True
                self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def write(self, items: Sequence[PendingDecision | PendingAudit]) -> list[WriteResult]:
        """Store ``items`` (in order) and return one result each once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[WriteResult]] = loop.create_future()
        with self._admission:
            if self._stopping or self._thread is None or not self._thread.is_alive():
                raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "writer not running")
            self._queue.put(_Job(items=items, loop=loop, future=future))
        return await future

    # -- writer thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                assert isinstance(first, _Job)
                jobs, stop_after = self._gather(first)
                self._waiters.observe(len(jobs))
                self._commit_and_answer(jobs)
                if stop_after:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _discard_connection(self) -> None:
        """After a failed commit the connection's state is unknown (the server may have
        gone away mid-transaction): it never goes back to the pool."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()
            conn.close()
        except sa.exc.SQLAlchemyError:
            log.warning("discarding the writer's failed connection raised", exc_info=True)

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The batch that starts with ``first``, and whether the writer was told to stop.

        Every job already queued joins. While fewer requests wait on the batch than the
        recent peak (:class:`_RecentPeak`), and it is small, it lingers for more until
        ``linger`` seconds after it started."""
        jobs = [first]
        count = len(first.items)
        expected = self._waiters.expected()
        deadline = time.monotonic() + self._linger
        while count < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if len(jobs) >= expected or count >= _LINGER_ITEMS or left <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if nxt is _STOP:
                return jobs, True
            assert isinstance(nxt, _Job)
            jobs.append(nxt)
            count += len(nxt.items)
        return jobs, False

    def _commit_and_answer(self, jobs: list[_Job]) -> None:
        try:
            self._commit(jobs)
        except sa.exc.SQLAlchemyError:
            log.exception("group commit failed; %d requests fail closed", len(jobs))
            self._discard_connection()
            self._settle([(job, FrostGateError(ErrorCode.STORAGE_UNAVAILABLE)) for job in jobs])
            return
        except Exception as exc:
            log.exception("group commit raised unexpectedly")
            self._discard_connection()
            self._settle([(job, exc) for job in jobs])
            return
        self.committed_entries += sum(
            1
            for job in jobs
            if job.failure is None
            for r in job.results
            if r is not None and r.status == "created"
        )
        for tenant_id in {
            item.tenant_id
            for job in jobs
            if job.failure is None
            for item in job.items
            if isinstance(item, PendingDecision)
        }:
            for listener in self._listeners:
                try:
                    listener(tenant_id)  # after the commit: what they then read includes it
                except Exception:
                    # The batch is committed and must be answered; a listener's readers
                    # refresh on their own within their bound (the mitigation index:
                    # 0.25 s), so a failing listener costs freshness, never an answer.
                    log.exception("commit listener failed for tenant %s", tenant_id)
        self._settle(
            [(job, job.failure or [r for r in job.results if r is not None]) for job in jobs]
        )

    @staticmethod
    def _settle(outcomes: list[tuple[_Job, list[WriteResult] | BaseException]]) -> None:
        """Wake the waiting requests: one hand-off per event loop for the whole batch
        (each ``call_soon_threadsafe`` writes to the loop's wake-up pipe)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any]]] = {}
        for job, outcome in outcomes:
            by_loop.setdefault(job.loop, []).append((job, outcome))

        def resolve(batch: list[tuple[_Job, list[WriteResult] | BaseException]]) -> None:
            for job, outcome in batch:
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(resolve, batch)
            except RuntimeError:
                # The waiting event loop is gone (its process is shutting down). The batch
                # is committed or rolled back either way; there is nobody left to answer.
                log.warning("a writer client's event loop closed before its answer")

    def _commit(self, jobs: list[_Job]) -> None:
        decisions: dict[str, list[tuple[_Job, int]]] = {}
        audits: list[tuple[_Job, int]] = []
        for job in jobs:
            job.results = [None] * len(job.items)
            for position, item in enumerate(job.items):
                if isinstance(item, PendingAudit):
                    audits.append((job, position))
                else:
                    decisions.setdefault(item.tenant_id, []).append((job, position))
        # With more than one party in the batch, each tenant's part runs in a savepoint:
        # a failure in one tenant's writes (or its hooks) fails that tenant's requests
        # only, not the others' that share the commit.
        isolate = len(decisions) + bool(audits) > 1
        conn = self._connection()
        with conn.begin():
            for tenant_id, members in decisions.items():
                if not isolate:
                    bind_tenant(conn, tenant_id)
                    self._write_decisions(conn, tenant_id, members)
                    continue
                try:
                    with conn.begin_nested():
                        bind_tenant(conn, tenant_id)
                        self._write_decisions(conn, tenant_id, members)
                except Exception as exc:
                    log.exception("tenant %s's writes failed; its requests fail closed", tenant_id)
                    failure = (
                        FrostGateError(ErrorCode.STORAGE_UNAVAILABLE)
                        if isinstance(exc, sa.exc.SQLAlchemyError)
                        else exc
                    )
                    for job, _ in members:
                        job.failure = failure
            if audits:
                pending = [job.items[pos] for job, pos in audits]
                append_audit(conn, [p for p in pending if isinstance(p, PendingAudit)])
                for job, pos in audits:
                    job.results[pos] = WriteResult(status="created", response_json="", seq=None)

    def _write_decisions(
        self, conn: sa.Connection, tenant_id: str, members: list[tuple[_Job, int]]
    ) -> None:
        items = [(job, pos, job.items[pos]) for job, pos in members]
        # The stream head first: on PostgreSQL it is a row lock, which another process
        # writing this tenant holds until it commits. What is read after it (the event
        # ids already stored, the quota used) then includes that commit. Read before it,
        # two workers both took a retried event for new: the second insert broke the
        # whole commit (503 for every request in it) and the quota was overrun.
        appender = StreamAppender(conn, decision_stream(tenant_id), tenant_id)
        known: dict[str, tuple[str, str]] = {}
        event_ids = [item.event_id for _, _, item in items]
        for chunk_start in range(0, len(event_ids), 500):
            chunk = event_ids[chunk_start : chunk_start + 500]
            for prior in conn.execute(_KNOWN, {"tenant": tenant_id, "ids": chunk}):
                known[prior.event_id] = (_sha256(prior.request_json), prior.response_json)

        first = items[0][2]
        assert isinstance(first, PendingDecision)
        day = first.created_at.astimezone(UTC).date()
        allowance = self._quota_allowance(conn, tenant_id, day)
        # Which items are new (the rest are replays, conflicts or over the quota); an
        # event_id twice in one batch is answered by its first copy's outcome.
        creating: list[tuple[_Job, int, PendingDecision, str]] = []
        copies: list[tuple[_Job, int, int, str]] = []
        first_copy: dict[str, int] = {}
        for job, pos, item in items:
            assert isinstance(item, PendingDecision)
            request_sha = _sha256(item.request_json)
            seen = known.get(item.event_id)
            if seen is not None:
                status: Literal["replayed", "conflict"] = (
                    "replayed" if seen[0] == request_sha else "conflict"
                )
                job.results[pos] = WriteResult(status=status, response_json=seen[1], seq=None)
                continue
            index = first_copy.get(item.event_id)
            if index is not None:
                copies.append((job, pos, index, request_sha))
                continue
            if allowance is not None and len(creating) >= allowance:
                job.results[pos] = WriteResult(status="quota_exceeded", response_json="", seq=None)
                continue
            first_copy[item.event_id] = len(creating)
            creating.append((job, pos, item, request_sha))
        if not creating:
            return
        now = datetime.now(UTC)
        outcomes: ProposalOutcomes = {}
        for hook in self._hooks:
            outcomes.update(hook(conn, tenant_id, [c[2] for c in creating], now) or {})
        lineage: dict[tuple[str, str], Any] = {}
        rows: list[dict[str, Any]] = []
        for job, pos, pending, request_sha in creating:
            item = _with_outcomes(pending, outcomes.get(pending.event_id))
            key = (item.source, item.event_type)
            if key not in lineage:
                lineage[key] = conn.execute(
                    _LINEAGE,
                    {"tenant": tenant_id, "source": item.source, "event_type": item.event_type},
                ).first()
            diff = _diff(lineage[key], item)
            actionable, changed = decision_flags(item.actions, diff)
            row: dict[str, Any] = {
                "tenant_id": tenant_id,
                "seq": appender.next_index,
                "event_id": item.event_id,
                "source": item.source,
                "event_type": item.event_type,
                "src_ip": item.src_ip,
                "threat_level": item.threat_level,
                "score": item.score,
                "rules": orjson.dumps(item.rules).decode(),
                "actions": orjson.dumps(item.actions).decode(),
                "actionable": actionable,
                "changed": changed,
                "diff": None if diff is None else orjson.dumps(diff).decode(),
                "policy_hash": item.policy_hash,
                "created_at": item.created_at,
                "request_json": item.request_json,
                "request_sha256": request_sha,
                "response_json": item.response_json,
                "response_sha256": _sha256(item.response_json),
            }
            leaf = entry_leaf_hash(decision_entry(row))
            link = appender.append(leaf)
            row["leaf_hash"] = leaf.hex()
            row["prev_chain_hash"] = link.prev_chain.hex()
            row["chain_hash"] = link.chain.hex()
            rows.append(row)
            lineage[key] = _LineageView(item.event_id, item.threat_level, item.score, row["rules"])
            job.results[pos] = WriteResult(
                status="created", response_json=item.response_json, seq=link.index
            )
        for job, pos, index, request_sha in copies:
            original = rows[index]
            status = "replayed" if original["request_sha256"] == request_sha else "conflict"
            job.results[pos] = WriteResult(
                status=status, response_json=original["response_json"], seq=None
            )
        insert_rows(conn, _d, _DECISION_COLUMNS, list(map(_decision_values, rows)))
        appender.save()
        self._count_usage(conn, tenant_id, day, len(rows))
        enqueue_decision_alerts(conn, tenant_id, rows, now, self._alert_window)

    @staticmethod
    def _quota_allowance(conn: sa.Connection, tenant_id: str, day: date) -> int | None:
        """How many more events the tenant may store today; None when unlimited."""
        quota = conn.execute(_QUOTA, {"tenant": tenant_id}).scalar()
        if quota is None:
            return None
        used = conn.execute(_USED, {"tenant": tenant_id, "day": day}).scalar()
        return max(0, int(quota) - int(used or 0))

    @staticmethod
    def _count_usage(conn: sa.Connection, tenant_id: str, day: date, count: int) -> None:
        statement = _USAGE_PG if conn.dialect.name == "postgresql" else _USAGE_SQLITE
        conn.execute(statement, {"tenant": tenant_id, "day": day, "n": count})


def _with_outcomes(
    item: PendingDecision, outcomes: list[tuple[str, str | None, int]] | None
) -> PendingDecision:
    """``item`` saying what became of each mitigation it proposed: each one in the
    answer gains ``status`` and ``status_reason`` (which also says when the envelope
    shortened its TTL; ``ttl_seconds`` stays the engine's proposal), and ``actions``
    keeps those in force or waiting for approval. The answer said ``block_ip 127.0.0.1``
    for a block refused as never enforceable, and the feed called it taken."""
    if not outcomes:
        return item
    body = orjson.loads(item.response_json)
    kept = []
    for mitigation, (status, reason, ttl) in zip(body["mitigations"], outcomes, strict=True):
        if reason is None and ttl < mitigation["ttl_seconds"]:
            reason = f"ttl shortened to {ttl} s by the envelope"
        mitigation["status"] = status
        mitigation["status_reason"] = reason
        if status in ("active", "pending"):
            kept.append(f"{mitigation['action']}:{mitigation['target']}")
    return dataclasses.replace(item, response_json=orjson.dumps(body).decode(), actions=kept)


# Statements built once: constructing SQLAlchemy expressions per batch costs more than
# executing them on the small batches of single-event requests.
_d = schema.decisions
_u = schema.tenant_usage
_DECISION_COLUMNS = tuple(c.name for c in _d.columns)
_decision_values = operator.itemgetter(*_DECISION_COLUMNS)  # a row's values, in that order
_KNOWN = sa.select(_d.c.event_id, _d.c.request_json, _d.c.response_json).where(
    _d.c.tenant_id == sa.bindparam("tenant"),
    _d.c.event_id.in_(sa.bindparam("ids", expanding=True)),
)
_LINEAGE = (
    sa.select(_d.c.event_id, _d.c.threat_level, _d.c.score, _d.c.rules)
    .where(
        _d.c.tenant_id == sa.bindparam("tenant"),
        _d.c.source == sa.bindparam("source"),
        _d.c.event_type == sa.bindparam("event_type"),
    )
    .order_by(_d.c.seq.desc())
    .limit(1)
)
_QUOTA = sa.select(schema.tenants.c.daily_event_quota).where(
    schema.tenants.c.tenant_id == sa.bindparam("tenant")
)
_USED = sa.select(_u.c.events).where(
    _u.c.tenant_id == sa.bindparam("tenant"), _u.c.day == sa.bindparam("day")
)


def _usage_upsert(insert: Any) -> Any:
    return insert.values(
        tenant_id=sa.bindparam("tenant"), day=sa.bindparam("day"), events=sa.bindparam("n")
    ).on_conflict_do_update(
        index_elements=[_u.c.tenant_id, _u.c.day],
        set_={"events": _u.c.events + sa.bindparam("n")},
    )


_USAGE_PG = _usage_upsert(pg_insert(_u))
_USAGE_SQLITE = _usage_upsert(sqlite_insert(_u))


@dataclass(frozen=True, slots=True)
class _LineageView:
    """The columns of a just-written row that the next diff in the same batch needs."""

    event_id: str
    threat_level: str
    score: int
    rules: str
