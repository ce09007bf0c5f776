"""Endpoint administration: refusals at creation, tenant isolation, scopes."""

from __future__ import annotations

import pytest

from tests.conftest import Env
from tests.egress.receivers import Receiver
from tests.webhooks.conftest import audit_items, create_endpoint, settle_audit


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "allowlisted hosts"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("https://0x7f.1/", "ambiguous numeric host"),
        ("https://user@hooks.example.com/", "userinfo"),
        ("https://hooks.example.com:22/", "port 22"),
        ("ftp://hooks.example.com/", "scheme"),
        ("https://hooks.example.com/" + "a" * 3000, "too long"),
        ("not a url", "whitespace"),
        ("", "empty"),
    ],
)
def test_forbidden_urls_are_refused_at_creation_with_the_reason(
    env: Env, url: str, reason: str
) -> None:
    r = env.client.post("/v1/webhooks", json={"url": url}, headers=env.headers())
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_code"] == "WEBHOOK_URL_REFUSED"
    assert reason in body["reason"]
    assert env.client.get("/v1/webhooks", headers=env.headers()).json()["items"] == []
    settle_audit(env)
    [event] = audit_items(env, "acme", "egress_refused")
    assert reason in event["detail"]["reason"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": 5},
        {"url": "https://hooks.example.com/", "min_threat_level": "none"},
        {"url": "https://hooks.example.com/", "min_threat_level": "extreme"},
        {"url": "https://hooks.example.com/", "event_types": "auth.failed"},
        {"url": "https://hooks.example.com/", "max_per_minute": 0},
        {"url": "https://hooks.example.com/", "max_per_minute": True},
        {"url": "https://hooks.example.com/", "enabled": "yes"},
        ["https://hooks.example.com/"],
    ],
)
def test_malformed_endpoint_bodies_are_refused(env: Env, body: object) -> None:
    r = env.client.post("/v1/webhooks", json=body, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "VALIDATION_FAILED"


def test_a_public_https_url_is_accepted_and_the_secret_shown_once(env: Env) -> None:
    r = env.client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/frostgate", "description": "SOC"},
        headers=env.headers(),
    )
    assert r.status_code == 201
    assert r.json()["secret"].startswith("whsec_")
    [listed] = env.client.get("/v1/webhooks", headers=env.headers()).json()["items"]
    assert listed["url"] == "https://hooks.example.com/frostgate"
    assert "secret" not in listed
    settle_audit(env)
    assert audit_items(env, "acme", "webhook_created")


def test_another_tenants_endpoint_does_not_exist_for_me(env: Env, receiver: Receiver) -> None:
    mine = create_endpoint(env, receiver, who="acme")
    endpoint_id = mine["endpoint_id"]
    g = env.headers("globex")
    assert env.client.get("/v1/webhooks", headers=g).json()["items"] == []
    assert env.client.delete(f"/v1/webhooks/{endpoint_id}", headers=g).status_code == 404
    assert env.client.post(f"/v1/webhooks/{endpoint_id}/test", headers=g).status_code == 404
    assert env.client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=g).status_code == 404
    r = env.client.patch(f"/v1/webhooks/{endpoint_id}", json={"enabled": False}, headers=g)
    assert r.status_code == 404
    assert receiver.seen == []
    # and the owner still has it, enabled
    [listed] = env.client.get("/v1/webhooks", headers=env.headers("acme")).json()["items"]
    assert listed["enabled"] is True


def test_platform_endpoints_are_separate_from_tenant_endpoints(
    env: Env, receiver: Receiver
) -> None:
    create_endpoint(env, receiver, who="platform")
    assert env.client.get("/v1/webhooks", headers=env.headers("acme")).json()["items"] == []
    assert len(env.client.get("/v1/webhooks", headers=env.headers("platform")).json()["items"]) == 1


def test_the_tenant_egress_allowlist_narrows_endpoints(env: Env) -> None:
    from frostgate.store import webhooks as repo

    with env.db.write.begin() as conn:
        repo.set_egress_hosts(conn, "acme", ["hooks.example.com"])
    ok = env.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=env.headers()
    )
    assert ok.status_code == 201
    refused = env.client.post(
        "/v1/webhooks", json={"url": "https://elsewhere.example.com/x"}, headers=env.headers()
    )
    assert refused.status_code == 422
    assert "allowlist" in refused.json()["reason"]
    # globex has no allowlist
    other = env.client.post(
        "/v1/webhooks",
        json={"url": "https://elsewhere.example.com/x"},
        headers=env.headers("globex"),
    )
    assert other.status_code == 201


def test_a_tenant_has_at_most_fifty_live_endpoints(env: Env) -> None:
    """Each endpoint is one more delivery per alert, all sharing the delivery workers;
    the number a tenant may hold is bounded. A deleted endpoint frees its place."""
    ids = []
    for n in range(50):
        r = env.client.post(
            "/v1/webhooks", json={"url": f"https://hooks.example.com/{n}"}, headers=env.headers()
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["endpoint_id"])
    over = env.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=env.headers()
    )
    assert over.status_code == 409, over.text
    assert over.json()["error_code"] == "LIMIT_REACHED"
    other = env.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/g"}, headers=env.headers("globex")
    )
    assert other.status_code == 201, other.text
    assert env.client.delete(f"/v1/webhooks/{ids[0]}", headers=env.headers()).status_code == 204
    again = env.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=env.headers()
    )
    assert again.status_code == 201, again.text
