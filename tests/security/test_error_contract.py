"""F3 / F14: every error code in the registry is produced by a real request somewhere,
with its status, its fixed detail, the request id, and nothing else.

Each code has a trigger below; a code added to the registry without one fails
``test_every_code_has_a_trigger``, so the contract cannot drift silently.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.errors import ErrorCode
from frostgate.security import AuthGate, admin
from frostgate.security.connections import ConnectionLimits, GuardedHttpToolsProtocol
from frostgate.security.peppers import load_peppers
from frostgate.security.webhook_signature import decode_secret, signed_headers
from frostgate.store import decisions as decisions_repo
from tests.conftest import Env

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}
FORGED = "fgk_" + "0" * 16 + "_" + "A" * 43
Trigger = Callable[[Env], httpx.Response]


def _post_raw(env: Env, path: str, body: bytes, who: str = "acme") -> httpx.Response:
    headers = {**env.headers(who), "content-type": "application/json"}
    return env.client.post(path, content=body, headers=headers)


class _QuickHeads(GuardedHttpToolsProtocol):
    limits = ConnectionLimits(head_timeout_seconds=0.3)


def _over_the_wire(env: Env, raw: bytes) -> httpx.Response:
    """What ``frostgate serve``'s HTTP protocol answers to ``raw`` bytes, before any
    request reaches the app (the test client has no protocol to refuse with)."""
    config = uvicorn.Config(
        env.client.app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="critical",
        http=_QuickHeads,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        server.should_exit = True
        thread.join(5)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _failing_route(env: Env) -> httpx.Response:
    """An unexpected exception inside a FastAPI route (the stats query fails). Starlette's
    error middleware answers it before the gate sees it, so the contract must hold there
    too: this answered ``text/plain`` "Internal Server Error" until the app had its own
    handler for it."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("db password is hunter2")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decisions_repo, "stats", broken)
        return env.client.get("/v1/stats", headers=env.headers())


