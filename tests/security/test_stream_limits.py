"""One tenant's live streams cost other tenants nothing.

An attacker review opened 256 ``/v1/feed/stream`` connections with one tenant's key
(inside its in-flight share). Every commit of any tenant woke all of them, each then
reading the database: another tenant's defend went from 3 ms to 77 ms, and the idle
streams alone used a seventh of a core. Streams are now woken only by their own
tenant's commits, and a tenant holds a bounded number of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from frostgate.api.feed_notifier import FeedNotifier
from frostgate.config import Settings
from frostgate.store import Database
from tests.ledger_store.served import Served, serve


def test_a_commit_wakes_only_its_own_tenants_streams() -> None:
    async def scenario() -> tuple[bool, bool]:
        feed = FeedNotifier()
        acme = asyncio.create_task(feed.wait("acme", 5))
        globex = asyncio.create_task(feed.wait("globex", 5))
        await asyncio.sleep(0)
        feed.notify("acme")
        await asyncio.sleep(0.05)
        woken = (acme.done(), globex.done())
        globex.cancel()
        return woken

    assert asyncio.run(scenario()) == (True, False)


@pytest.fixture
def served(settings: Settings, db: Database) -> Iterator[Served]:
    yield from serve(settings, db, sse_streams_per_tenant=2, sse_heartbeat_seconds=1.0)


def _open(url: str, key: str, opened: threading.Event, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", f"{url}/v1/feed/stream", headers=headers, timeout=30) as stream:
        if stream.status_code != 200:  # refused: the place was not given back
            return
        for _ in stream.iter_lines():
            opened.set()
            if stop.is_set():
                return


def test_a_tenant_holds_a_bounded_number_of_streams(served: Served) -> None:
    stop = threading.Event()
    opened = [threading.Event() for _ in range(2)]
    threads = [
        threading.Thread(
            target=_open, args=(served.url, served.keys["acme:write"], o, stop), daemon=True
        )
        for o in opened
    ]
    for t in threads:
        t.start()
    try:
        assert all(o.wait(10) for o in opened)
        acme = {"Authorization": f"Bearer {served.keys['acme:write']}"}
        third = httpx.get(f"{served.url}/v1/feed/stream", headers=acme, timeout=10)
        assert third.status_code == 429
        assert third.json()["error_code"] == "CONCURRENCY_LIMITED"
        # Another tenant's stream is not refused for it.
        globex = {"Authorization": f"Bearer {served.keys['globex:write']}"}
        with httpx.stream(
            "GET", f"{served.url}/v1/feed/stream", headers=globex, timeout=10
        ) as other:
            assert other.status_code == 200
    finally:
        stop.set()
        # Each stream sends a heartbeat every second, which lets its reader see ``stop``.
        for t in threads:
            t.join(10)
    # Closed streams give their places back.
    again = threading.Event()
    thread = threading.Thread(
        target=_open, args=(served.url, served.keys["acme:write"], again, stop), daemon=True
    )
    thread.start()
    assert again.wait(10)
    thread.join(10)
