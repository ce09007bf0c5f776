"""The group-commit writer: contiguous chains under concurrency, survival of vanished
clients, failing closed when it cannot run."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from frostgate.errors import FrostGateError
from frostgate.security import admin
from frostgate.store import Database, GroupCommitWriter, PendingDecision, schema


def _pending(event_id: str, tenant: str = "acme") -> PendingDecision:
    return PendingDecision(
        tenant_id=tenant,
        event_id=event_id,
        source="s",
        event_type="t",
        src_ip=None,
        threat_level="none",
        score=0,
        rules=["default_allow"],
        actions=[],
        policy_hash="0" * 64,
        created_at=datetime.now(UTC),
        request_json=f'{{"event_id":"{event_id}"}}',
        response_json=f'{{"event_id":"{event_id}"}}',
    )


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
            *(writer.write([_pending(f"e{i}", "acme" if i % 3 else "globex")]) for i in range(300))
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
            in_flight.append(asyncio.ensure_future(writer.write([_pending("orphan")])))
            started.set()

        asyncio.run(fire_and_leave())  # the loop closes with the write in flight

    thread = threading.Thread(target=vanish)
    thread.start()
    thread.join()
    assert started.is_set()
    # The writer keeps serving others.
    results = asyncio.run(asyncio.wait_for(writer.write([_pending("after")]), timeout=10))
    assert results[0].status == "created"


def test_write_fails_closed_when_the_writer_is_not_running(db: Database) -> None:
    stopped = GroupCommitWriter(db.write)
    with pytest.raises(FrostGateError) as caught:
        asyncio.run(stopped.write([_pending("x")]))
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
        first = asyncio.ensure_future(w.write([_pending("s1", "slow")]))
        await asyncio.sleep(0.1)
        both = asyncio.gather(
            w.write([_pending("a1", "acme")]),
            w.write([_pending("g1", "globex")]),
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
