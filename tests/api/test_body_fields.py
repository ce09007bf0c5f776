"""A request body holding a field its route does not take is refused, not half-read.

Before, handlers read the fields they knew and ignored the rest: a mitigation posted
with ``"ttl": 60`` (for ``ttl_seconds``) lasted the default hour, and a forensic packet
asked for with ``"tenant_id": "globex"`` silently became one of the caller's tenant.
The fields each route takes are those its served OpenAPI document declares.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Env

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("acme", "/v1/mitigations", {"action": "block_ip", "value": "203.0.113.5", "ttl": 60}, "ttl"),
    (
        "acme",
        "/v1/forensics/packets",
        {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z", "tenant_id": "g"},
        "tenant_id",
    ),
    ("acme", "/v1/keys", {"scopes": ["feed:read"], "ttl": 60}, "ttl"),
    (
        "acme",
        "/v1/webhooks",
        {"url": "https://hooks.example.com/", "min_level": "low"},
        "min_level",
    ),
    ("acme", "/v1/hook-sources", {"name": "okta", "secret": "x"}, "secret"),
    ("acme", "/v1/tripwires/canary-keys", {"label": "x", "scopes": ["admin"]}, "scopes"),
    ("platform", "/v1/tenants", {"tenant_id": "initech", "quota": 5}, "quota"),
]


@pytest.mark.parametrize(("who", "path", "body", "field"), CASES, ids=[c[1] for c in CASES])
def test_an_undeclared_body_field_is_refused_and_nothing_is_made(
    env: Env, who: str, path: str, body: dict[str, Any], field: str
) -> None:
    r = env.client.post(path, json=body, headers=env.headers(who))
    assert r.status_code == 422, r.text
    assert r.json()["error_code"] == "VALIDATION_FAILED"
    assert r.json()["reason"] == f"unknown field {field!r}"
    listing = {
        "/v1/mitigations": "/v1/mitigations",
        "/v1/webhooks": "/v1/webhooks",
        "/v1/hook-sources": "/v1/hook-sources",
    }.get(path)
    if listing is not None:
        assert env.client.get(listing, headers=env.headers(who)).json()["items"] == []


def test_a_field_name_that_is_not_plain_is_not_repeated(env: Env) -> None:
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "203.0.113.5", "<script>": 1},
        headers=env.headers(),
    )
    assert r.status_code == 422
    assert r.json()["reason"] == "unknown field"


def test_declared_fields_and_open_event_bodies_still_pass(env: Env) -> None:
    ok = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "203.0.113.5", "ttl_seconds": 600, "reason": "r"},
        headers=env.headers(),
    )
    assert ok.status_code == 201, ok.text
    event = {"event_type": "auth.failed", "anything": {"goes": 1}, "custom_field": "x"}
    assert env.client.post("/v1/defend", json=event, headers=env.headers()).status_code == 200


@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("platform", "POST", "/v1/tenants/globex/suspend"),
        ("acme", "POST", "/v1/mitigations/mit_x/approve"),
        ("acme", "DELETE", "/v1/keys/key_x"),
        ("acme", "GET", "/v1/decisions"),
    ],
)
def test_a_body_sent_to_a_route_that_takes_none_is_refused(
    env: Env, who: str, method: str, path: str
) -> None:
    """``POST /v1/tenants/evil/suspend`` with ``{"dry_run": true}`` suspended the tenant:
    a route that declares no body read none, whatever it was sent."""
    r = env.client.request(
        method,
        path,
        content=b'{"dry_run": true}',
        headers={**env.headers(who), "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error_code"] == "VALIDATION_FAILED"
    assert r.json()["reason"] == "this route takes no body"
    status = env.client.get("/v1/tenants", headers=env.headers("platform")).json()
    assert {t["tenant_id"]: t["status"] for t in status["items"]}["globex"] == "active"
