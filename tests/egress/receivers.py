"""Real loopback listeners for egress and delivery tests (never mocks of the network).

``Listener`` accepts TCP connections and counts them: the SSRF tests assert it saw none.
``Receiver`` is a small HTTP server whose behaviour a test sets per request.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Listener:
    """A TCP listener on ``host`` that only counts accepted connections."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Behaviour:
    """What the receiver answers: a status, headers, a body, or an act of sabotage."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang_seconds: float = 0.0
    reset: bool = False
    stream_bytes: int = 0


class Receiver:
    """An HTTP(S) receiver on 127.0.0.1 recording every request it gets."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        self.behaviour: Callable[[Seen], Behaviour] = lambda _seen: Behaviour()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                seen = Seen(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                receiver.seen.append(seen)
                act = receiver.behaviour(seen)
                if act.hang_seconds:
                    time.sleep(act.hang_seconds)
                if act.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(act.status)
                for name, value in act.headers.items():
                    self.send_header(name, value)
                if act.stream_bytes:
                    self.send_header("content-length", str(act.stream_bytes))
                    self.end_headers()
                    chunk = b"x" * 65536
                    sent = 0
                    try:
                        while sent < act.stream_bytes:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        return
                    return
                self.send_header("content-length", str(len(act.body)))
                try:
                    self.end_headers()
                    self.wfile.write(act.body)
                except OSError:
                    return  # the client gave up first (timeouts under test)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:

            def remember_sni(sock: ssl.SSLObject, name: str | None, _ctx: Any) -> None:
                receiver.sni.append(name)

            tls.sni_callback = remember_sni  # type: ignore[assignment]
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
