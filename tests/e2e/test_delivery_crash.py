"""Killing the server in the middle of a delivery loses nothing (issue 5, done means).

A real ``frostgate serve`` process, a real receiver on loopback (allowlisted), SIGKILL
while the receiver holds the first delivery open, a restart: the alert arrives again
with the same ``webhook-id`` and body, still verifiable, and is then marked delivered.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from frostgate.config import Settings
from frostgate.store import Database
from tests.e2e.served import BRUTE, FG, Server, free_port, served_env
from tests.egress.receivers import Behaviour, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()
    yield rcv
    rcv.close()


@pytest.fixture
def server(
    settings: Settings, db: Database, tmp_path: Path, receiver: Receiver
) -> Iterator[Server]:
    env = served_env(
        settings,
        tmp_path,
        FG_EGRESS_ALLOW_HOSTS=f"127.0.0.1:{receiver.port}",
        FG_EGRESS_READ_TIMEOUT_SECONDS="10",
        FG_EGRESS_TOTAL_TIMEOUT_SECONDS="10",
        FG_DELIVERY_LEASE_SECONDS="2",
        FG_DELIVERY_POLL_SECONDS="0.1",
    )
    subprocess.run([*FG, "bootstrap"], env=env, capture_output=True, timeout=60, check=True)
    srv = Server(env=env, port=free_port(), key=(tmp_path / "demo-key").read_text().strip())
    srv.start()
    yield srv
    if srv.process is not None:
        srv.process.terminate()
        srv.process.wait(timeout=10)


def _wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_sigkill_mid_delivery_then_restart_delivers_the_same_message(
    server: Server, receiver: Receiver
) -> None:
    receiver.behaviour = lambda _s: (
        Behaviour(hang_seconds=4) if len(receiver.seen) == 1 else Behaviour()
    )
    r = httpx.post(
        f"{server.url}/v1/webhooks",
        json={"url": f"http://127.0.0.1:{receiver.port}/alerts"},
        headers=server.headers(),
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    endpoint_id = r.json()["endpoint_id"]
    event = dict(BRUTE, event_id="crash-alert-1")
    assert httpx.post(f"{server.url}/v1/defend", json=event, headers=server.headers()).is_success

    _wait(lambda: len(receiver.seen) == 1, timeout=10)
    server.kill()  # mid-delivery: the receiver still holds the request open
    server.start()
    _wait(lambda: len(receiver.seen) == 2, timeout=20)

    first, second = receiver.seen
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    payload = Webhook(secret).verify(second.body, second.headers)
    assert payload["data"]["event_id"] == "crash-alert-1"

    def delivered() -> bool:
        items = httpx.get(
            f"{server.url}/v1/webhooks/{endpoint_id}/deliveries", headers=server.headers()
        ).json()["items"]
        return bool(items) and items[0]["status"] == "delivered"

    _wait(delivered, timeout=10)
    time.sleep(0.5)
    assert len(receiver.seen) == 2
