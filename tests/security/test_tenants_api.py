"""Tenants over HTTP (platform scope): create, list, suspend/resume, daily quota (F6)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from frostgate.store import schema
from tests.conftest import Env

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


def _refresh(env: Env) -> None:
    """Drop cached key records, as the 1 s cache life would."""
    env.client.app.authenticator._cache.clear()  # type: ignore[attr-defined]


def test_create_and_list_tenants(env: Env) -> None:
    r = env.client.post(
        "/v1/tenants",
        json={"tenant_id": "initech", "name": "Initech"},
        headers=env.headers("platform"),
    )
    assert r.status_code == 201
    assert r.json()["status"] == "active"
    again = env.client.post(
        "/v1/tenants", json={"tenant_id": "initech"}, headers=env.headers("platform")
    )
    assert again.status_code == 409
    assert again.json()["error_code"] == "TENANT_EXISTS"
    ids = [
        t["tenant_id"]
        for t in env.client.get("/v1/tenants", headers=env.headers("platform")).json()["items"]
    ]
    assert ids == ["acme", "globex", "initech"]


@pytest.mark.parametrize("bad", ["", "unknown_", "UPPER", "a", "-lead", "x" * 64, "sp ace"])
def test_tenant_ids_are_validated(env: Env, bad: str) -> None:
    r = env.client.post("/v1/tenants", json={"tenant_id": bad}, headers=env.headers("platform"))
    assert r.status_code == 422


def test_tenant_keys_cannot_manage_tenants(env: Env) -> None:
    r = env.client.post("/v1/tenants", json={"tenant_id": "evil"}, headers=env.headers("acme"))
    assert r.status_code == 403
    assert r.json()["error_code"] == "SCOPE_DENIED"


def test_suspended_tenant_is_refused_everywhere_and_resumes(env: Env) -> None:
    r = env.client.post("/v1/tenants/acme/suspend", headers=env.headers("platform"))
    assert r.status_code == 200
    _refresh(env)
    for method, path in (("GET", "/v1/stats"), ("POST", "/v1/defend"), ("GET", "/v1/keys")):
        r = env.client.request(method, path, json=EVENT, headers=env.headers("acme"))
        assert r.status_code == 403, path
        assert r.json()["error_code"] == "TENANT_SUSPENDED"
    assert env.client.get("/v1/stats", headers=env.headers("globex")).status_code == 200
    env.client.post("/v1/tenants/acme/resume", headers=env.headers("platform"))
    _refresh(env)
    assert env.client.get("/v1/stats", headers=env.headers("acme")).status_code == 200
    missing = env.client.post("/v1/tenants/nope/suspend", headers=env.headers("platform"))
    assert missing.status_code == 404


def test_daily_quota_is_enforced_per_tenant(env: Env) -> None:
    r = env.client.put(
        "/v1/tenants/acme/quota", json={"daily_event_quota": 3}, headers=env.headers("platform")
    )
    assert r.status_code == 200
    batch = [dict(EVENT, event_id=f"q{i}") for i in range(2)]
    assert (
        env.client.post("/v1/ingest", json={"events": batch}, headers=env.headers()).status_code
        == 200
    )
    batch = [dict(EVENT, event_id=f"q{i}") for i in range(2, 5)]
    r = env.client.post("/v1/ingest", json={"events": batch}, headers=env.headers())
    assert [x["status"] for x in r.json()["results"]] == [
        "created",
        "quota_exceeded",
        "quota_exceeded",
    ]
    r = env.client.post("/v1/defend", json=EVENT, headers=env.headers())
    assert r.status_code == 429
    assert r.json()["error_code"] == "QUOTA_EXCEEDED"
    # A replay of a stored event is not new usage.
    assert (
        env.client.post(
            "/v1/defend", json=dict(EVENT, event_id="q0"), headers=env.headers()
        ).status_code
        == 200
    )
    assert (
        env.client.post("/v1/defend", json=EVENT, headers=env.headers("globex")).status_code == 200
    )
    with env.db.read.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.decisions)
            .where(schema.decisions.c.tenant_id == "acme")
        ).scalar_one()
    assert stored == 3


def test_no_key_without_a_tenant_unless_platform(env: Env) -> None:
    """F6: the database itself refuses a tenant or canary key with no tenant."""
    with pytest.raises(sa.exc.IntegrityError), env.db.write.begin() as conn:
        conn.execute(
            schema.api_keys.insert().values(
                key_id="0" * 16,
                tenant_id=None,
                kind="tenant",
                scopes="feed:read",
                secret_hash="0" * 64,
                pepper_id="t1",
                label="",
                created_at=sa.func.now(),
            )
        )


def test_no_decision_without_a_tenant(env: Env) -> None:
    """F6: ``tenant_id`` is NOT NULL on decisions; there is no default tenant."""
    row = {c.name: "x" for c in schema.decisions.columns}
    row.update(seq=0, score=0, actionable=False, changed=False, diff=None, src_ip=None)
    row.update(threat_level="none", created_at=sa.func.now())
    with env.db.write.begin() as conn:  # the complete row is valid for a real tenant
        conn.execute(schema.decisions.insert().values(**{**row, "tenant_id": "acme"}))
    with pytest.raises(sa.exc.IntegrityError), env.db.write.begin() as conn:
        conn.execute(schema.decisions.insert().values(**{**row, "tenant_id": None, "seq": 1}))
