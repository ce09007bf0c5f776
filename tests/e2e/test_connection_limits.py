"""Connections are limited before the gate sees a request (``security/connections.py``).

An attacker review, with no key: 20,000 idle connections made every other client's
connection fail; a header sent one line every 10 s kept its connection for 80 s and
more; a header streamed in 1 MiB pieces grew the server by 1 MB per MB and slowed
everyone's answers to seconds. Each case runs here against ``frostgate serve``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests.e2e.served import Server


def _connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", server.port))
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _restart(server: Server, **env: str) -> None:
    server.kill()
    server.env.update(env)
    server.start()


def test_a_head_that_does_not_arrive_in_time_is_cut_off(server: Server) -> None:
    _restart(server, FG_HEAD_TIMEOUT_SECONDS="1")
    idle = _connect(server)
    started = time.monotonic()
    assert _read_all(idle).startswith(b"HTTP/1.1 408")
    assert 0.8 < time.monotonic() - started < 8

    trickle = _connect(server)
    trickle.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
    cut_off = False
    for i in range(30):  # a header line every 0.2 s for 6 s
        time.sleep(0.2)
        try:
            trickle.sendall(b"X-Slow-%d: y\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
            break
    assert cut_off or _read_all(trickle).startswith(b"HTTP/1.1 408")
    # A kept-alive connection is not cut off between requests, only inside a head.
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health/live").status_code == 200
        time.sleep(1.5)
        assert client.get("/health/live").status_code == 200


def test_an_oversized_head_is_refused_while_it_arrives(server: Server) -> None:
    big = _connect(server)
    big.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    try:
        while sent < 64 * 2**20:
            big.sendall(b"A" * 2**20)
            sent += 2**20
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert sent < 64 * 2**20, "the server kept reading a 64 MiB header"
    answer = _read_all(big)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{server.url}/health/live").status_code == 200


def test_a_body_sent_with_its_headers_is_not_counted_as_head(server: Server) -> None:
    """A review found a 100 KB POST written in one piece refused as 431: the body bytes
    that arrived in the same read as the headers were counted as head."""
    payload = {f"k{i}": "x" * 2000 for i in range(100)}
    body = json.dumps({"source": "s", "event_type": "x", "payload": payload}).encode()
    head = (
        f"POST /v1/defend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    for _ in range(5):
        s = _connect(server)
        s.sendall(head + body)
        assert _read_all(s).startswith(b"HTTP/1.1 200"), "a 200 KB event was refused"


def test_one_peer_holds_a_bounded_number_of_connections(server: Server) -> None:
    _restart(server, FG_MAX_CONNECTIONS_PER_PEER="4")
    # WebSocket upgrade requests (there are no WebSocket routes) give their places back:
    # an upgraded connection used to leave the protocol without releasing its place.
    for _ in range(6):
        ws = _connect(server)
        ws.sendall(
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        ws.settimeout(5)
        with contextlib.suppress(OSError):
            ws.recv(65536)
        ws.close()
    time.sleep(0.2)
    held = [_connect(server) for _ in range(4)]
    try:
        extra = _connect(server)
        extra.settimeout(5)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not _read_all(extra).startswith(b"HTTP/1.1 200")
        # Another peer is not refused for it.
        other = _connect(server, source="127.0.0.2")
        other.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(other).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    # Closed connections give their places back.
    deadline = time.monotonic() + 5
    while True:
        try:
            if httpx.get(f"{server.url}/health/live", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail("the peer's places were not given back")
            time.sleep(0.1)


def test_a_connection_answered_before_its_body_arrived_is_closed(server: Server) -> None:
    """A keyless POST with a 100 MB Content-Length is refused before its body is read;
    the connection then stayed open, reading and dropping one trickled byte every few
    seconds for as long as the client liked (each byte restarted the keep-alive timer)."""
    s = _connect(server)
    s.sendall(
        b"POST /v1/hooks/hsrc_x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n{"
    )
    s.settimeout(10)
    answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 4")
    s.settimeout(1)
    closed = False
    for _ in range(10):  # a byte a second for up to 10 s
        time.sleep(1)
        try:
            s.sendall(b"a")
            if s.recv(65536) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    assert closed, "the connection stayed open after its answer"
