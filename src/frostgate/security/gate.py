"""The auth gate: a pure ASGI middleware in front of everything (F5, F12, F13, F14).

For every HTTP request, in this order: a request id; path, query and header limits;
the per-process concurrency cap; the declared route table (unknown method or path →
404 without calling the application); CORS preflight when origins are configured; the
declared body cap (Content-Length, then counted while streaming); keys in the query
string refused; the key from ``Authorization: Bearer`` or ``X-API-Key`` authenticated;
the key kind and scopes checked against the route; a tenant named in the query or in
``X-Tenant-ID`` that is not the key's tenant refused; the rate limit for write routes.
Only then is the application called, with the principal and the client address in
``scope["state"]``. Every response, errors included, carries the request id and the
security headers. Denials are recorded as audit events, and so are requests for
honeypot paths (tripwires), which are otherwise answered like any unknown path. An
exception escaping the application becomes a 500 with the fixed ``INTERNAL`` body: no
exception text leaves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

from starlette.requests import ClientDisconnect

from frostgate.errors import ErrorCode, FrostGateError, error_body, unknown_name_reason
from frostgate.security.audit import AuditRecorder
from frostgate.security.authn import CanaryKeyUsed, KeyAuthenticator, Principal
from frostgate.security.client_ip import (
    ClientAddress,
    TrustedProxies,
    address_group,
    client_address,
)
from frostgate.security.ratelimit import RateLimitRefused
from frostgate.security.routes import RouteSpec, RouteTable

__all__ = ["AuthGate", "GateLimits", "RateLimitHook"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
RateLimitHook = Callable[[str, str | None], Awaitable[Headers]]
AddressLimitHook = Callable[[str], Awaitable[Headers]]

log = logging.getLogger("frostgate.gate")

_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_KEY_QUERY_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "x-api-key"})
_TENANT_QUERY_PARAMS = frozenset({"tenant", "tenant_id"})
_BEARER = [(b"www-authenticate", b"Bearer")]
_RETRY_SOON = [(b"retry-after", b"1")]
_KEYLESS_BODIES = "keyless bodies"
# PostgreSQL text cannot hold NUL: a query value holding one failed the query (503).
_NUL_IN_QUERY = "a query parameter contains a NUL character"


class Refusal(NamedTuple):
    """Why the gate answers instead of the application."""

    code: ErrorCode
    headers: Headers | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GateLimits:
    max_body_bytes: int = 1024 * 1024
    max_header_count: int = 64
    max_header_bytes: int = 16 * 1024
    max_path_bytes: int = 2048
    max_query_bytes: int = 4096
    request_timeout_seconds: float = 30.0
    max_concurrent_requests: int = 1024
    # Shares of the process-wide cap: an open stream or a slowly sent body holds its
    # place, so without them one keyless client or one tenant could hold them all.
    max_concurrent_per_address: int = 256
    max_concurrent_per_tenant: int = 256

    @property
    def max_concurrent_keyless_bodies(self) -> int:
        """Keyless requests with a body, all clients together: a quarter of the process."""
        return max(1, self.max_concurrent_requests // 4)


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RouteTable,
        authenticator: KeyAuthenticator,
        audit: AuditRecorder,
        limits: GateLimits,
        trusted_proxies: TrustedProxies,
        query_names: Mapping[tuple[str, str], frozenset[str]],
        bodyless: frozenset[tuple[str, str]] = frozenset(),
        cors_origins: frozenset[str] = frozenset(),
        rate_limit: RateLimitHook | None = None,
        address_rate_limit: AddressLimitHook | None = None,
        honeypots: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.routes = routes
        self.authenticator = authenticator
        self.audit = audit
        self.limits = limits
        self.trusted_proxies = trusted_proxies
        # (method, path template) -> the query parameters the route declares; anything
        # else in a query is refused (a misspelt filter must not silently match all).
        self.query_names = query_names
        self.bodyless = bodyless
        self.cors_origins = cors_origins
        self.rate_limit = rate_limit
        self.address_rate_limit = address_rate_limit
        self.honeypots = frozenset(_honeypot_form(p) for p in honeypots)
        self._in_flight = 0
        # In-flight requests per holder ("address <ip>", "tenant <id>"); a holder's entry
        # exists only while it has requests in flight.
        self._holders: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 128 random bits (0.5 µs): a per-process counter told every tenant how many
        # requests other tenants had made between two of its own.
        request_id = secrets.token_hex(16)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra_headers: Headers = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
        if scope.get("scheme") == "https":
            extra_headers.append(_HSTS)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        if self._in_flight >= self.limits.max_concurrent_requests:
            await _send_error(send_with_headers, ErrorCode.OVERLOADED, request_id)
            return
        self._in_flight += 1
        held: list[str] = []
        try:
            refusal = await self._admit(scope, state, extra_headers, held)
            if refusal is not None:
                await _send_error(
                    send_with_headers, refusal.code, request_id, refusal.headers, refusal.reason
                )
                return
            if state.get("preflight"):
                await send_with_headers(
                    {"type": "http.response.start", "status": 204, "headers": []}
                )
                await send_with_headers({"type": "http.response.body", "body": b""})
                return
            await self._call_app(scope, receive, send_with_headers, request_id, lambda: started)
        finally:
            self._in_flight -= 1
            for holder in held:
                self._release(holder)

    def _hold(self, holder: str, limit: int, held: list[str]) -> bool:
        """Take one of ``holder``'s ``limit`` places (recorded in ``held`` for release)."""
        count = self._holders.get(holder, 0)
        if count >= limit:
            return False
        self._holders[holder] = count + 1
        held.append(holder)
        return True

    def _release(self, holder: str) -> None:
        count = self._holders[holder] - 1
        if count:
            self._holders[holder] = count
        else:
            del self._holders[holder]

    async def _admit(
        self, scope: Scope, state: dict[str, Any], extra_headers: Headers, held: list[str]
    ) -> Refusal | None:
        """Decide whether the request may reach the application; the in-flight places
        it takes are added to ``held``."""
        limits = self.limits
        raw_headers = scope.get("headers", ())
        if (
            len(scope.get("raw_path") or scope["path"].encode()) > limits.max_path_bytes
            or len(scope.get("query_string", b"")) > limits.max_query_bytes
        ):
            return Refusal(ErrorCode.URI_TOO_LONG)
        if (
            len(raw_headers) > limits.max_header_count
            or sum(len(k) + len(v) for k, v in raw_headers) > limits.max_header_bytes
        ):
            return Refusal(ErrorCode.HEADERS_TOO_LARGE)
        headers = _headers(raw_headers)
        address = client_address(scope, self.trusted_proxies)
        state["client"] = address
        source = address.ip or address.peer or "unknown"
        if address.via_trusted_proxy and headers.get("x-forwarded-proto") == "https":
            extra_headers.append(_HSTS)
        self._cors(scope, headers, extra_headers)

        spec = self.routes.match(scope["method"], scope["path"])
        if spec is None:
            if self._preflight(scope, headers, extra_headers):
                return None
            if self.honeypots and _honeypot_form(scope["path"]) in self.honeypots:
                # Answered exactly like any unknown path; recorded (summarised per source,
                # so a scanner cannot flood the ledger or the outbox) and alerted.
                self.audit.record(
                    "honeypot_hit",
                    "warning",
                    None,
                    address=address,
                    route=f"{scope['method']} {scope['path'][:200]}",
                )
            return Refusal(ErrorCode.NOT_FOUND)
        if "\x00" in scope["path"]:
            # No record is named with a NUL, and PostgreSQL text cannot hold one: asked
            # for, it failed the query (503 or 500) instead of finding nothing.
            return Refusal(ErrorCode.NOT_FOUND)
        state["route"] = spec
        length = headers.get("content-length")
        # ASCII digits only: "\xb2" (latin-1 "²") passes str.isdigit() and breaks int().
        digits = length is not None and length.isascii() and length.isdigit()
        if length is not None and (not digits or int(length) > limits.max_body_bytes):
            return Refusal(ErrorCode.BODY_TOO_LARGE)
        query = scope.get("query_string", b"").decode("latin-1")
        # Parsed once: the key, name and tenant checks below all read it.
        params = parse_qsl(query, keep_blank_values=True) if query else []
        if any("\x00" in name or "\x00" in value for name, value in params):
            return Refusal(ErrorCode.VALIDATION_FAILED, reason=_NUL_IN_QUERY)
        route = f"{spec.method} {spec.path}"
        if _key_in_query(query, params):
            self.audit.record("key_in_query", "warning", None, address=address, route=route)
            return Refusal(ErrorCode.KEY_IN_QUERY)
        if spec.public:
            refused = self._query_refusal(spec, params) or self._unread_body(spec, headers)
            if refused is not None:
                return refused
            # Keyless: the client address's share answers for it. (A keyed request is
            # refused before its body is read unless its key is good, and then its
            # tenant's share answers: keyless clients cannot crowd out tenants that
            # share their address, e.g. behind one NAT.)
            client = address_group(source)
            if not self._hold(f"address {client}", limits.max_concurrent_per_address, held):
                return Refusal(ErrorCode.CONCURRENCY_LIMITED, _RETRY_SOON)
            # Keyless requests with a body (signed deliveries), all clients together, hold
            # a quarter of the process: four addresses' slow bodies (4 x 256) had held
            # every place, and every tenant was answered OVERLOADED.
            if spec.signed and not self._hold(
                _KEYLESS_BODIES, limits.max_concurrent_keyless_bodies, held
            ):
                return Refusal(ErrorCode.CONCURRENCY_LIMITED, _RETRY_SOON)
            if spec.signed and self.address_rate_limit is not None:
                # Keyless but costly to refuse (a lookup, signature checks): limited by
                # the client (address, or IPv6 /64) before the handler runs.
                return await _limited(self.address_rate_limit(client), extra_headers)
            return None

        token = _presented_key(headers, raw_headers)
        if token is None:
            return Refusal(ErrorCode.AUTH_REQUIRED, _BEARER)
        try:
            principal = await self.authenticator.authenticate(token)
        except CanaryKeyUsed as canary:
            self.audit.record(
                "canary_key_used",
                "critical",
                canary.tenant_id,
                key_id=canary.key_id,
                address=address,
                route=route,
            )
            return Refusal(ErrorCode.AUTH_REQUIRED, _BEARER)
        except FrostGateError as exc:
            if exc.code is ErrorCode.AUTH_REQUIRED:
                self.audit.record(
                    "auth_failure",
                    "warning",
                    None,
                    address=address,
                    route=route,
                    detail={"reason": str(exc)},
                )
                return Refusal(exc.code, _BEARER)
            return Refusal(exc.code)
        if principal.kind not in spec.kinds or not spec.scopes <= principal.scopes:
            self._record_denial("scope_denied", principal, address, route)
            return Refusal(ErrorCode.SCOPE_DENIED)
        named = _named_tenants(params, headers)
        if principal.kind == "tenant" and any(t != principal.tenant_id for t in named):
            self._record_denial("tenant_mismatch", principal, address, route)
            return Refusal(ErrorCode.TENANT_MISMATCH)
        refused = self._query_refusal(spec, params) or self._unread_body(spec, headers)
        if refused is not None:
            return refused
        state["principal"] = principal
        if principal.tenant_id is not None:
            holder, limit = f"tenant {principal.tenant_id}", limits.max_concurrent_per_tenant
        else:  # a platform key: its address's share
            holder = f"address {address_group(source)}"
            limit = limits.max_concurrent_per_address
        if not self._hold(holder, limit, held):
            return Refusal(ErrorCode.CONCURRENCY_LIMITED, _RETRY_SOON)
        if spec.writes and self.rate_limit is not None:
            return await _limited(
                self.rate_limit(principal.key_id, principal.tenant_id), extra_headers
            )
        return None

    def _query_refusal(self, spec: RouteSpec, params: list[tuple[str, str]]) -> Refusal | None:
        """Why the query is refused, if it names a parameter the route does not take
        (``tenant``/``tenant_id`` aside, which every route takes as an assertion), or one
        parameter twice (the last value won in silence). A name is repeated only when it
        is a plain identifier, never arbitrary client text."""
        known = self.query_names.get((spec.method, spec.path), frozenset())
        seen: set[str] = set()
        for name, _ in params:
            if name not in known and name not in _TENANT_QUERY_PARAMS:
                return Refusal(
                    ErrorCode.QUERY_UNKNOWN, reason=unknown_name_reason("query parameter", name)
                )
            if name in seen:
                return Refusal(ErrorCode.QUERY_REPEATED, reason=f"query parameter {name!r}")
            seen.add(name)
        return None

    def _unread_body(self, spec: RouteSpec, headers: Mapping[str, str]) -> Refusal | None:
        """A body sent to a route that declares none: it would be ignored, and the client
        believe it was read (``{"dry_run": true}`` to a suspension suspended)."""
        if (spec.method, spec.path) not in self.bodyless:
            return None
        length = headers.get("content-length")
        if (length is not None and length != "0") or "transfer-encoding" in headers:
            reason = "this route takes no body"
            return Refusal(ErrorCode.VALIDATION_FAILED, reason=reason)
        return None

    def _record_denial(
        self, kind: str, principal: Principal, address: ClientAddress, route: str
    ) -> None:
        self.audit.record(
            kind,
            "warning",
            principal.tenant_id,
            key_id=principal.key_id,
            address=address,
            route=route,
        )

    def _cors(self, scope: Scope, headers: dict[str, str], extra_headers: Headers) -> None:
        origin = headers.get("origin")
        if origin is not None and origin in self.cors_origins:
            extra_headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
            extra_headers.append((b"vary", b"Origin"))

    def _preflight(self, scope: Scope, headers: dict[str, str], extra_headers: Headers) -> bool:
        """A CORS preflight for a declared route from a configured origin."""
        requested = headers.get("access-control-request-method")
        if (
            scope["method"] != "OPTIONS"
            or requested is None
            or headers.get("origin") not in self.cors_origins
            or self.routes.match(requested, scope["path"]) is None
        ):
            return False
        scope["state"]["preflight"] = True
        extra_headers.extend(
            [
                (b"access-control-allow-methods", requested.encode("latin-1")),
                (b"access-control-allow-headers", b"authorization, content-type, x-api-key"),
                (b"access-control-max-age", b"600"),
            ]
        )
        return True

    async def _call_app(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        started: Callable[[], bool],
    ) -> None:
        received = 0
        limit = self.limits.max_body_bytes

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise FrostGateError(ErrorCode.BODY_TOO_LARGE)
            return message

        try:
            # The timeout covers the time to the first response byte; a stream that has
            # started (SSE) runs for as long as its client stays.
            async with asyncio.timeout(self.limits.request_timeout_seconds) as deadline:

                async def send_tracking(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        deadline.reschedule(None)
                    await send(message)

                await self.app(scope, bounded_receive, send_tracking)
        except TimeoutError:
            if started():
                raise
            await _send_error(send, ErrorCode.REQUEST_TIMEOUT, request_id)
        except FrostGateError as exc:
            if started():
                raise
            await _send_error(send, exc.code, request_id)
        except ClientDisconnect:
            # The client left before its body arrived: no one to answer, nothing was
            # stored, and no fault of ours (keyless clients could otherwise fill the log
            # with tracebacks, 50 a second on the hook route).
            log.info("client disconnected before its body arrived (request_id=%s)", request_id)
        except Exception:
            log.exception("unhandled error (request_id=%s)", request_id)
            if started():
                raise
            await _send_error(send, ErrorCode.INTERNAL, request_id)


async def _limited(check: Awaitable[Headers], extra_headers: Headers) -> Refusal | None:
    """Run a rate-limit check: its headers join the answer when allowed; refused is 429
    with its headers; a backend failure is its own error (fail closed)."""
    try:
        extra_headers.extend(await check)
    except RateLimitRefused as refused:
        return Refusal(ErrorCode.RATE_LIMITED, refused.headers)
    except FrostGateError as exc:
        return Refusal(exc.code)
    return None


def _honeypot_form(path: str) -> str:
    """Case and trailing slashes do not dodge a honeypot (``/WP-Admin/`` is ``/wp-admin``)."""
    return path.lower().rstrip("/") or "/"


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _presented_key(headers: dict[str, str], raw_headers: Headers) -> str | None:
    """The one key the request presents, or None (refused as AUTH_REQUIRED). Two
    different keys (``Authorization`` and ``X-Api-Key``, or either header twice) are no
    key: one was served and the other silently ignored, and a proxy checking the other
    would disagree. A blank ``X-Api-Key`` is no header."""
    names = [name.lower() for name, _ in raw_headers]
    if names.count(b"authorization") > 1 or names.count(b"x-api-key") > 1:
        return None
    auth = headers.get("authorization")
    api_key = headers.get("x-api-key") or None
    bearer = None
    if auth is not None:
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return None
        bearer = credential.strip()
    other = api_key.strip() if api_key is not None else None
    if bearer is not None and other is not None and other != bearer:
        return None
    return bearer or other or None


def _key_in_query(query: str, params: list[tuple[str, str]]) -> bool:
    """A key, or a parameter meant for one, anywhere in the query: in the raw text and in
    the decoded names and values (``fgk%5F…`` is the same key to whoever logs it)."""
    if not query:
        return False
    if "fgk_" in query.lower():
        return True
    for name, value in params:
        if name.lower() in _KEY_QUERY_PARAMS:
            return True
        if any("fgk_" in _decoded(text).lower() for text in (name, value)):
            return True
    return False


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it stops changing (``fgk%255F`` is ``fgk_`` to
    whoever decodes a logged URL twice); bounded, so nested encodings cannot loop."""
    for _ in range(4):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _named_tenants(params: list[tuple[str, str]], headers: dict[str, str]) -> list[str]:
    named = [v for k, v in params if k.lower() in _TENANT_QUERY_PARAMS]
    header = headers.get("x-tenant-id")
    if header is not None:
        named.append(header.strip())
    return named


async def _send_error(
    send: Send,
    code: ErrorCode,
    request_id: str,
    extra: Headers | None = None,
    reason: str | None = None,
) -> None:
    body = error_body(code, request_id, reason)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": code.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
