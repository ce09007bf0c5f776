"""An open SSE stream ends when its key stops being valid.

A revoked key was refused on its next request at once, but a stream it had opened kept
delivering new decisions for as long as the client stayed connected (an attacker
review). A real server, a real client reading the stream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from frostgate.config import Settings
from frostgate.store import Database
from tests.ledger_store.served import Served, serve


@pytest.fixture
def served(settings: Settings, db: Database) -> Iterator[Served]:
    yield from serve(settings, db, sse_heartbeat_seconds=1.0)


def test_revoking_a_key_ends_the_stream_it_opened(served: Served) -> None:
    admin = {"Authorization": f"Bearer {served.keys['acme:write']}"}
    minted = httpx.post(f"{served.url}/v1/keys", json={"scopes": ["feed:read"]}, headers=admin)
    reader = {"Authorization": f"Bearer {minted.json()['key']}"}
    seen: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with httpx.stream(
            "GET", f"{served.url}/v1/feed/stream", headers=reader, timeout=30
        ) as stream:
            for line in stream.iter_lines():
                seen.append(line)
        ended.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    before = {"event_id": "before-revoke", "source": "s", "event_type": "x"}
    assert httpx.post(f"{served.url}/v1/defend", json=before, headers=admin).status_code == 200
    revoked = httpx.delete(f"{served.url}/v1/keys/{minted.json()['key_id']}", headers=admin)
    assert revoked.status_code == 200
    after = {"event_id": "after-revoke", "source": "s", "event_type": "x"}
    assert httpx.post(f"{served.url}/v1/defend", json=after, headers=admin).status_code == 200
    assert ended.wait(10), "the stream stayed open after its key was revoked"
    assert not any("after-revoke" in line for line in seen)
    assert httpx.get(f"{served.url}/v1/feed/live", headers=reader).status_code == 401
