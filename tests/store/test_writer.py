"""The group-commit writer: contiguous chains under concurrency, survival of vanished
clients, failing closed when it cannot run, gathering concurrent requests into one
commit without making a lone client wait."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from frostgate.errors import FrostGateError
from frostgate.security import admin
from frostgate.store import Database, GroupCommitWriter, PendingDecision, WriteResult, schema
from frostgate.store.writer import _RecentPeak


def pending(event_id: str, tenant: str = "acme", **changes: Any) -> PendingDecision:
    """A decision ready for the writer, as the decision service would hand it over."""
    fields: dict[str, Any] = {
        "tenant_id": tenant,
        "event_id": event_id,
        "source": "s",
        "event_type": "t",
        "src_ip": None,
        "threat_level": "none",
        "score": 0,
        "rules": ["default_allow"],
        "actions": [],
        "policy_hash": "0" * 64,
        "created_at": datetime.now(UTC),
        "request_json": f'{{"event_id":"{event_id}"}}',
        "response_json": f'{{"event_id":"{event_id}"}}',
    }
    return PendingDecision(**{**fields, **changes})


@pytest.fixture
def writer(db: Database) -> GroupCommitWriter:
    admin.create_tenant(db, "acme")
    admin.create_tenant(db, "globex")
    w = GroupCommitWriter(db.write)
    w.start()
    yield w  # type: ignore[misc]
    w.stop()


def test_concurrent_writers_get_one_contiguous_chain_per_tenant(
    db: Database, writer: GroupCommitWriter
) -> None:
    async def burst() -> None:
        await asyncio.gather(
            *(writer.write([pending(f"e{i}", "acme" if i % 3 else "globex")]) for i in range(300))
        )

    asyncio.run(burst())
    d = schema.decisions
    with db.read.connect() as conn:
        for tenant in ("acme", "globex"):
            seqs = (
                conn.execute(sa.select(d.c.seq).where(d.c.tenant_id == tenant).order_by(d.c.seq))
                .scalars()
                .all()
            )
            assert seqs == list(range(len(seqs)))
        assert conn.execute(sa.select(sa.func.count()).select_from(d)).scalar_one() == 300


def test_writer_survives_a_client_whose_event_loop_closed(
    db: Database, writer: GroupCommitWriter
) -> None:
    started = threading.Event()
    in_flight: list[asyncio.Future[object]] = []

    def vanish() -> None:
        async def fire_and_leave() -> None:
            in_flight.append(asyncio.ensure_future(writer.write([pending("orphan")])))
            started.set()

        asyncio.run(fire_and_leave())  # the loop closes with the write in flight

    thread = threading.Thread(target=vanish)
    thread.start()
    thread.join()
    assert started.is_set()
    # The writer keeps serving others.
    results = asyncio.run(asyncio.wait_for(writer.write([pending("after")]), timeout=10))
    assert results[0].status == "created"


def test_write_fails_closed_when_the_writer_is_not_running(db: Database) -> None:
    stopped = GroupCommitWriter(db.write)
    with pytest.raises(FrostGateError) as caught:
        asyncio.run(stopped.write([pending("x")]))
    assert caught.value.code.name == "STORAGE_UNAVAILABLE"


def test_one_tenants_failure_does_not_fail_the_others_in_the_same_commit(db: Database) -> None:
    """A hook (or write) failing for one tenant fails that tenant's requests only."""
    for tenant in ("acme", "globex", "slow"):
        admin.create_tenant(db, tenant)
    hold = threading.Event()

    def hook(conn: sa.Connection, tenant_id: str, stored: object, now: datetime) -> None:
        if tenant_id == "slow":
            hold.wait(5)  # keeps the writer busy so the next two requests share a commit
        if tenant_id == "globex":
            raise RuntimeError("enforcement bug")

    w = GroupCommitWriter(db.write, decision_hooks=[hook])
    w.start()

    async def run() -> list[object]:
        first = asyncio.ensure_future(w.write([pending("s1", "slow")]))
        await asyncio.sleep(0.1)
        both = asyncio.gather(
            w.write([pending("a1", "acme")]),
            w.write([pending("g1", "globex")]),
            return_exceptions=True,
        )
        await asyncio.sleep(0.1)
        hold.set()
        await first
        return list(await both)

    try:
        acme, globex = asyncio.run(run())
    finally:
        w.stop()
    assert not isinstance(acme, BaseException)
    assert isinstance(globex, RuntimeError)
    d = schema.decisions
    with db.read.connect() as conn:
        stored = set(conn.execute(sa.select(d.c.event_id)).scalars())
    assert stored == {"s1", "a1"}


