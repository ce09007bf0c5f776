"""Rate limiting at the gate: every write route, per key and per tenant, fail closed."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.security import TENANT_SCOPES, admin
from frostgate.security.peppers import load_peppers
from tests.conftest import Env

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


def _client(env: Env, **overrides: object) -> TestClient:
    return TestClient(build_app(env.settings.model_copy(update=overrides)))


def test_write_routes_are_limited_per_key_with_headers(env: Env) -> None:
    with _client(env, rate_limit_key_burst=3, rate_limit_key_per_second=0.01) as client:
        answers = [client.post("/v1/defend", json=EVENT, headers=env.headers()) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["ratelimit-remaining"] == "2"
        refused = answers[3]
        assert refused.json()["error_code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-policy"].startswith('"key";q=3')
        # Reads are not write routes; another key of the same tenant has its own bucket.
        assert client.get("/v1/stats", headers=env.headers()).status_code == 200
        other = admin.mint_key(
            env.db, load_peppers(env.settings), tenant_id="acme", scopes=TENANT_SCOPES
        ).token
        ok = client.post("/v1/defend", json=EVENT, headers={"Authorization": f"Bearer {other}"})
        assert ok.status_code == 200


def test_tenant_bucket_spans_its_keys(env: Env) -> None:
    peppers = load_peppers(env.settings)
    tokens = [
        admin.mint_key(env.db, peppers, tenant_id="acme", scopes=TENANT_SCOPES).token
        for _ in range(3)
    ]
    with _client(env, rate_limit_tenant_burst=2, rate_limit_tenant_per_second=0.01) as client:
        codes = [
            client.post(
                "/v1/defend", json=EVENT, headers={"Authorization": f"Bearer {t}"}
            ).status_code
            for t in tokens
        ]
        assert codes == [200, 200, 429]
        assert (
            client.post("/v1/defend", json=EVENT, headers=env.headers("globex")).status_code == 200
        )


def test_every_write_route_is_limited(env: Env) -> None:
    from frostgate.security import ROUTES

    with _client(env, rate_limit_key_burst=1, rate_limit_key_per_second=0.001) as client:
        for spec in ROUTES:
            if not spec.writes or spec.public:
                continue
            who = "platform" if "platform" in spec.kinds and "tenant" not in spec.kinds else "acme"
            # A fresh key per route, so each starts with one token.
            kind = "platform" if who == "platform" else "tenant"
            token = admin.mint_key(
                env.db,
                load_peppers(env.settings),
                tenant_id=None if kind == "platform" else "acme",
                kind=kind,
                scopes=spec.scopes,
            ).token
            path = spec.path.replace("{key_id}", "0" * 16).replace("{tenant_id}", "acme")
            headers = {"Authorization": f"Bearer {token}"}
            # A body only where the route takes one (else the gate refuses it first).
            body = {} if (spec.method, spec.path) in client.app.bodyless else {"json": {}}  # type: ignore[attr-defined]
            client.request(spec.method, path, headers=headers, **body)
            second = client.request(spec.method, path, headers=headers, **body)
            assert second.status_code == 429, spec


def test_unreachable_redis_fails_closed(env: Env) -> None:
    with _client(env, rate_limit_backend="redis", redis_url="redis://127.0.0.1:1/0") as client:
        r = client.post("/v1/defend", json=EVENT, headers=env.headers())
        assert r.status_code == 503
        assert r.json()["error_code"] == "RATE_LIMITER_UNAVAILABLE"
        assert client.get("/v1/stats", headers=env.headers()).status_code == 200


def test_redis_backend_limits_across_app_instances(env: Env) -> None:
    """Two app instances (as two processes would) share one Redis bucket."""
    key = admin.mint_key(env.db, load_peppers(env.settings), tenant_id="acme", scopes=TENANT_SCOPES)
    headers = {"Authorization": f"Bearer {key.token}"}
    overrides = {
        "rate_limit_backend": "redis",
        "redis_url": "redis://127.0.0.1:6379/0",
        "rate_limit_key_burst": 4,
        "rate_limit_key_per_second": 0.001,
    }
    with _client(env, **overrides) as one, _client(env, **overrides) as two:
        codes = [
            c.post("/v1/defend", json=EVENT, headers=headers).status_code for c in (one, two) * 3
        ]
    assert codes.count(200) == 4
    assert codes.count(429) == 2


def test_redis_setting_without_url_refuses_to_build(env: Env) -> None:
    with pytest.raises(RuntimeError, match="FG_REDIS_URL"):
        build_app(env.settings.model_copy(update={"rate_limit_backend": "redis", "redis_url": ""}))
