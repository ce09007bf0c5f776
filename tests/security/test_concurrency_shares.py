"""No single client address and no single tenant can hold every in-flight place.

An open SSE stream, or a body sent one byte at a time, holds its place in the process-wide
cap (``FG_MAX_CONCURRENT_REQUESTS``) for as long as it lasts. With only that cap, one
tenant's streams or one keyless address's slow bodies answered every other tenant
``OVERLOADED``. Each address and each tenant now has its own share; the next request past
it is 429 ``CONCURRENCY_LIMITED`` for that holder alone. Real sockets, a real server.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from frostgate.config import Settings
from frostgate.security.client_ip import address_group
from frostgate.store import Database
from tests.ledger_store.served import Served, serve


@pytest.fixture
def served(settings: Settings, db: Database) -> Iterator[Served]:
    yield from serve(settings, db, max_concurrent_per_tenant=2, max_concurrent_per_address=4)


def _bearer(served: Served, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.keys[who]}"}


def _until(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the place was never given back"
        time.sleep(0.05)


def test_one_tenants_streams_cannot_crowd_out_another_tenant(served: Served) -> None:
    acme = _bearer(served, "acme:write")
    with httpx.Client(base_url=served.url, timeout=10) as client, ExitStack() as streams:
        for _ in range(2):
            stream = streams.enter_context(client.stream("GET", "/v1/feed/stream", headers=acme))
            assert stream.status_code == 200
        with httpx.Client(base_url=served.url, timeout=10) as other:
            refused = other.get("/v1/decisions", headers=acme)
            assert refused.status_code == 429
            assert refused.json()["error_code"] == "CONCURRENCY_LIMITED"
            assert refused.headers["retry-after"] == "1"
            globex = other.get("/v1/decisions", headers=_bearer(served, "globex:write"))
            assert globex.status_code == 200
    # Closing the streams gives the places back.
    _until(lambda: httpx.get(f"{served.url}/v1/decisions", headers=acme).status_code == 200)


def _slow_body(port: int, source: str) -> socket.socket:
    """A keyless request whose body never finishes arriving, from ``source``."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall(
        b"POST /v1/hooks/hsrc_nobody HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    return sock


def test_one_address_cannot_hold_every_place_with_slow_bodies(served: Served) -> None:
    slow = [_slow_body(served.port, "127.0.0.1") for _ in range(4)]
    try:
        local = httpx.Client(base_url=served.url, timeout=10)
        _until(lambda: local.get("/health/live").status_code == 429)
        assert local.get("/health/live").json()["error_code"] == "CONCURRENCY_LIMITED"
        elsewhere = httpx.Client(
            base_url=served.url,
            timeout=10,
            transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        )
        assert elsewhere.get("/health/live").status_code == 200
        # A tenant behind the flooded address is held to its own share, not to it.
        acme = _bearer(served, "acme:write")
        assert local.get("/v1/decisions", headers=acme).status_code == 200
    finally:
        for sock in slow:
            sock.close()
    _until(lambda: local.get("/health/live").status_code == 200)


def test_keyless_bodies_from_many_addresses_hold_a_quarter_of_the_process(
    settings: Settings, db: Database
) -> None:
    """Four addresses x 256 slow hook bodies held all 1,024 places: every tenant was
    answered OVERLOADED, with no key needed. Keyless bodies, all addresses together,
    now hold a quarter of the process cap."""
    limits = {"max_concurrent_requests": 8, "max_concurrent_per_address": 2}
    for served in serve(settings, db, **limits):
        sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        slow = [_slow_body(served.port, source) for source in sources for _ in range(2)]
        try:
            time.sleep(0.5)
            with httpx.Client(base_url=served.url, timeout=10) as client:
                acme = client.get("/v1/decisions", headers=_bearer(served, "acme:write"))
                assert acme.status_code == 200, acme.text
                fifth = httpx.Client(
                    base_url=served.url,
                    timeout=10,
                    transport=httpx.HTTPTransport(local_address="127.0.0.5"),
                )
                hook = fifth.post("/v1/hooks/hsrc_nobody", json={})
                assert hook.status_code == 429
                assert hook.json()["error_code"] == "CONCURRENCY_LIMITED"
        finally:
            for sock in slow:
                sock.close()


def test_tenants_behind_one_address_are_held_to_their_own_shares(
    settings: Settings, db: Database
) -> None:
    """Behind one NAT or an untrusted proxy every client has one address: a request
    with a tenant key takes its tenant's place, not the address's, so three tenants'
    streams fit where the address's share is two."""
    for served in serve(settings, db, max_concurrent_per_tenant=2, max_concurrent_per_address=2):
        with httpx.Client(base_url=served.url, timeout=10) as client, ExitStack() as streams:
            for who in ("acme:write", "acme:write", "globex:write"):
                stream = streams.enter_context(
                    client.stream("GET", "/v1/feed/stream", headers=_bearer(served, who))
                )
                assert stream.status_code == 200, who
            with httpx.Client(base_url=served.url, timeout=10) as other:
                assert other.get("/health/live").status_code == 200
                refused = other.get("/v1/decisions", headers=_bearer(served, "acme:write"))
                assert refused.json()["error_code"] == "CONCURRENCY_LIMITED"


@pytest.mark.parametrize(
    ("source", "holder"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_hold_places_by_their_64(source: str, holder: str) -> None:
    """One IPv6 client holds a /64 (counted per address, 2**64 places); IPv4-mapped
    peers (dual-stack sockets) are their IPv4 address, not one shared ::ffff:0:0/96."""
    assert address_group(source) == holder


def test_a_client_leaving_mid_body_is_no_server_error(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A client hanging up before its body arrived was logged as an unhandled error
    with its traceback, twice: keyless clients could fill the log, 50 a second."""
    caplog.set_level(logging.INFO)
    sock = socket.create_connection(("127.0.0.1", served.port))
    sock.sendall(
        b"POST /v1/defend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + served.keys["acme:write"].encode() + b"\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    sock.close()
    _until(lambda: any("client disconnected" in r.getMessage() for r in caplog.records))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
