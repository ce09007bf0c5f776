"""Regression tests for the security review of the alerting and enforcement work."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from frostgate.delivery.retry import retry_after
from frostgate.egress import EgressPolicy, EgressRefused
from tests.conftest import Env
from tests.enforcement.test_mitigations import brute, defend, lookup, second_key


@pytest.mark.parametrize(
    "probe", ["::ffff:203.0.113.50", "::FFFF:CB00:7132", "203.0.113.50", "::ffff:203.0.113.50%eth0"]
)
def test_lookups_read_any_spelling_of_an_address(env: Env, probe: str) -> None:
    defend(env, brute("203.0.113.50", "spell-1"))
    assert [m["value"] for m in lookup(env, probe)] == ["203.0.113.50"]


def test_ipv6_spellings_match_and_mapped_ranges_are_refused(env: Env) -> None:
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "2001:db8::1", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.status_code == 201
    assert [m["value"] for m in lookup(env, "2001:0DB8:0:0::0001")] == ["2001:db8::1"]
    mapped = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "::ffff:0.0.0.0/96", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert mapped.status_code == 422


@pytest.mark.parametrize("value", ["\xb2", "9" * 40 + " GMT", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_hostile_retry_after_values_never_raise(value: str) -> None:
    delay = retry_after(value, datetime.now(UTC))
    assert delay is None or delay <= timedelta(hours=1)


def test_non_ascii_paths_are_refused_before_any_request() -> None:
    with pytest.raises(EgressRefused, match="ASCII"):
        EgressPolicy().destination("https://hooks.example.com/\u00e9")
    assert EgressPolicy().destination("https://hooks.example.com/%C3%A9").target == "/%C3%A9"


def test_an_unbounded_blast_radius_window_is_refused(env: Env) -> None:
    r = env.client.put(
        "/v1/enforcement/envelope",
        json={"blast_radius": {"max_blocks": 1, "window_seconds": 10**13}},
        headers=env.headers(),
    )
    assert r.status_code == 422
    # and the tenant's decisions keep working
    assert defend(env, brute("203.0.113.51", "after-bad-envelope"))["threat_level"] == "high"


def test_approval_cannot_override_an_allowlist_added_since(env: Env) -> None:
    event = brute("203.0.113.52", "gated", persona="guardian", classification="secret")
    defend(env, event)
    [pending] = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()[
        "items"
    ]
    env.client.put(
        "/v1/enforcement/envelope",
        json={"allowlist": {"cidrs": ["203.0.113.0/24"]}},
        headers=env.headers(),
    )
    r = env.client.post(
        f"/v1/mitigations/{pending['mitigation_id']}/approve",
        headers=second_key(env, {"mitigations:approve"}),
    )
    assert r.status_code == 422
    assert lookup(env, "203.0.113.52") == []


def test_a_suspended_tenants_hook_source_is_refused(env: Env) -> None:
    source = env.client.post(
        "/v1/hook-sources", json={"name": "okta"}, headers=env.headers()
    ).json()
    body = orjson.dumps({"event_type": "x"})
    now = int(time.time())
    signature = Webhook(source["secret"]).sign(
        "h1", datetime.fromtimestamp(now, UTC), body.decode()
    )
    headers = {
        "webhook-id": "h1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    assert (
        env.client.post("/v1/tenants/acme/suspend", headers=env.headers("platform")).status_code
        == 200
    )
    r = env.client.post(f"/v1/hooks/{source['source_id']}", content=body, headers=headers)
    assert r.status_code == 401
