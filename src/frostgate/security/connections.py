"""Limits on connections, enforced before a request reaches the gate.

The gate (:mod:`frostgate.security.gate`) sees a request only once its head (request
line and headers) is complete. Until then uvicorn's HTTP protocol held a connection
with no time limit and buffered a head of any size, and an attacker review showed what
that allows to a client with no key:

* 20,000 idle connections, opened in 2.3 s, used up the process's file descriptors: every
  other client, health probes included, had its connection reset;
* one connection sending a header line every 10 s was still open after 80 s;
* one header streamed in 1 MiB pieces grew the process by 1 MB per MB and slowed every
  other client's answers to seconds (the parser buffers the head; the gate's 16 KiB
  ``HEADERS_TOO_LARGE`` came only once the whole head had arrived).

:class:`GuardedHttpToolsProtocol` is uvicorn's httptools protocol with four limits:

* a head must arrive within ``head_timeout_seconds`` of its first byte (or of the
  connection opening): otherwise 408 and the connection is closed;
* a head may be at most ``max_head_bytes`` (the gate's header, path and query limits
  and 1 KiB for the request line): beyond, 431 at once;
* one peer address (an IPv6 /64) holds at most ``max_connections_per_peer`` open
  connections in each worker process, unless it is a trusted proxy (all clients arrive
  through it);
* the process holds at most ``max_connections``.

WebSocket upgrades are off (``frostgate serve`` passes ``ws="none"``): FrostGate has no
WebSocket route, and an upgraded connection leaves this protocol without
``connection_lost``, which kept its peer's place taken for good.

A connection over either cap is closed as soon as it is accepted. Idle keep-alive
connections are closed by uvicorn after ``timeout_keep_alive`` (5 s).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from frostgate.config import Settings, get_settings
from frostgate.errors import ErrorCode, error_body
from frostgate.security.client_ip import TrustedProxies, address_group

__all__ = ["ConnectionLimits", "GuardedHttpToolsProtocol"]

_REQUEST_LINE_ALLOWANCE = 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout_seconds: float = 10.0
    max_head_bytes: int = 16 * 1024 + 4 * 64 + 2048 + 4096 + _REQUEST_LINE_ALLOWANCE
    max_connections_per_peer: int = 256
    max_connections: int = 4096
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            head_timeout_seconds=settings.head_timeout_seconds,
            # Each header also costs ": " and CRLF on the wire, beyond what the gate counts.
            max_head_bytes=settings.max_header_bytes
            + 4 * settings.max_header_count
            + settings.max_path_bytes
            + settings.max_query_bytes
            + _REQUEST_LINE_ALLOWANCE,
            max_connections_per_peer=settings.max_connections_per_peer,
            max_connections=settings.max_connections,
            trusted_proxies=TrustedProxies.parse(settings.trusted_proxy_cidrs),
        )


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _response(code: ErrorCode) -> bytes:
    """A complete refusal, in the error contract every other answer follows."""
    request_id = secrets.token_hex(16)
    body = error_body(code, request_id)
    status = code.status
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"x-request-id: %s\r\nconnection: close\r\n\r\n%s"
        % (status, _REASONS[status], len(body), request_id.encode(), body)
    )


# Open connections per peer, per server (each uvicorn server has its own state object).
_books: WeakKeyDictionary[Any, Counter[str]] = WeakKeyDictionary()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above.

    ``limits`` is read from the settings on the first connection (uvicorn builds the
    protocol itself, in each worker process); tests subclass it with their own."""

    limits: ClassVar[ConnectionLimits | None] = None

    _peer: str | None = None
    _head_bytes = 0
    _reading_head = True
    _head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def _limits(cls) -> ConnectionLimits:
        if cls.limits is None:
            cls.limits = ConnectionLimits.from_settings(get_settings())
        return cls.limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits()
        if len(self.connections) > limits.max_connections:
            transport.abort()
            return
        peer = self.client[0] if self.client else None
        if peer is not None and not self._trusted(peer, limits):
            book = _books.setdefault(self.server_state, Counter())
            group = address_group(peer)
            if book[group] >= limits.max_connections_per_peer:
                transport.abort()
                return
            book[group] += 1
            self._peer = group
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self._peer is not None:
            book = _books.get(self.server_state)
            if book is not None:
                book[self._peer] -= 1
                if book[self._peer] <= 0:
                    del book[self._peer]
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted after the parser has seen the chunk, and only if the head is still not
        # complete: a body arriving in the same read as its headers is not head (counted
        # before, a 100 KB POST written at once was refused as 431). The parser holds at
        # most one read (256 KiB) more than the limit before this refuses.
        reading = self._reading_head
        super().data_received(data)
        if reading and self._reading_head:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits().max_head_bytes:
                self._refuse(ErrorCode.HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_head:  # the next request on a kept-alive connection
            self._reading_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_response_complete(self) -> None:
        """A response sent before its request's body had all arrived (the gate refuses
        before reading: 401, 413, 429) ends the connection. Kept alive, the rest of the
        body was read and thrown away for as long as it kept coming, and every byte
        restarted the keep-alive timer: a keyless client trickling one byte every 3 s
        held its connection for good, and 16 addresses held all 4,096."""
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self.transport.close()
            return
        super().on_response_complete()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(
            self._limits().head_timeout_seconds, self._refuse, ErrorCode.HEAD_TIMEOUT
        )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser rejects, as JSON (it was plain text:
        ``Invalid HTTP request received.``); ``msg`` goes to the log only."""
        self._refuse(ErrorCode.MALFORMED_REQUEST)

    def _refuse(self, code: ErrorCode) -> None:
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_response(code))
            self.transport.close()

    @staticmethod
    def _trusted(peer: str, limits: ConnectionLimits) -> bool:
        if not limits.trusted_proxies.networks:
            return False
        try:
            return ipaddress.ip_address(peer) in limits.trusted_proxies
        except ValueError:
            return False
