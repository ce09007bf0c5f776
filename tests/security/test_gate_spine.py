"""The gate as the first thing a request meets (F5, F13, F3/F14, limits, headers).

Some tests wrap the real gate (real routes, real keys, real database) around a small
recording application, to prove what the gate lets through and what it does with a
failing or hanging handler. The gate is the thing under test; the stub is downstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from frostgate.errors import ErrorCode
from frostgate.security import AuthGate
from tests.conftest import Env

Handler = Callable[[Any, Any, Any], Any]


class Recorder:
    """A downstream ASGI app that records every call and answers per ``behaviour``."""

    def __init__(self, behaviour: str = "ok") -> None:
        self.calls: list[str] = []
        self.behaviour = behaviour

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        self.calls.append(scope["path"])
        if self.behaviour == "raise":
            raise RuntimeError("secret internal detail: password=hunter2")
        if self.behaviour == "hang":
            await asyncio.sleep(30)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _wrap(env: Env, downstream: Recorder, **limits: Any) -> TestClient:
    real: AuthGate = env.client.app  # type: ignore[assignment]
    gate = AuthGate(
        downstream,
        routes=real.routes,
        authenticator=real.authenticator,
        audit=real.audit,
        limits=replace(real.limits, **limits) if limits else real.limits,
        trusted_proxies=real.trusted_proxies,
        query_names=real.query_names,
    )
    return TestClient(gate, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "path",
    ["/v1/admin", "/v1/decisions/", "/V1/stats", "//v1/stats", "/v1/stats/", "/v1/keys/a/b"],
)
def test_f5_unmatched_route_is_denied_without_calling_downstream(env: Env, path: str) -> None:
    downstream = Recorder()
    r = _wrap(env, downstream).get(path, headers=env.headers())
    assert r.status_code == 404
    assert r.json()["error_code"] == "NOT_FOUND"
    assert downstream.calls == []


def test_f5_declared_route_without_key_never_reaches_downstream(env: Env) -> None:
    downstream = Recorder()
    client = _wrap(env, downstream)
    assert client.get("/v1/stats").status_code == 401
    assert client.get("/v1/stats", headers=env.headers()).status_code == 200
    assert downstream.calls == ["/v1/stats"]


def test_f13_each_route_needs_its_own_scope(env: Env) -> None:
    """A key holding every scope except the one a route needs is refused there."""
    from frostgate.security import ROUTES, TENANT_SCOPES, admin
    from frostgate.security.peppers import load_peppers

    downstream = Recorder()
    client = _wrap(env, downstream)
    peppers = load_peppers(env.settings)
    for spec in ROUTES:
        if spec.public or not spec.tenant_data:
            continue
        (needed,) = spec.scopes
        token = admin.mint_key(
            env.db, peppers, tenant_id="acme", scopes=TENANT_SCOPES - {needed}
        ).token
        path = spec.path.replace("{event_id}", "e1")
        r = client.request(spec.method, path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403, spec
        assert r.json()["error_code"] == "SCOPE_DENIED"
    assert downstream.calls == []


def test_f14_exception_text_never_reaches_the_client(env: Env) -> None:
    r = _wrap(env, Recorder("raise")).get("/v1/stats", headers=env.headers())
    assert r.status_code == 500
    assert r.json() == {
        "error_code": "INTERNAL",
        "detail": ErrorCode.INTERNAL.detail,
        "request_id": r.headers["x-request-id"],
    }
    assert "hunter2" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_hanging_handler_times_out_with_its_own_code(env: Env) -> None:
    r = _wrap(env, Recorder("hang"), request_timeout_seconds=0.2).get(
        "/v1/stats", headers=env.headers()
    )
    assert r.status_code == 504
    assert r.json()["error_code"] == "REQUEST_TIMEOUT"


def test_concurrency_cap_answers_overloaded(env: Env) -> None:
    r = _wrap(env, Recorder(), max_concurrent_requests=0).get("/health/live")
    assert r.status_code == 503
    assert r.json()["error_code"] == "OVERLOADED"


def test_long_path_query_and_header_floods_are_refused(env: Env) -> None:
    client = env.client
    assert (
        client.get("/v1/decisions/" + "a" * 3000, headers=env.headers()).json()["error_code"]
        == "URI_TOO_LONG"
    )
    assert (
        client.get("/v1/decisions?x=" + "a" * 5000, headers=env.headers()).json()["error_code"]
        == "URI_TOO_LONG"
    )
    flood = {f"x-h{i}": "v" for i in range(80)}
    r = client.get("/v1/decisions", headers={**env.headers(), **flood})
    assert r.status_code == 431
    assert r.json()["error_code"] == "HEADERS_TOO_LARGE"
    big = {"x-big": "v" * 20000}
    assert client.get("/v1/decisions", headers={**env.headers(), **big}).status_code == 431


@pytest.mark.parametrize("override", ["X-HTTP-Method-Override", "X-Method-Override"])
def test_method_override_headers_change_nothing(env: Env, override: str) -> None:
    r = env.client.post("/v1/decisions", headers={**env.headers(), override: "GET"})
    assert r.status_code == 404
    r = env.client.get("/v1/keys/abc", headers={**env.headers(), override: "DELETE"})
    assert r.status_code == 404


def test_hsts_only_over_tls(env: Env) -> None:
    assert "strict-transport-security" not in env.client.get("/health/live").headers
    tls = TestClient(env.client.app, base_url="https://testserver")
    assert "max-age" in tls.get("/health/live").headers["strict-transport-security"]


def test_cors_is_off_unless_origins_are_listed(env: Env) -> None:
    r = env.client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = env.client.options(
        "/v1/decisions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 404


def test_cors_for_a_listed_origin(env: Env) -> None:
    real: AuthGate = env.client.app  # type: ignore[assignment]
    real.cors_origins = frozenset({"https://console.example"})
    r = env.client.get("/health/live", headers={"Origin": "https://console.example"})
    assert r.headers["access-control-allow-origin"] == "https://console.example"
    pre = env.client.options(
        "/v1/decisions",
        headers={"Origin": "https://console.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 204
    assert "authorization" in pre.headers["access-control-allow-headers"]
    other = env.client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
