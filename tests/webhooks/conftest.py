"""Webhook tests run the real app with a real loopback receiver, allowlisted for them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from frostgate.api.context import Services, app_services
from frostgate.config import Profile, Settings
from tests.conftest import TEST_PEPPERS, Env
from tests.egress.receivers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()
    yield rcv
    rcv.close()


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None, receiver: Receiver) -> Settings:
    db_url = pg_url or f"sqlite:///{tmp_path / 'frostgate.db'}"
    return Settings(
        profile=Profile.TEST,
        data_dir=tmp_path,
        db_url=db_url,
        key_peppers=TEST_PEPPERS,
        egress_allow_hosts=f"127.0.0.1:{receiver.port}",
        egress_total_timeout_seconds=1.0,
        egress_read_timeout_seconds=1.0,
        delivery_poll_seconds=0.05,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_cap_seconds=0.2,
        alert_aggregate_seconds=1.0,
        audit_summary_seconds=1.0,
    )


def services_of(env: Env) -> Services:
    return app_services(env.client.app)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``condition()`` is truthy (the worker delivers in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def settle_audit(env: Env) -> None:
    audit = services_of(env).audit
    env.client.portal.call(audit.drain)  # type: ignore[union-attr]
    env.client.portal.call(lambda: audit.flush(everything=True))  # type: ignore[union-attr]


def audit_items(env: Env, who: str, kind: str) -> list[dict[str, Any]]:
    r = env.client.get(f"/v1/audit?kind={kind}", headers=env.headers(who))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def create_endpoint(
    env: Env, receiver: Receiver, who: str = "acme", **fields: Any
) -> dict[str, Any]:
    body = {"url": f"http://127.0.0.1:{receiver.port}/hook", **fields}
    r = env.client.post("/v1/webhooks", json=body, headers=env.headers(who))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created
