"""API key lifecycle over HTTP: mint without escalation, list without secrets, rotate
with a grace period, revoke one key, expiry, pepper rotation with hash upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.security import admin
from frostgate.security.peppers import load_peppers
from frostgate.store import keys as key_repo
from frostgate.store import schema
from tests.conftest import Env


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _mint(env: Env, body: dict[str, object], who: str = "acme") -> dict[str, object]:
    r = env.client.post("/v1/keys", json=body, headers=env.headers(who))
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


def test_tenant_key_mints_a_subset_in_its_own_tenant(env: Env) -> None:
    issued = _mint(env, {"scopes": ["feed:read"], "label": "dashboards", "ttl_seconds": 3600})
    assert issued["tenant_id"] == "acme"
    token = str(issued["key"])
    assert token.startswith(f"fgk_{issued['key_id']}_")
    assert env.client.get("/v1/feed/live", headers=_bearer(token)).status_code == 200
    assert env.client.get("/v1/stats", headers=_bearer(token)).status_code == 403


def test_minting_cannot_escalate(env: Env) -> None:
    small = str(_mint(env, {"scopes": ["keys:admin", "feed:read"]})["key"])
    r = env.client.post(
        "/v1/keys", json={"scopes": ["feed:read", "defend:write"]}, headers=_bearer(small)
    )
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_ESCALATION"
    for body in (
        {"scopes": ["tenants:admin"]},
        {"scopes": ["feed:read"], "kind": "platform"},
    ):
        r = env.client.post("/v1/keys", json=body, headers=env.headers())
        assert r.status_code in (403, 422), body
    r = env.client.post(
        "/v1/keys", json={"scopes": ["feed:read"], "tenant_id": "globex"}, headers=env.headers()
    )
    assert r.status_code == 403
    assert r.json()["error_code"] == "TENANT_MISMATCH"


def test_platform_key_mints_a_tenants_first_key_but_reads_no_tenant_data(env: Env) -> None:
    issued = _mint(env, {"tenant_id": "globex", "scopes": ["stats:read"]}, who="platform")
    assert issued["tenant_id"] == "globex"
    assert env.client.get("/v1/stats", headers=_bearer(str(issued["key"]))).status_code == 200
    assert env.client.get("/v1/stats", headers=env.headers("platform")).status_code == 403
    r = env.client.post(
        "/v1/keys",
        json={"tenant_id": "nope", "scopes": ["stats:read"]},
        headers=env.headers("platform"),
    )
    assert r.status_code == 404


def test_list_never_returns_secrets_or_hashes_and_hides_foreign_keys(env: Env) -> None:
    issued = _mint(env, {"scopes": ["feed:read"]})
    listed = env.client.get("/v1/keys", headers=env.headers())
    assert listed.status_code == 200
    text = listed.text
    secret = str(issued["key"]).split("_", 2)[2]
    assert secret not in text
    with env.db.read.connect() as conn:
        hashes = [h for (h,) in conn.execute(sa.select(schema.api_keys.c.secret_hash))]
    assert not any(h in text for h in hashes)
    tenants = {item["tenant_id"] for item in listed.json()["items"]}
    assert tenants == {"acme"}
    foreign = env.client.get("/v1/keys?tenant_id=globex", headers=env.headers())
    assert foreign.status_code == 403


def test_revoke_addresses_one_key_only(env: Env) -> None:
    a = _mint(env, {"scopes": ["feed:read"]})
    b = _mint(env, {"scopes": ["feed:read"]})
    r = env.client.delete(f"/v1/keys/{a['key_id']}", headers=env.headers())
    assert r.status_code == 200
    assert env.client.get("/v1/feed/live", headers=_bearer(str(a["key"]))).status_code == 401
    assert env.client.get("/v1/feed/live", headers=_bearer(str(b["key"]))).status_code == 200
    again = env.client.delete(f"/v1/keys/{a['key_id']}", headers=env.headers())
    assert again.status_code == 409


def test_foreign_key_cannot_be_revoked_or_rotated_and_looks_absent(env: Env) -> None:
    foreign = _mint(env, {"scopes": ["feed:read"]}, who="globex")
    for method, path in (
        ("DELETE", f"/v1/keys/{foreign['key_id']}"),
        ("POST", f"/v1/keys/{foreign['key_id']}/rotate"),
    ):
        r = env.client.request(method, path, headers=env.headers("acme"))
        assert r.status_code == 404
        assert r.json()["error_code"] == "NOT_FOUND"
    assert env.client.get("/v1/feed/live", headers=_bearer(str(foreign["key"]))).status_code == 200


def test_rotate_gives_a_new_key_and_the_old_one_a_grace_period(env: Env) -> None:
    old = _mint(env, {"scopes": ["feed:read"], "ttl_seconds": 86400})
    r = env.client.post(
        f"/v1/keys/{old['key_id']}/rotate", json={"grace_seconds": 60}, headers=env.headers()
    )
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["key_id"] != old["key_id"]
    assert new["scopes"] == ["feed:read"]
    grace_end = datetime.fromisoformat(new["previous"]["expires_at"])
    assert timedelta(seconds=50) < grace_end - datetime.now(UTC) <= timedelta(seconds=60)
    # Both work during the grace period.
    assert env.client.get("/v1/feed/live", headers=_bearer(str(old["key"]))).status_code == 200
    assert env.client.get("/v1/feed/live", headers=_bearer(new["key"])).status_code == 200
    # The new key keeps the old key's lifetime (one day), counted from now.
    new_expiry = datetime.fromisoformat(new["expires_at"])
    assert timedelta(hours=23) < new_expiry - datetime.now(UTC) <= timedelta(days=1)


def test_rotating_cannot_escalate(env: Env) -> None:
    """Rotating hands the caller a new token holding the target's scopes: a key holding
    only ``keys:admin`` rotated the tenant's all-scopes key and read its decisions. Now
    a key rotates only what it could mint, and the target is left untouched."""
    small = str(_mint(env, {"scopes": ["keys:admin"]})["key"])
    full = _mint(env, {"scopes": ["keys:admin", "decisions:read", "feed:read"]})
    r = env.client.post(f"/v1/keys/{full['key_id']}/rotate", headers=_bearer(small))
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_ESCALATION"
    assert env.client.get("/v1/decisions", headers=_bearer(str(full["key"]))).status_code == 200
    with env.db.read.connect() as conn:
        record = key_repo.get_key(conn, str(full["key_id"]))
    assert record is not None
    assert record.expires_at is None
    # Within its grant it rotates; a peer with the same scopes too.
    peer = _mint(env, {"scopes": ["keys:admin"]})
    ok = env.client.post(f"/v1/keys/{peer['key_id']}/rotate", headers=_bearer(small))
    assert ok.status_code == 201, ok.text
    assert ok.json()["scopes"] == ["keys:admin"]


def test_a_key_revokes_itself_or_what_it_could_mint(env: Env) -> None:
    """A key holding only keys:admin revoked the tenant's stronger keys (and a weak
    platform key the full platform key): one leaked helper key could lock out every
    administrator above it."""
    small = _mint(env, {"scopes": ["keys:admin"]})
    strong = _mint(env, {"scopes": ["keys:admin", "decisions:read"]})
    r = env.client.delete(f"/v1/keys/{strong['key_id']}", headers=_bearer(str(small["key"])))
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_ESCALATION"
    assert env.client.get("/v1/decisions", headers=_bearer(str(strong["key"]))).status_code == 200
    peer = _mint(env, {"scopes": ["keys:admin"]})
    ok = env.client.delete(f"/v1/keys/{peer['key_id']}", headers=_bearer(str(small["key"])))
    assert ok.status_code == 200
    itself = env.client.delete(f"/v1/keys/{small['key_id']}", headers=_bearer(str(small["key"])))
    assert itself.status_code == 200


def test_a_platform_key_cannot_rotate_a_stronger_platform_key(env: Env) -> None:
    weak = str(_mint(env, {"scopes": ["keys:admin"], "kind": "platform"}, who="platform")["key"])
    strong = _mint(env, {"scopes": ["keys:admin", "tenants:admin"]}, who="platform")
    r = env.client.post(f"/v1/keys/{strong['key_id']}/rotate", headers=_bearer(weak))
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_ESCALATION"
    # Tenant keys are the platform's to administer, whatever their scopes.
    tenant_key = _mint(env, {"tenant_id": "globex", "scopes": ["stats:read"]}, who="platform")
    ok = env.client.post(f"/v1/keys/{tenant_key['key_id']}/rotate", headers=_bearer(weak))
    assert ok.status_code == 201, ok.text


def test_expired_key_is_refused(env: Env) -> None:
    issued = _mint(env, {"scopes": ["feed:read"]})
    with env.db.write.begin() as conn:
        key_repo.set_expiry(conn, str(issued["key_id"]), datetime.now(UTC) - timedelta(seconds=1))
    gate = env.client.app
    gate.authenticator.invalidate(str(issued["key_id"]))  # type: ignore[attr-defined]
    r = env.client.get("/v1/feed/live", headers=_bearer(str(issued["key"])))
    assert r.status_code == 401


def test_pepper_rotation_upgrades_the_hash_on_next_use(env: Env) -> None:
    token = str(_mint(env, {"scopes": ["feed:read"]})["key"])
    key_id = token.split("_")[1]
    rotated = env.settings.model_copy(
        update={"key_peppers": "t2:" + "22" * 32 + "," + env.settings.key_peppers}
    )
    with TestClient(build_app(rotated)) as client:
        assert client.get("/v1/feed/live", headers=_bearer(token)).status_code == 200
        client.app.authenticator.flush_usage()  # type: ignore[attr-defined]
        with env.db.read.connect() as conn:
            record = key_repo.get_key(conn, key_id)
        assert record is not None
        assert record.pepper_id == "t2"
        assert record.last_used_at is not None
        assert client.get("/v1/feed/live", headers=_bearer(token)).status_code == 200
    # With the old pepper gone the upgraded key still verifies.
    only_new = env.settings.model_copy(update={"key_peppers": "t2:" + "22" * 32})
    with TestClient(build_app(only_new)) as client:
        assert client.get("/v1/feed/live", headers=_bearer(token)).status_code == 200


def test_cli_minted_canary_and_platform_keys_are_not_listed_to_tenants(env: Env) -> None:
    peppers = load_peppers(env.settings)
    admin.mint_key(
        env.db, peppers, tenant_id="acme", kind="canary", scopes=frozenset({"feed:read"})
    )
    kinds = {i["kind"] for i in env.client.get("/v1/keys", headers=env.headers()).json()["items"]}
    assert kinds == {"tenant"}


def test_a_key_never_issues_a_key_that_outlives_it(env: Env) -> None:
    """A 60-second key with keys:admin minted a child with no expiry, which kept working
    after its parent expired; rotating itself gave it a fresh 60 seconds, again and
    again. Now what a key mints or rotates into expires no later than the key itself."""
    parent = _mint(env, {"scopes": ["keys:admin", "feed:read"], "ttl_seconds": 120})
    limit = datetime.fromisoformat(str(parent["expires_at"]))
    as_parent = _bearer(str(parent["key"]))
    for body in ({"scopes": ["feed:read"]}, {"scopes": ["feed:read"], "ttl_seconds": 86400}):
        r = env.client.post("/v1/keys", json=body, headers=as_parent)
        assert r.status_code == 201, r.text
        assert datetime.fromisoformat(r.json()["expires_at"]) == limit
    shorter = env.client.post(
        "/v1/keys", json={"scopes": ["feed:read"], "ttl_seconds": 60}, headers=as_parent
    ).json()
    assert datetime.fromisoformat(shorter["expires_at"]) < limit
    own = env.client.post(
        f"/v1/keys/{parent['key_id']}/rotate", json={"grace_seconds": 1}, headers=as_parent
    )
    assert own.status_code == 201, own.text
    assert datetime.fromisoformat(own.json()["expires_at"]) == limit
    # A key without an expiry (the tenant's own) still issues keys for their own lifetime.
    free = env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
    assert free.json()["expires_at"] is None


def test_a_refused_field_is_named_with_what_it_must_be(env: Env) -> None:
    """These 422s carried no reason: the sentences existed but stayed in the log."""
    cases = [
        ("/v1/keys", {"scopes": ["feed:read"], "ttl_seconds": 0}, "acme"),
        ("/v1/keys", {"scopes": ["feed:read"], "ttl_seconds": 10**12}, "acme"),
        ("/v1/keys", {"scopes": []}, "acme"),
        ("/v1/tenants", {"tenant_id": "Bad Id"}, "platform"),
        ("/v1/tenants", {"tenant_id": "initech", "daily_event_quota": -1}, "platform"),
    ]
    reasons = []
    for path, body, who in cases:
        r = env.client.post(path, json=body, headers=env.headers(who))
        assert r.status_code == 422, r.text
        reasons.append(r.json()["reason"])
    assert reasons == [
        "ttl_seconds must be a positive integer",
        f"ttl_seconds must be at most {3650 * 86400}",
        "scopes must be a non-empty list of scope names",
        "tenant_id must be 2 to 63 of a-z, 0-9 and '-', starting with a letter or digit",
        "daily_event_quota must be an integer from 0 to 10**12, or null",
    ]