@contextmanager
def commits_counted(db: Database) -> Iterator[list[int]]:
    """Counts the transactions committed on the write engine meanwhile."""
    counted = [0]

    def count(conn: sa.Connection) -> None:
        counted[0] += 1

    sa.event.listen(db.write, "commit", count)
    try:
        yield counted
    finally:
        sa.event.remove(db.write, "commit", count)


# Far longer than any test waits for an answer: a write that lingered until it ran out
# would time out first.
LONG_LINGER = 60.0


def test_a_lone_client_is_answered_without_lingering(db: Database) -> None:
    admin.create_tenant(db, "acme")
    w = GroupCommitWriter(db.write, linger=LONG_LINGER)
    w.start()

    async def one_after_another() -> None:
        for i in range(5):
            await asyncio.wait_for(w.write([pending(f"lone{i}")]), timeout=10)

    try:
        with commits_counted(db) as commits:
            asyncio.run(one_after_another())
    finally:
        w.stop()
    assert commits[0] == 5


class SlowTenantWriter:
    """A writer whose commits hold while they include tenant ``slow``, so that requests
    can be queued behind one commit at will (deterministic batches)."""

    def __init__(self, db: Database, linger: float) -> None:
        for tenant in ("acme", "slow"):
            admin.create_tenant(db, tenant)
        self.hold = threading.Event()
        self.writer = GroupCommitWriter(db.write, linger=linger, decision_hooks=[self._hook])
        self.writer.start()

    def _hook(self, conn: sa.Connection, tenant_id: str, stored: object, now: datetime) -> None:
        if tenant_id == "slow":
            self.hold.wait(10)

    async def four_wait_on_one_commit(self, tag: str) -> None:
        """Four requests queue behind a held commit and are then committed together:
        four waited on one commit."""
        self.hold.clear()
        first = asyncio.ensure_future(self.writer.write([pending(f"{tag}-s", "slow")]))
        await asyncio.sleep(0.1)
        four = asyncio.gather(*(self.writer.write([pending(f"{tag}-{i}")]) for i in range(4)))
        await asyncio.sleep(0.1)
        self.hold.set()
        await first
        await four


@pytest.mark.parametrize(("linger", "commits_apart"), [(LONG_LINGER, 1), (0.0, 4)])
def test_clients_that_waited_together_share_one_commit_when_they_come_back(
    db: Database, linger: float, commits_apart: int
) -> None:
    """Four clients once waited on one commit; when they next arrive 200 ms apart, the
    batch waits for all four (and no longer: each answer comes long before the linger
    runs out), so the commit's fixed cost is paid once, not four times. With the linger
    off (``FG_WRITER_LINGER_MS=0``) each commits on its own."""
    slow = SlowTenantWriter(db, linger)

    async def four_arrive_apart() -> None:
        async def client(i: int) -> None:
            await asyncio.sleep(0.2 * i)
            await slow.writer.write([pending(f"b{i}")])

        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(4))), timeout=10)

    async def both() -> tuple[int, int]:
        # one event loop for both, so the second starts at once (the writer remembers
        # a peak for a quarter to half a second)
        with commits_counted(db) as together:
            await slow.four_wait_on_one_commit("a")
        with commits_counted(db) as apart:
            await four_arrive_apart()
        return together[0], apart[0]

    try:
        together, apart = asyncio.run(both())
    finally:
        slow.writer.stop()
    assert together == 2  # the held one, then the four queued behind it
    assert apart == commits_apart


def test_a_large_batch_does_not_wait_for_company(db: Database) -> None:
    """An ingest-sized job already spreads a commit's cost thin: it is committed at once
    even when four requests lately shared a commit and the linger is a minute."""
    slow = SlowTenantWriter(db, LONG_LINGER)

    async def one_large_batch() -> None:
        await slow.four_wait_on_one_commit("a")
        items = [pending(f"big{i}") for i in range(300)]
        await asyncio.wait_for(slow.writer.write(items), timeout=10)

    try:
        asyncio.run(one_large_batch())
    finally:
        slow.writer.stop()


def test_stopping_commits_a_lingering_batch_and_answers_it(db: Database) -> None:
    slow = SlowTenantWriter(db, LONG_LINGER)

    async def one_lingers_then_stop() -> list[object]:
        await slow.four_wait_on_one_commit("a")
        lingering = asyncio.ensure_future(slow.writer.write([pending("last")]))
        await asyncio.sleep(0.2)
        stopping = asyncio.ensure_future(asyncio.to_thread(slow.writer.stop))
        results = await asyncio.wait_for(lingering, timeout=10)
        await asyncio.wait_for(stopping, timeout=10)
        return list(results)

    (result,) = asyncio.run(one_lingers_then_stop())
    assert isinstance(result, WriteResult)
    assert result.status == "created"


