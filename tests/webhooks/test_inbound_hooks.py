"""Inbound webhooks (F1): only signed, fresh, first-seen deliveries become events."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.config import Settings
from tests.conftest import Env, second_key
from tests.webhooks.conftest import audit_items, settle_audit

EVENT = {"event_type": "auth.failed", "payload": {"src_ip": "198.51.100.9", "failed_auths": 8}}


def _source(env: Env, who: str = "acme") -> dict[str, Any]:
    r = env.client.post("/v1/hook-sources", json={"name": "okta"}, headers=env.headers(who))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _signed(secret: str, body: bytes, msg_id: str, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def _post(env: Env, source_id: str, body: bytes, headers: dict[str, str]) -> Any:
    return env.client.post(f"/v1/hooks/{source_id}", content=body, headers=headers)


def test_a_signed_delivery_enters_the_decision_path(env: Env) -> None:
    source = _source(env)
    body = orjson.dumps(EVENT)
    r = _post(env, source["source_id"], body, _signed(source["secret"], body, "okta-1"))
    assert r.status_code == 200, r.text
    assert r.json()["event_id"] == "okta-1"
    assert r.json()["rules_triggered"] == ["brute_force"]
    stored = env.client.get("/v1/decisions/okta-1", headers=env.headers())
    assert stored.status_code == 200
    assert env.client.get("/v1/decisions/okta-1", headers=env.headers("globex")).status_code == 404


def test_a_replayed_delivery_is_refused(env: Env) -> None:
    source = _source(env)
    body = orjson.dumps(EVENT)
    headers = _signed(source["secret"], body, "okta-replay")
    assert _post(env, source["source_id"], body, headers).status_code == 200
    again = _post(env, source["source_id"], body, headers)
    assert again.status_code == 409
    assert again.json()["error_code"] == "WEBHOOK_REPLAYED"
    settle_audit(env)
    assert audit_items(env, "platform", "hook_rejected")
    # The source's own tenant sees it too (it was recorded for the platform only).
    [seen] = audit_items(env, "acme", "hook_rejected")
    assert seen["detail"]["source_id"] == source["source_id"]
    assert audit_items(env, "globex", "hook_rejected") == []


def test_a_bad_signature_on_a_tenants_source_reaches_its_audit_stream(env: Env) -> None:
    source = _source(env)
    body = orjson.dumps(EVENT)
    forged = "whsec_" + base64.b64encode(b"f" * 32).decode()
    assert _post(env, source["source_id"], body, _signed(forged, body, "f1")).status_code == 401
    assert _post(env, "hsrc_doesnotexist", body, _signed(forged, body, "f2")).status_code == 401
    settle_audit(env)
    [seen] = audit_items(env, "acme", "hook_rejected")
    assert seen["detail"] == {"source_id": source["source_id"], "reason": "signature mismatch"}
    # The platform sees both (repeats from one address within a minute are one summary).
    platform = audit_items(env, "platform", "hook_rejected")
    assert sum(item["count"] for item in platform) == 2
    assert audit_items(env, "globex", "hook_rejected") == []


@pytest.mark.parametrize(
    "attack",
    ["unsigned", "wrong_secret", "tampered_body", "old", "future", "bad_id", "v2_only"],
)
def test_bad_signatures_are_refused(env: Env, attack: str) -> None:
    source = _source(env)
    body = orjson.dumps(EVENT)
    other_secret = "whsec_" + base64.b64encode(b"z" * 32).decode()
    headers = {
        "unsigned": {"content-type": "application/json"},
        "wrong_secret": _signed(other_secret, body, "m1"),
        "tampered_body": _signed(source["secret"], b'{"event_type":"x"}', "m1"),
        "old": _signed(source["secret"], body, "m1", at=int(time.time()) - 301),
        "future": _signed(source["secret"], body, "m1", at=int(time.time()) + 301),
        "bad_id": {**_signed(source["secret"], body, "m1"), "webhook-id": "m 1"},
        "v2_only": {
            **_signed(source["secret"], body, "m1"),
            "webhook-signature": "v2,abc",
        },
    }[attack]
    r = _post(env, source["source_id"], body, headers)
    assert r.status_code == 401
    assert r.json()["error_code"] == "SIGNATURE_INVALID"
    assert env.client.get("/v1/decisions", headers=env.headers()).json()["items"] == []


def test_an_unknown_source_looks_like_a_bad_signature(env: Env) -> None:
    body = orjson.dumps(EVENT)
    fake = "whsec_" + base64.b64encode(b"q" * 32).decode()
    r = _post(env, "hsrc_doesnotexist", body, _signed(fake, body, "m1"))
    assert r.status_code == 401
    assert r.json()["error_code"] == "SIGNATURE_INVALID"


def test_rotation_two_secrets_verify_then_the_old_one_is_revoked(env: Env) -> None:
    source = _source(env)
    sid = source["source_id"]
    r = env.client.post(f"/v1/hook-sources/{sid}/secrets", headers=env.headers())
    assert r.status_code == 201
    new = r.json()
    body = orjson.dumps(EVENT)
    assert _post(env, sid, body, _signed(source["secret"], body, "rot-old")).status_code == 200
    assert _post(env, sid, body, _signed(new["secret"], body, "rot-new")).status_code == 200
    listed = env.client.get("/v1/hook-sources", headers=env.headers()).json()["items"]
    assert len(listed[0]["secrets"]) == 2
    assert "secret" not in listed[0]["secrets"][0]
    revoke = env.client.delete(
        f"/v1/hook-sources/{sid}/secrets/{source['secret_id']}", headers=env.headers()
    )
    assert revoke.status_code == 204
    assert _post(env, sid, body, _signed(source["secret"], body, "rot-old2")).status_code == 401
    assert _post(env, sid, body, _signed(new["secret"], body, "rot-new2")).status_code == 200


def test_a_senders_own_secret_must_hold_32_bytes(env: Env) -> None:
    sid = _source(env)["source_id"]
    short = "whsec_" + base64.b64encode(b"s" * 31).decode()
    r = env.client.post(
        f"/v1/hook-sources/{sid}/secrets", json={"secret": short}, headers=env.headers()
    )
    assert r.status_code == 422
    assert r.json()["error_code"] == "WEBHOOK_SECRET_INVALID"
    good = "whsec_" + base64.b64encode(b"g" * 32).decode()
    r = env.client.post(
        f"/v1/hook-sources/{sid}/secrets", json={"secret": good}, headers=env.headers()
    )
    assert r.status_code == 201
    body = orjson.dumps(EVENT)
    assert _post(env, sid, body, _signed(good, body, "own-secret")).status_code == 200


def test_another_tenant_cannot_touch_my_source(env: Env) -> None:
    source = _source(env)
    sid = source["source_id"]
    g = env.headers("globex")
    assert env.client.post(f"/v1/hook-sources/{sid}/secrets", headers=g).status_code == 404
    r = env.client.delete(f"/v1/hook-sources/{sid}/secrets/{source['secret_id']}", headers=g)
    assert r.status_code == 404
    assert env.client.get("/v1/hook-sources", headers=g).json()["items"] == []


def _three_per_address_behind_a_proxy(env: Env) -> Settings:
    """Settings whose hook rate limit allows three deliveries per client, clients
    named by a trusted proxy at 10.0.0.1."""
    return env.settings.model_copy(
        update={
            "hook_rate_limit_burst": 3,
            "hook_rate_limit_per_second": 0.001,
            "trusted_proxy_cidrs": "10.0.0.1/32",
        }
    )


def test_a_flood_from_one_address_is_cut_off_before_the_handler(env: Env) -> None:
    """A keyless route is limited by client address: after its burst, an address that
    sprays unsigned deliveries gets 429 without reaching the signature check (no more
    lookups or audit failures for it), while a signed delivery from another address
    still becomes a decision. Addresses come from X-Forwarded-For via a trusted proxy."""
    settings = _three_per_address_behind_a_proxy(env)
    source = _source(env)
    body = orjson.dumps(EVENT)
    with TestClient(build_app(settings), client=("10.0.0.1", 40000)) as proxied:

        def post(address: str, headers: dict[str, str]) -> Any:
            return proxied.post(
                f"/v1/hooks/{source['source_id']}",
                content=body,
                headers={**headers, "x-forwarded-for": address},
            )

        unsigned = {"content-type": "application/json"}
        codes = [post("203.0.113.50", unsigned).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        refused = post("203.0.113.50", unsigned)
        assert refused.json()["error_code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-policy"].startswith('"address";q=3')
        # the flooding address spent its own bucket, nobody else's
        signed = _signed(source["secret"], body, "okta-other-address")
        accepted = post("203.0.113.51", signed)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["event_id"] == "okta-other-address"


def test_a_block_a_delivery_proposes_cannot_be_approved_by_the_sources_creator(
    env: Env,
) -> None:
    """A delivery has no key, so a pending mitigation it caused had no proposer and any
    key approved it, the one that set up the source (and so holds its secret) included.
    The source's creator is now its proposer."""
    source = _source(env)
    guarded = {
        "event_type": "auth.failed",
        "payload": {
            "src_ip": "198.51.100.77",
            "failed_auths": 7,
            "persona": "guardian",
            "classification": "SECRET",
        },
    }
    body = orjson.dumps(guarded)
    r = _post(env, source["source_id"], body, _signed(source["secret"], body, "g-1"))
    assert r.status_code == 200, r.text
    [pending] = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()[
        "items"
    ]
    mid = pending["mitigation_id"]
    own = env.client.post(f"/v1/mitigations/{mid}/approve", headers=env.headers())
    assert own.status_code == 403
    assert own.json()["error_code"] == "APPROVAL_BY_PROPOSER"
    other = env.client.post(
        f"/v1/mitigations/{mid}/approve", headers=second_key(env, {"mitigations:approve"})
    )
    assert other.status_code == 200, other.text


