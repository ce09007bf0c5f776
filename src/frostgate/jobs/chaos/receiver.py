"""A loopback webhook receiver the chaos run owns, whose failures the run switches.

It listens (it never connects anywhere), so it is built on asyncio streams rather than an
HTTP client library; the one HTTP/1.1 shape it must read is what the egress client
sends: a request line, headers, a ``Content-Length`` body, one request per connection.
Modes: ``ok`` answers 200 after checking the Standard Webhooks signature, ``error``
answers 500, ``hang`` holds the request without answering until the mode changes, and
``reset`` drops the connection with the request unread (the kernel answers RST).
``acknowledged`` counts every ``webhook-id`` answered 2xx (the delivery invariant compares
it with the outbox); ``failures`` counts requests that were hung, reset or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import Counter

from frostgate.security.webhook_signature import SignatureRejected, decode_secret, verify

__all__ = ["ReceiverMode", "WebhookReceiver"]

_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024


class ReceiverMode(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    HANG = "hang"
    RESET = "reset"


class WebhookReceiver:
    """One listener on 127.0.0.1; ``secret`` (``whsec_…``) is set once the endpoint exists."""

    def __init__(self) -> None:
        self.mode = ReceiverMode.OK
        self.secret: str | None = None
        self.acknowledged: Counter[str] = Counter()
        self.failures = 0
        self.bad_signatures = 0
        self._mode_changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/chaos-alerts"

    def set_mode(self, mode: ReceiverMode) -> None:
        self.mode = mode
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.set_mode(ReceiverMode.OK)  # releases hung handlers
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            mode = self.mode
            if mode is ReceiverMode.RESET:
                self.failures += 1
                await asyncio.sleep(0.05)  # let the request arrive, then drop it unread
                writer.transport.abort()
                return
            headers, body = await _read_request(reader)
            if mode is ReceiverMode.HANG:
                self.failures += 1
                await self._mode_changed.wait()
                writer.transport.abort()
                return
            if mode is ReceiverMode.ERROR:
                self.failures += 1
                await _answer(writer, 500)
                return
            if not self._signed(headers, body):
                self.bad_signatures += 1
                await _answer(writer, 401)
                return
            self.acknowledged[headers.get("webhook-id", "")] += 1
            await _answer(writer, 200)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
            writer.transport.abort()  # a malformed or cut request: nothing to acknowledge

    def _signed(self, headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            return False
        try:
            verify([decode_secret(self.secret)], headers, body, now=int(time.time()))
        except SignatureRejected:
            return False
        return True


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= _MAX_BODY:
        raise ValueError("bad content-length")
    return headers, await reader.readexactly(length)


async def _answer(writer: asyncio.StreamWriter, status: int) -> None:
    reason = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()