def _stub_gate(env: Env, **limits: Any) -> TestClient:
    """The real gate with ``limits`` in front of an app that never answers."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    real: AuthGate = env.client.app  # type: ignore[assignment]
    gate = AuthGate(
        app,
        routes=real.routes,
        authenticator=real.authenticator,
        audit=real.audit,
        limits=replace(real.limits, **limits),
        trusted_proxies=real.trusted_proxies,
        query_names=real.query_names,
    )
    return TestClient(gate, raise_server_exceptions=False)


def _unreachable_db(env: Env, path: str) -> httpx.Response:
    broken = env.settings.model_copy(update={"db_url": "postgresql://nobody@127.0.0.1:1/none"})
    with TestClient(build_app(broken), raise_server_exceptions=False) as client:
        return client.get(path, headers=env.headers())


def _limited(env: Env) -> httpx.Response:
    tight = env.settings.model_copy(
        update={"rate_limit_key_burst": 1, "rate_limit_key_per_second": 0.001}
    )
    with TestClient(build_app(tight)) as client:
        client.post("/v1/defend", json=EVENT, headers=env.headers())
        return client.post("/v1/defend", json=EVENT, headers=env.headers())


def _quota(env: Env) -> httpx.Response:
    env.client.put(
        "/v1/tenants/acme/quota", json={"daily_event_quota": 0}, headers=env.headers("platform")
    )
    return env.client.post("/v1/defend", json=EVENT, headers=env.headers())


def _suspended(env: Env) -> httpx.Response:
    env.client.post("/v1/tenants/acme/suspend", headers=env.headers("platform"))
    env.client.app.authenticator.invalidate(env.keys["acme"].split("_")[1])  # type: ignore[attr-defined]
    return env.client.get("/v1/stats", headers=env.headers())


def _escalation(env: Env) -> httpx.Response:
    token = admin.mint_key(
        env.db, load_peppers(env.settings), tenant_id="acme", scopes=frozenset({"keys:admin"})
    ).token
    return env.client.post(
        "/v1/keys", json={"scopes": ["stats:read"]}, headers={"Authorization": f"Bearer {token}"}
    )


def _revoked_twice(env: Env) -> httpx.Response:
    key_id = env.client.post(
        "/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers()
    ).json()["key_id"]
    env.client.delete(f"/v1/keys/{key_id}", headers=env.headers())
    return env.client.delete(f"/v1/keys/{key_id}", headers=env.headers())


def _conflict(env: Env) -> httpx.Response:
    env.client.post("/v1/defend", json=dict(EVENT, event_id="c1"), headers=env.headers())
    return env.client.post(
        "/v1/defend", json=dict(EVENT, event_id="c1", source="x"), headers=env.headers()
    )


def _batch_too_large(env: Env) -> httpx.Response:
    small = env.settings.model_copy(update={"max_batch_events": 2})
    with TestClient(build_app(small)) as client:
        events = [dict(EVENT, event_id=f"b{i}") for i in range(3)]
        return client.post("/v1/ingest", json={"events": events}, headers=env.headers())


def _limiter_down(env: Env) -> httpx.Response:
    broken = env.settings.model_copy(
        update={"rate_limit_backend": "redis", "redis_url": "redis://127.0.0.1:1/0"}
    )
    with TestClient(build_app(broken)) as client:
        return client.post("/v1/defend", json=EVENT, headers=env.headers())


def _storage_down(env: Env) -> httpx.Response:
    return _unreachable_db(env, "/v1/stats")


def _not_ready(env: Env) -> httpx.Response:
    return _unreachable_db(env, "/health/ready")


def _hook_source(env: Env) -> dict[str, str]:
    r = env.client.post("/v1/hook-sources", json={"name": "s"}, headers=env.headers())
    created: dict[str, str] = r.json()
    return created


def _secret_too_short(env: Env) -> httpx.Response:
    source = _hook_source(env)["source_id"]
    short = "whsec_" + base64.b64encode(b"x" * 16).decode()
    return env.client.post(
        f"/v1/hook-sources/{source}/secrets", json={"secret": short}, headers=env.headers()
    )


def _secret_in_use(env: Env) -> httpx.Response:
    source = _hook_source(env)
    return env.client.post(
        f"/v1/hook-sources/{source['source_id']}/secrets",
        json={"secret": source["secret"]},
        headers=env.headers(),
    )


def _third_secret(env: Env) -> httpx.Response:
    path = f"/v1/hook-sources/{_hook_source(env)['source_id']}/secrets"
    env.client.post(path, json={}, headers=env.headers())
    return env.client.post(path, json={}, headers=env.headers())


def _replayed(env: Env) -> httpx.Response:
    source = _hook_source(env)
    body = b'{"event_type": "x"}'
    now = int(time.time())
    headers = signed_headers(decode_secret(source["secret"]), "dup-1", now, body)
    headers["content-type"] = "application/json"
    env.client.post(f"/v1/hooks/{source['source_id']}", content=body, headers=headers)
    return env.client.post(f"/v1/hooks/{source['source_id']}", content=body, headers=headers)


def _packet_history_changed(env: Env) -> httpx.Response:
    env.client.post(
        "/v1/ingest",
        json={"events": [dict(EVENT, event_id=f"p{i}") for i in range(4)]},
        headers=env.headers(),
    )
    window = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    created = env.client.post("/v1/forensics/packets", json=window, headers=env.headers())
    with env.db.write.begin() as conn:
        conn.exec_driver_sql("UPDATE decisions SET score = 3 WHERE tenant_id = 'acme' AND seq = 1")
    return env.client.get(created.json()["download"], headers=env.headers())


def _guarded_pending(env: Env) -> str:
    event = {
        "source": "sshd",
        "event_type": "auth.failed",
        "persona": "guardian",
        "classification": "SECRET",
        "payload": {"src_ip": "203.0.113.44", "failed_auths": 9},
    }
    env.client.post("/v1/defend", json=event, headers=env.headers())
    items = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()
    mitigation_id: str = items["items"][0]["mitigation_id"]
    return mitigation_id


def _approve_own(env: Env) -> httpx.Response:
    return env.client.post(
        f"/v1/mitigations/{_guarded_pending(env)}/approve", headers=env.headers()
    )


def _lift_twice(env: Env) -> httpx.Response:
    mitigation_id = _guarded_pending(env)
    env.client.delete(f"/v1/mitigations/{mitigation_id}", headers=env.headers())
    return env.client.delete(f"/v1/mitigations/{mitigation_id}", headers=env.headers())


TRIGGERS: dict[ErrorCode, Trigger] = {
    ErrorCode.NOT_FOUND: lambda env: env.client.get("/v1/nothing"),
    ErrorCode.MALFORMED_REQUEST: lambda env: _over_the_wire(
        env, b"GET / HTTP/1.1\r\nno colon\r\n\r\n"
    ),
    ErrorCode.HEAD_TIMEOUT: lambda env: _over_the_wire(env, b"GET /health/live HTTP/1.1\r\n"),
    ErrorCode.BODY_TOO_LARGE: lambda env: _post_raw(env, "/v1/defend", b" " * (1024 * 1024 + 1)),
    ErrorCode.URI_TOO_LONG: lambda env: env.client.get("/v1/stats?x=" + "a" * 5000),
    ErrorCode.HEADERS_TOO_LARGE: lambda env: env.client.get(
        "/health/live", headers={f"x-{i}": "v" for i in range(100)}
    ),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: lambda env: env.client.post(
        "/v1/defend", content=b"{}", headers={**env.headers(), "content-type": "text/plain"}
    ),
    ErrorCode.MALFORMED_JSON: lambda env: _post_raw(env, "/v1/defend", b"{"),
    ErrorCode.JSON_TOO_DEEP: lambda env: _post_raw(env, "/v1/defend", orjson.dumps(_nested(20))),
    ErrorCode.ARRAY_TOO_LONG: lambda env: _post_raw(
        env, "/v1/defend", orjson.dumps({"x": [0] * 1001})
    ),
    ErrorCode.STRING_TOO_LONG: lambda env: _post_raw(
        env, "/v1/defend", orjson.dumps({"x": "a" * 9000})
    ),
    ErrorCode.BATCH_TOO_LARGE: _batch_too_large,
    ErrorCode.BATCH_EMPTY: lambda env: _post_raw(env, "/v1/ingest", b'{"events": []}'),
    ErrorCode.VALIDATION_FAILED: lambda env: _post_raw(env, "/v1/ingest", b'{"events": 5}'),
    ErrorCode.EVENT_INVALID: lambda env: _post_raw(env, "/v1/defend", b'{"event_type": 5}'),
    ErrorCode.EVENT_ID_REQUIRED: lambda env: _post_raw(env, "/v1/ingest", b'{"events": [{}]}'),
    ErrorCode.EVENT_ID_INVALID: lambda env: _post_raw(env, "/v1/defend", b'{"event_id": "a b"}'),
    ErrorCode.TIMESTAMP_INVALID: lambda env: _post_raw(env, "/v1/defend", b'{"timestamp": "soon"}'),
    ErrorCode.FILTER_INVALID: lambda env: env.client.get(
        "/v1/decisions?threat_level=x", headers=env.headers()
    ),
    ErrorCode.CURSOR_INVALID: lambda env: env.client.get(
        "/v1/decisions?cursor=z", headers=env.headers()
    ),
    ErrorCode.RANGE_INVALID: lambda env: env.client.get(
        "/v1/forensics/chain/verify?start=5&end=2", headers=env.headers()
    ),
    ErrorCode.DUPLICATE_EVENT_IN_BATCH: lambda env: _post_raw(
        env, "/v1/ingest", b'{"events": [{"event_id": "d"}, {"event_id": "d"}]}'
    ),
    ErrorCode.AUTH_REQUIRED: lambda env: env.client.get("/v1/stats", headers={"X-API-Key": FORGED}),
    ErrorCode.KEY_IN_QUERY: lambda env: env.client.get(f"/v1/stats?api_key={FORGED}"),
    ErrorCode.SCOPE_DENIED: lambda env: env.client.get("/v1/tenants", headers=env.headers()),
    ErrorCode.SCOPE_ESCALATION: _escalation,
    ErrorCode.TENANT_MISMATCH: lambda env: env.client.get(
        "/v1/stats?tenant=globex", headers=env.headers()
    ),
    ErrorCode.TENANT_SUSPENDED: _suspended,
    ErrorCode.IDEMPOTENCY_CONFLICT: _conflict,
    ErrorCode.TENANT_EXISTS: lambda env: env.client.post(
        "/v1/tenants", json={"tenant_id": "acme"}, headers=env.headers("platform")
    ),
    ErrorCode.KEY_NOT_ACTIVE: _revoked_twice,
    ErrorCode.PACKET_HISTORY_CHANGED: _packet_history_changed,
    ErrorCode.RATE_LIMITED: _limited,
    ErrorCode.QUOTA_EXCEEDED: _quota,
    ErrorCode.STORAGE_UNAVAILABLE: _storage_down,
    ErrorCode.NOT_READY: _not_ready,
    ErrorCode.RATE_LIMITER_UNAVAILABLE: _limiter_down,
    ErrorCode.QUERY_REPEATED: lambda env: env.client.get(
        "/v1/decisions?limit=1&limit=2", headers=env.headers()
    ),
    ErrorCode.QUERY_UNKNOWN: lambda env: env.client.get(
        "/v1/stats?sinse=2026-01-01", headers=env.headers()
    ),
    ErrorCode.CONCURRENCY_LIMITED: lambda env: _stub_gate(env, max_concurrent_per_address=0).get(
        "/health/live"
    ),
    ErrorCode.OVERLOADED: lambda env: _stub_gate(env, max_concurrent_requests=0).get(
        "/health/live"
    ),
    ErrorCode.REQUEST_TIMEOUT: lambda env: _stub_gate(env, request_timeout_seconds=0.1).get(
        "/v1/stats", headers=env.headers()
    ),
    ErrorCode.WEBHOOK_URL_REFUSED: lambda env: env.client.post(
        "/v1/webhooks", json={"url": "https://127.0.0.1/"}, headers=env.headers()
    ),
    ErrorCode.WEBHOOK_SECRET_INVALID: _secret_too_short,
    ErrorCode.WEBHOOK_SECRET_IN_USE: _secret_in_use,
    ErrorCode.LIMIT_REACHED: _third_secret,
    ErrorCode.SIGNATURE_INVALID: lambda env: env.client.post(
        "/v1/hooks/hsrc_unknown", content=b"{}", headers={"content-type": "application/json"}
    ),
    ErrorCode.WEBHOOK_REPLAYED: _replayed,
    ErrorCode.MITIGATION_INVALID: lambda env: env.client.post(
        "/v1/mitigations", json={"action": "block_ip", "value": "nope"}, headers=env.headers()
    ),
    ErrorCode.MITIGATION_STATE: _lift_twice,
    ErrorCode.APPROVAL_BY_PROPOSER: _approve_own,
    ErrorCode.INTERNAL: _failing_route,
}


REASONED = {
    ErrorCode.WEBHOOK_URL_REFUSED: {"forbidden address: loopback"},
    ErrorCode.MITIGATION_INVALID: {"not an IP address: 'nope'"},
    ErrorCode.EVENT_INVALID: {"event_type must be a string"},
    ErrorCode.VALIDATION_FAILED: {"the body must be an object whose events is a list of events"},
    ErrorCode.EVENT_ID_REQUIRED: {"events[0]"},
    ErrorCode.EVENT_ID_INVALID: {"event_id has a bad length or character"},
    ErrorCode.TIMESTAMP_INVALID: {"timestamp is not ISO 8601"},
    ErrorCode.DUPLICATE_EVENT_IN_BATCH: {"events[1] repeats the event_id of events[0]"},
    ErrorCode.QUERY_UNKNOWN: {"unknown query parameter 'sinse'"},
    ErrorCode.QUERY_REPEATED: {"query parameter 'limit'"},
    ErrorCode.LIMIT_REACHED: {"a hook source holds at most 2 active secrets: revoke one first"},
}


def test_every_code_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(ErrorCode)


def test_details_are_fixed_sentences_and_statuses_are_errors() -> None:
    for code in ErrorCode:
        assert 400 <= code.status <= 599
        assert code.detail.endswith(".")
    assert len({code.detail for code in ErrorCode}) == len(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
def test_each_code_is_produced_with_the_exact_contract(env: Env, code: ErrorCode) -> None:
    response = TRIGGERS[code](env)
    assert response.status_code == code.status, response.text
    assert response.headers["content-type"] == "application/json"
    expected = {
        "error_code": code.name,
        "detail": code.detail,
        "request_id": response.headers["x-request-id"],
    }
    if code in REASONED:
        # refusals whose wording is ours say why (which rule, field or batch item)
        expected["reason"] = response.json()["reason"]
        assert expected["reason"] in REASONED[code]
    assert response.json() == expected