def _guarded_block(env: Env, source_id: str, secret: str, msg_id: str) -> str:
    """Deliver, signed with ``secret``, an event whose block waits for approval; its id."""
    guarded = {
        "event_type": "auth.failed",
        "payload": {
            "src_ip": "198.51.100.78",
            "failed_auths": 7,
            "persona": "guardian",
            "classification": "SECRET",
        },
    }
    body = orjson.dumps(guarded)
    r = _post(env, source_id, body, _signed(secret, body, msg_id))
    assert r.status_code == 200, r.text
    [pending] = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()[
        "items"
    ]
    mitigation_id: str = pending["mitigation_id"]
    return mitigation_id


def test_a_block_caused_through_an_added_secret_is_proposed_by_the_key_that_added_it(
    env: Env,
) -> None:
    """Only the source's creator was recorded, so a second key that added a secret could
    send a delivery signed with it and approve the block it caused: one holder, both
    keys of the two-key rule. The secret that verified the delivery names its proposer."""
    source = _source(env)
    adder = second_key(env, {"webhooks:admin", "mitigations:approve"})
    added = env.client.post(
        f"/v1/hook-sources/{source['source_id']}/secrets", json={}, headers=adder
    )
    assert added.status_code == 201, added.text
    mid = _guarded_block(env, source["source_id"], added.json()["secret"], "g-added-1")
    own = env.client.post(f"/v1/mitigations/{mid}/approve", headers=adder)
    assert own.status_code == 403
    assert own.json()["error_code"] == "APPROVAL_BY_PROPOSER"
    # The source's creator never held the added secret: it is a second holder.
    creator = env.client.post(f"/v1/mitigations/{mid}/approve", headers=env.headers())
    assert creator.status_code == 200, creator.text