def test_a_write_that_comes_while_the_writer_stops_is_refused_not_lost(db: Database) -> None:
    """``stop()`` is waiting for a commit in progress: a write arriving then must fail
    closed at once, not sit behind the stop marker where nobody would answer it."""
    slow = SlowTenantWriter(db, 0.0)

    async def write_during_stop() -> BaseException | None:
        held = asyncio.ensure_future(slow.writer.write([pending("held", "slow")]))
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(asyncio.to_thread(slow.writer.stop))
        await asyncio.sleep(0.1)  # stop() has queued its marker and waits for the commit
        try:
            await asyncio.wait_for(slow.writer.write([pending("late")]), timeout=5)
            outcome: BaseException | None = None
        except (FrostGateError, TimeoutError) as exc:
            outcome = exc
        slow.hold.set()
        await held
        await stopping
        return outcome

    try:
        outcome = asyncio.run(write_during_stop())
    finally:
        slow.hold.set()
        slow.writer.stop()
    assert isinstance(outcome, FrostGateError)
    assert outcome.code.name == "STORAGE_UNAVAILABLE"


def test_the_expected_gathering_is_the_recent_peak_and_falls_within_two_windows() -> None:
    """One stall that queued hundreds, or clients that left, stop setting the target
    within two windows."""
    now = [100.0]
    peak = _RecentPeak(window=0.25, clock=lambda: now[0])
    assert peak.expected() == 0
    for size in (3, 400, 5):
        peak.observe(size)
    assert peak.expected() == 400
    now[0] += 0.3  # the next window: the last one's peak still counts
    assert peak.expected() == 400
    peak.observe(2)
    now[0] += 0.25  # one window on: only what was seen in the last one
    assert peak.expected() == 2
    now[0] += 1.0  # idle for longer than two windows: nothing is expected
    assert peak.expected() == 0


def _write_one(w: GroupCommitWriter, event_id: str) -> str:
    """The writer's answer for one event: its status, or the error code it refused with."""
    try:
        (result,) = asyncio.run(asyncio.wait_for(w.write([pending(event_id)]), timeout=10))
    except FrostGateError as refused:
        return refused.code.name
    return result.status


def test_a_connection_broken_under_a_commit_is_not_used_again(db: Database) -> None:
    """The writer keeps its connection between commits; one that broke under a commit
    must cost that commit only, never every commit after it."""
    admin.create_tenant(db, "acme")
    break_next = [True]

    def break_connection(conn: sa.Connection, *_: object) -> None:
        if break_next[0]:
            break_next[0] = False
            conn.connection.dbapi_connection.close()  # type: ignore[union-attr]

    w = GroupCommitWriter(db.write, decision_hooks=[break_connection])
    w.start()
    try:
        answers = [_write_one(w, f"b{i}") for i in range(3)]
    finally:
        w.stop()
    assert answers == ["STORAGE_UNAVAILABLE", "created", "created"]
    d = schema.decisions
    with db.read.connect() as conn:
        assert set(conn.execute(sa.select(d.c.event_id)).scalars()) == {"b1", "b2"}


def test_a_server_side_disconnect_between_commits_costs_at_most_one_batch(db: Database) -> None:
    """PostgreSQL ends the writer's idle session (a restart, an idle timeout, an
    operator's pg_terminate_backend): the writer reconnects, refusing at most the batch
    that found the connection gone, and acknowledges nothing it did not store."""
    if db.dialect != "postgresql":
        pytest.skip("a server-side disconnect needs a server")
    admin.create_tenant(db, "acme")
    backends: list[int] = []

    def note_backend(conn: sa.Connection, *_: object) -> None:
        backends.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))

    w = GroupCommitWriter(db.write, decision_hooks=[note_backend])
    w.start()
    try:
        assert _write_one(w, "before") == "created"
        with db.read.connect() as admin_conn:
            admin_conn.exec_driver_sql(f"SELECT pg_terminate_backend({backends[-1]})")
        after = [_write_one(w, f"after{i}") for i in range(3)]
    finally:
        w.stop()
    assert after[1:] == ["created", "created"]
    assert after[0] in ("created", "STORAGE_UNAVAILABLE")
    created = {"before"} | {f"after{i}" for i, status in enumerate(after) if status == "created"}
    d = schema.decisions
    with db.read.connect() as conn:
        assert set(conn.execute(sa.select(d.c.event_id)).scalars()) == created


