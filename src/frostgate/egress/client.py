"""The one outbound HTTP client: resolve once, vet, connect to the vetted address.

For each request: the policy checks the URL; the host is resolved once (through an
injectable resolver); every answer is vetted; the connection goes to the vetted address
while TLS SNI, certificate verification and the ``Host`` header keep the name, so a
second DNS answer (rebinding) is never consulted. Redirects are never followed: a 3xx
is returned as a failed delivery. Connect, read and total time are bounded and the
response body is read up to a cap, so a receiver that hangs, trickles or sends 10 MB
costs one bounded task. Built on httpcore (httpx's transport layer) with a network
backend that can only dial the pinned address, and a fresh connection per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore

from frostgate.egress.addresses import IPAddress
from frostgate.egress.policy import Destination, EgressPolicy, EgressRefused, refused_after_dns

__all__ = [
    "EgressClient",
    "EgressFailed",
    "EgressResponse",
    "EgressTimeouts",
    "RefusalHook",
    "Resolver",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
# (tenant id, the refusal): its ``reason`` may reach the tenant, its ``detail`` is the
# operator's.
RefusalHook = Callable[[str | None, EgressRefused], None]


class EgressFailed(Exception):
    """The request left but did not complete (connect, TLS, timeout, reset)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EgressTimeouts:
    connect: float = 5.0
    read: float = 10.0
    total: float = 15.0


@dataclass(frozen=True, slots=True)
class EgressResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """All A/AAAA answers for ``host`` from the system resolver, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    seen: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials only the vetted address, whatever host the connection pool asks for."""

    def __init__(self, address: IPAddress) -> None:
        self._address = str(address)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(
            self._address, port, timeout=timeout, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not an egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class EgressClient:
    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        timeouts: EgressTimeouts | None = None,
        max_response_bytes: int = 64 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        on_refusal: RefusalHook | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._timeouts = timeouts or EgressTimeouts()
        self._cap = max_response_bytes
        self._ssl = ssl_context or ssl.create_default_context()
        self._on_refusal = on_refusal

    def check_url(
        self, url: str, *, tenant_id: str | None, tenant_hosts: frozenset[str] | None = None
    ) -> Destination:
        """The policy's verdict on ``url`` without DNS (used when an endpoint is saved)."""
        try:
            return self.policy.destination(url, tenant_hosts)
        except EgressRefused as refused:
            self._refused(tenant_id, refused)
            raise

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        tenant_id: str | None,
        tenant_hosts: frozenset[str] | None = None,
    ) -> EgressResponse:
        """POST ``body``; :class:`EgressRefused` or :class:`EgressFailed` when it cannot."""
        return await self.request(
            "POST", url, body, headers, tenant_id=tenant_id, tenant_hosts=tenant_hosts
        )

    async def get(
        self, url: str, headers: Mapping[str, str], *, tenant_id: str | None
    ) -> EgressResponse:
        """GET ``url`` under the same policy (the verifier reading a remote ledger)."""
        return await self.request("GET", url, b"", headers, tenant_id=tenant_id)

    async def request(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        tenant_id: str | None,
        tenant_hosts: frozenset[str] | None = None,
    ) -> EgressResponse:
        dest = self.check_url(url, tenant_id=tenant_id, tenant_hosts=tenant_hosts)
        try:
            async with asyncio.timeout(self._timeouts.total):
                try:
                    address = self.policy.vet(dest, await self._resolve(dest))
                except EgressRefused as refused:
                    self._refused(tenant_id, refused)
                    raise
                return await self._send(method, dest, address, body, headers)
        except TimeoutError as exc:
            raise EgressFailed("total timeout") from exc

    async def _resolve(self, dest: Destination) -> list[IPAddress]:
        if dest.ip_literal is not None:
            return [dest.ip_literal]
        try:
            return await self._resolver(dest.host, dest.port)
        except OSError as exc:
            raise refused_after_dns(dest.host, "host did not resolve") from exc

    async def _send(
        self,
        method: str,
        dest: Destination,
        address: IPAddress,
        body: bytes,
        headers: Mapping[str, str],
    ) -> EgressResponse:
        t = self._timeouts
        request_headers = [(b"Host", _host_header(dest).encode())]
        request_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if method != "GET":
            request_headers.append((b"Content-Length", str(len(body)).encode()))
        async with httpcore.AsyncConnectionPool(
            ssl_context=self._ssl,
            network_backend=_PinnedBackend(address),
            retries=0,
            max_connections=1,
        ) as pool:
            try:
                async with pool.stream(
                    method,
                    # Pre-parsed: httpcore must not re-read a URL string differently
                    # from the policy (e.g. ``;params`` dropped by urlparse).
                    httpcore.URL(
                        scheme=dest.scheme.encode(),
                        host=dest.host.encode(),
                        port=dest.port,
                        target=dest.target.encode(),
                    ),
                    headers=request_headers,
                    content=body,
                    extensions={"timeout": {"connect": t.connect, "read": t.read, "write": t.read}},
                ) as response:
                    collected = bytearray()
                    truncated = False
                    async for chunk in response.aiter_stream():
                        collected += chunk
                        if len(collected) > self._cap:
                            truncated = True
                            del collected[self._cap :]
                            break
                    return EgressResponse(
                        status=response.status,
                        headers={
                            k.decode("latin-1").lower(): v.decode("latin-1")
                            for k, v in response.headers
                        },
                        body=bytes(collected),
                        truncated=truncated,
                    )
            except httpcore.TimeoutException as exc:
                raise EgressFailed(f"timeout: {type(exc).__name__}") from exc
            except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError, OSError) as exc:
                raise EgressFailed(f"connection failed: {type(exc).__name__}") from exc

    def _refused(self, tenant_id: str | None, refused: EgressRefused) -> None:
        if self._on_refusal is not None:
            self._on_refusal(tenant_id, refused)


def _host_header(dest: Destination) -> str:
    host = f"[{dest.host}]" if ":" in dest.host else dest.host
    default = 443 if dest.scheme == "https" else 80
    return host if dest.port == default else f"{host}:{dest.port}"