def test_a_secret_already_active_on_the_source_is_not_added_again(env: Env) -> None:
    """Two rows of one secret would make a delivery's signer ambiguous (which key holds
    it?), and re-adding the live secret rotates nothing."""
    source = _source(env)
    path = f"/v1/hook-sources/{source['source_id']}/secrets"
    again = env.client.post(path, json={"secret": source["secret"]}, headers=env.headers())
    assert again.status_code == 409, again.text
    assert again.json()["error_code"] == "WEBHOOK_SECRET_IN_USE"
    listed = env.client.get("/v1/hook-sources", headers=env.headers()).json()["items"]
    assert [len(s["secrets"]) for s in listed] == [1]
    # Once revoked, the same secret may come back (a sender that cannot change its own).
    [secret_id] = [s["secret_id"] for s in listed[0]["secrets"]]
    assert env.client.delete(f"{path}/{secret_id}", headers=env.headers()).status_code == 204
    back = env.client.post(path, json={"secret": source["secret"]}, headers=env.headers())
    assert back.status_code == 201, back.text


def test_a_source_holds_at_most_two_active_secrets(env: Env) -> None:
    """Every delivery is checked against every active secret (an HMAC over the whole
    body each): with no cap, a tenant that added 1,000 secrets to its own source made
    each unsigned 1 MiB post cost 0.8 s of the event loop, stalling every tenant. A
    rotation needs two."""
    source = _source(env)
    path = f"/v1/hook-sources/{source['source_id']}/secrets"
    second = env.client.post(path, json={}, headers=env.headers())
    assert second.status_code == 201, second.text
    third = env.client.post(path, json={}, headers=env.headers())
    assert third.status_code == 409, third.text
    assert third.json()["error_code"] == "LIMIT_REACHED"
    assert "revoke" in third.json()["reason"]
    [listed] = env.client.get("/v1/hook-sources", headers=env.headers()).json()["items"]
    assert len(listed["secrets"]) == 2
    first_id = listed["secrets"][0]["secret_id"]
    assert env.client.delete(f"{path}/{first_id}", headers=env.headers()).status_code == 204
    assert env.client.post(path, json={}, headers=env.headers()).status_code == 201


