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