@pytest.mark.parametrize("failure", ["sql", "bug"])
def test_a_connection_left_in_an_unknown_state_by_a_failed_commit_is_thrown_away(
    db: Database, failure: str
) -> None:
    """A rollback undoes the data of a failed commit but not every session setting: the
    writer starts the next commit on a fresh connection instead of trusting that one,
    whether the commit failed in the database or in the code around it."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL rolls session settings back with the transaction")
    admin.create_tenant(db, "acme")
    poison_next = [True]

    def poison_then_fail(conn: sa.Connection, *_: object) -> None:
        if poison_next[0]:
            poison_next[0] = False
            conn.exec_driver_sql("PRAGMA query_only = ON")  # survives the rollback
            if failure == "sql":
                conn.exec_driver_sql("SELECT * FROM no_such_table")
            raise RuntimeError("enforcement bug")

    w = GroupCommitWriter(db.write, decision_hooks=[poison_then_fail])
    w.start()
    try:
        with pytest.raises(FrostGateError if failure == "sql" else RuntimeError):
            asyncio.run(asyncio.wait_for(w.write([pending("p0")]), timeout=10))
        answers = [_write_one(w, f"p{i}") for i in (1, 2)]
    finally:
        w.stop()
    assert answers == ["created", "created"]


@pytest.mark.parametrize("first_events", [True, False], ids=["new-stream", "existing-stream"])
def test_two_processes_writing_one_tenant_see_each_others_commits(
    db: Database, first_events: bool
) -> None:
    """Two workers (here: two writers, each with its own connection) on PostgreSQL: a
    sensor retried an event, both copies were taken for new, and the second insert broke
    its whole commit (503 for unrelated events in it); the quota was overrun the same
    way. What a writer reads about a tenant is now read under the stream head's lock
    (or, before the stream's first commit, under an advisory lock on the stream)."""
    admin.create_tenant(db, "acme")
    earlier = 0 if first_events else 1
    if earlier:  # the stream's head row exists: the lock is that row's
        plain = GroupCommitWriter(db.write)
        plain.start()
        try:
            assert _write_one(plain, "zero") == "created"
        finally:
            plain.stop()
    admin.set_tenant_quota(db, "acme", 3 + earlier, actor=admin.CLI_ACTOR)
    holding, release = threading.Event(), threading.Event()

    def hold_open(
        _conn: sa.Connection, _tenant: str, items: list[PendingDecision], _now: object
    ) -> None:
        if any(item.event_id == "dup" for item in items):
            holding.set()
            release.wait(10)

    first = GroupCommitWriter(db.write, decision_hooks=[hold_open])
    second = GroupCommitWriter(db.write)
    first.start()
    second.start()
    results: dict[str, list[str]] = {}

    def write(name: str, w: GroupCommitWriter, ids: list[str]) -> None:
        try:
            answers = asyncio.run(w.write([pending(i) for i in ids]))
            results[name] = [a.status for a in answers]
        except FrostGateError as exc:
            results[name] = [exc.code.name]

    try:
        a = threading.Thread(target=write, args=("first", first, ["seed", "dup"]))
        a.start()
        assert holding.wait(10)
        b = threading.Thread(target=write, args=("second", second, ["dup", "other", "third"]))
        b.start()
        b.join(1.0)  # the second writer is now waiting for the first one's commit
        release.set()
        a.join(10)
        b.join(10)
    finally:
        release.set()
        first.stop()
        second.stop()
    assert results["first"] == ["created", "created"]
    # The retried event is a replay, the others are not failed with it, and the quota
    # of three holds across both writers.
    assert results["second"] == ["replayed", "created", "quota_exceeded"]


def test_an_event_id_twice_in_one_commit_is_stored_once(db: Database) -> None:
    """Two requests with one event_id that share a commit: the first is stored, the
    second answered as a replay (same body) or a conflict (another body) with the first
    one's stored answer, and the quota counts the event once."""
    admin.create_tenant(db, "acme")
    admin.set_tenant_quota(db, "acme", 2, actor=admin.CLI_ACTOR)
    w = GroupCommitWriter(db.write)
    w.start()
    try:
        other = pending("same")
        other.request_json = '{"event_id":"same","x":1}'
        answers = asyncio.run(w.write([pending("same"), pending("same"), other, pending("b")]))
    finally:
        w.stop()
    assert [a.status for a in answers] == ["created", "replayed", "conflict", "created"]
    assert answers[1].response_json == answers[0].response_json == answers[2].response_json
    d = schema.decisions
    with db.read.connect() as conn:
        ids = conn.execute(sa.select(d.c.event_id).order_by(d.c.seq)).scalars().all()
    assert ids == ["same", "b"]