def test_an_ipv6_flood_spread_over_one_64_shares_one_bucket(env: Env) -> None:
    """The hook rate limit keyed each IPv6 address apart: ten addresses of one /64 sent
    500 unsigned deliveries each, all reaching the signature check. A /64 is one
    client's usual allocation; it is one bucket, as it is one in-flight share."""
    settings = _three_per_address_behind_a_proxy(env)
    source = _source(env)
    with TestClient(build_app(settings), client=("10.0.0.1", 40000)) as proxied:
        codes = [
            proxied.post(
                f"/v1/hooks/{source['source_id']}",
                content=b"{}",
                headers={
                    "content-type": "application/json",
                    "x-forwarded-for": f"2001:db8:77:1::{n:x}",
                },
            ).status_code
            for n in range(1, 7)
        ]
        assert codes == [401, 401, 401, 429, 429, 429]
        other = proxied.post(
            f"/v1/hooks/{source['source_id']}",
            content=b"{}",
            headers={"content-type": "application/json", "x-forwarded-for": "2001:db8:77:2::1"},
        )
        assert other.status_code == 401  # the next /64 has its own bucket


def test_a_secret_from_before_holders_were_recorded_is_the_sources_creators(env: Env) -> None:
    """Secrets stored before migration 0010 have no recorded holder. Its backfill ran as
    the owner role, which PostgreSQL's forced row-level security shows no rows, so they
    kept none and their deliveries' blocks had no proposer: the source's creator could
    approve them again. Such a secret is its source creator's, as before."""
    source = _source(env)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE hook_source_secrets SET created_by = NULL"))
    mid = _guarded_block(env, source["source_id"], source["secret"], "g-legacy-1")
    own = env.client.post(f"/v1/mitigations/{mid}/approve", headers=env.headers())
    assert own.status_code == 403, own.text
    assert own.json()["error_code"] == "APPROVAL_BY_PROPOSER"


def test_only_the_newest_two_secrets_of_a_source_verify(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources that held more secrets before the cap keep them, and each costs an HMAC
    over the whole body of every delivery: only the two newest are tried."""
    from frostgate.security import hook_sources

    source = _source(env)
    path = f"/v1/hook-sources/{source['source_id']}/secrets"
    monkeypatch.setattr(hook_sources, "MAX_ACTIVE_SECRETS", 3)  # data from before the cap
    second = env.client.post(path, json={}, headers=env.headers()).json()["secret"]
    third = env.client.post(path, json={}, headers=env.headers()).json()["secret"]
    monkeypatch.undo()
    body = orjson.dumps(EVENT)
    oldest = _post(env, source["source_id"], body, _signed(source["secret"], body, "old-1"))
    assert oldest.status_code == 401
    for n, secret in enumerate((second, third)):
        r = _post(env, source["source_id"], body, _signed(secret, body, f"new-{n}"))
        assert r.status_code == 200, r.text
