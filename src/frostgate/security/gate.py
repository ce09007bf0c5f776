"""The auth gate: a pure ASGI middleware in front of everything (F5, F13, F14).

Order for every HTTP request: assign a request id, check the declared route table
(unknown method or path → 404 without calling the application), enforce the declared
body size while streaming, refuse keys in the query string, authenticate the key from
the ``Authorization: Bearer`` or ``X-API-Key`` header, check the route's scopes, then
hand the request on with the principal in ``scope["state"]``. Every response, errors
included, carries the request id and the security headers. An exception escaping the
application becomes a 500 with the fixed ``INTERNAL`` body: no exception text leaves.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from frostgate.errors import ErrorCode, FrostGateError, error_body
from frostgate.security.authn import KeyAuthenticator
from frostgate.security.routes import RouteTable

__all__ = ["AuthGate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("frostgate.gate")

_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
_KEY_QUERY_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "x-api-key"})


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RouteTable,
        authenticator: KeyAuthenticator,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.routes = routes
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        request_id_bytes = request_id.encode()
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id_bytes))
                headers.extend(_SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        async def deny(code: ErrorCode, extra: list[tuple[bytes, bytes]] | None = None) -> None:
            await _send_error(send_with_headers, code, request_id, extra)

        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        spec = self.routes.match(scope["method"], scope["path"])
        if spec is None:
            await deny(ErrorCode.NOT_FOUND)
            return
        state["route"] = spec

        headers = _headers(scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await deny(ErrorCode.BODY_TOO_LARGE)
            return

        if not spec.public:
            if _key_in_query(scope):
                await deny(ErrorCode.KEY_IN_QUERY)
                return
            token = _presented_key(headers)
            if token is None:
                await deny(ErrorCode.AUTH_REQUIRED, [(b"www-authenticate", b"Bearer")])
                return
            try:
                principal = await self.authenticator.authenticate(token)
            except FrostGateError as exc:
                extra = (
                    [(b"www-authenticate", b"Bearer")]
                    if exc.code is ErrorCode.AUTH_REQUIRED
                    else None
                )
                await deny(exc.code, extra)
                return
            if not spec.scopes <= principal.scopes:
                await deny(ErrorCode.SCOPE_DENIED)
                return
            if spec.tenant_data and principal.tenant_id is None:
                # Platform keys manage tenants and keys; they never read tenant data.
                await deny(ErrorCode.SCOPE_DENIED)
                return
            state["principal"] = principal

        received = 0
        limit = self.max_body_bytes

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise FrostGateError(ErrorCode.BODY_TOO_LARGE)
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except FrostGateError as exc:
            if started:
                raise
            await deny(exc.code)
        except Exception:
            log.exception("unhandled error (request_id=%s)", request_id)
            if started:
                raise
            await deny(ErrorCode.INTERNAL)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
        return None
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key else None


def _key_in_query(scope: Scope) -> bool:
    query = scope.get("query_string", b"")
    if not query:
        return False
    text = query.decode("latin-1")
    if "fgk_" in text:
        return True
    return any(
        name.lower() in _KEY_QUERY_PARAMS for name, _ in parse_qsl(text, keep_blank_values=True)
    )


async def _send_error(
    send: Send, code: ErrorCode, request_id: str, extra: list[tuple[bytes, bytes]] | None
) -> None:
    body = error_body(code, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": code.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
