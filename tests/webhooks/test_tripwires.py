"""Canary keys and honeypot paths: denied like anything else, recorded, alerted."""

from __future__ import annotations

import time

from standardwebhooks.webhooks import Webhook

from frostgate.security.keys import parse_key
from tests.conftest import Env
from tests.egress.receivers import Receiver
from tests.webhooks.conftest import audit_items, create_endpoint, settle_audit, wait_for

FORGED = "fgk_" + "0" * 16 + "_" + "A" * 43


def test_a_canary_key_looks_real_and_tripping_it_yields_one_event_and_one_alert(
    env: Env, receiver: Receiver
) -> None:
    endpoint = create_endpoint(env, receiver, min_threat_level="critical")
    r = env.client.post(
        "/v1/tripwires/canary-keys", json={"label": "ci secrets"}, headers=env.headers()
    )
    assert r.status_code == 201
    canary = r.json()["key"]
    assert parse_key(canary) is not None  # same format as a real key, no marker
    assert "canary" not in canary
    listed = env.client.get("/v1/keys", headers=env.headers()).json()["items"]
    assert r.json()["key_id"] not in {k["key_id"] for k in listed}

    tripped = env.client.get(
        "/v1/decisions",
        headers={"Authorization": f"Bearer {canary}", "X-Forwarded-For": "203.0.113.66"},
    )
    forged = env.client.get("/v1/decisions", headers={"Authorization": f"Bearer {FORGED}"})
    assert tripped.status_code == forged.status_code == 401
    assert tripped.json()["error_code"] == forged.json()["error_code"]
    assert tripped.json()["detail"] == forged.json()["detail"]

    [seen] = wait_for(lambda: receiver.seen)
    payload = Webhook(endpoint["secret"]).verify(seen.body, seen.headers)
    assert payload["type"] == "tripwire.canary_key"
    assert payload["data"]["key_id"] == r.json()["key_id"]
    assert payload["data"]["client_ip"] == "testclient"
    settle_audit(env)
    events = audit_items(env, "acme", "canary_key_used")
    assert len(events) == 1
    assert events[0]["severity"] == "critical"
    time.sleep(0.3)
    assert len(receiver.seen) == 1


def test_tenant_keys_without_the_scope_cannot_mint_canaries(env: Env) -> None:
    from frostgate.security import admin
    from frostgate.security.peppers import load_peppers

    reader = admin.mint_key(
        env.db,
        load_peppers(env.settings),
        tenant_id="acme",
        scopes=frozenset({"decisions:read"}),
    ).token
    r = env.client.post("/v1/tripwires/canary-keys", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    r = env.client.post("/v1/tripwires/canary-keys", headers=env.headers("platform"))
    assert r.status_code == 403


def test_honeypot_paths_answer_404_like_any_path_and_alert_once_per_source(
    env: Env, receiver: Receiver
) -> None:
    endpoint = create_endpoint(env, receiver, who="platform")
    unknown = env.client.get("/definitely-not-here")
    for path in ("/.env", "/.ENV", "/.git/config", "/wp-admin/") * 10:
        r = env.client.get(path)
        assert r.status_code == unknown.status_code == 404
        assert r.json()["error_code"] == unknown.json()["error_code"]
    [seen] = wait_for(lambda: receiver.seen)
    payload = Webhook(endpoint["secret"]).verify(seen.body, seen.headers)
    assert payload["type"] == "tripwire.honeypot"
    assert payload["data"]["route"] == "GET /.env"
    settle_audit(env)
    events = audit_items(env, "platform", "honeypot_hit")
    assert sorted(e["count"] for e in events) == [1, 39]
    # the summary alerts once more with its count; 40 hits never became 40 alerts
    wait_for(lambda: len(receiver.seen) == 2)
    time.sleep(0.3)
    assert len(receiver.seen) == 2
    summary = Webhook(endpoint["secret"]).verify(receiver.seen[1].body, receiver.seen[1].headers)
    assert summary["data"]["count"] == 39
    # unknown paths that are not honeypots raise nothing
    assert audit_items(env, "platform", "honeypot_hit") == events
