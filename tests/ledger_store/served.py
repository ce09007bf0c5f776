"""A real FrostGate server on a loopback port, in this process (uvicorn in a thread).

The remote verifier and the witness export talk to it through the egress client, so
they cross a real socket and the real HTTP stack; the test keeps the database handle to
change rows behind the application's back.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from frostgate.api import build_app
from frostgate.api.context import app_services
from frostgate.config import Settings
from frostgate.security import TENANT_SCOPES, admin
from frostgate.security.peppers import load_peppers
from frostgate.store import Database

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    port: int
    settings: Settings
    db: Database
    services: Any
    keys: dict[str, str]

    @property
    def allow(self) -> str:
        """The ``FG_EGRESS_ALLOW_HOSTS`` value that lets the egress client reach us."""
        return f"127.0.0.1:{self.port}"

    def ingest(self, count: int, prefix: str = "e", who: str = "acme") -> None:
        for start in range(0, count, 500):
            events = [
                dict(EVENT, event_id=f"{prefix}{i}") for i in range(start, min(count, start + 500))
            ]
            r = httpx.post(
                f"{self.url}/v1/ingest",
                json={"events": events},
                headers={"Authorization": f"Bearer {self.keys[who + ':write']}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text

    def anchor(self) -> list[Any]:
        outcomes: list[Any] = self.services.anchorer.run_once()
        return outcomes


def serve(
    settings: Settings,
    db: Database,
    *,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    **overrides: Any,
) -> Iterator[Served]:
    """Tenants ``acme`` and ``globex``, each with a ``ledger:read`` key and a write key.

    Anchoring runs only when a test asks, unless ``overrides`` (settings) say otherwise.
    ``wrap`` puts an ASGI app in front of the server's: a hostile server, which answers
    from the real ledger but lies where it chooses."""
    peppers = load_peppers(settings)
    keys: dict[str, str] = {}
    for tenant in ("acme", "globex"):
        admin.create_tenant(db, tenant)
        keys[tenant] = admin.mint_key(
            db, peppers, tenant_id=tenant, scopes=frozenset({"ledger:read"})
        ).token
        keys[tenant + ":write"] = admin.mint_key(
            db, peppers, tenant_id=tenant, scopes=TENANT_SCOPES
        ).token
    quiet = settings.model_copy(update={"anchor_interval_seconds": 3600.0, **overrides})
    gate = build_app(quiet)
    port = free_port()
    served_app = gate if wrap is None else wrap(gate)
    server = uvicorn.Server(
        uvicorn.Config(served_app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the in-process server did not start")
        time.sleep(0.05)
    try:
        yield Served(
            url=f"http://127.0.0.1:{port}",
            port=port,
            settings=quiet,
            db=db,
            services=app_services(gate),
            keys=keys,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
