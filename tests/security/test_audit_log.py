"""The security audit log: what is recorded, summarised floods, canaries, the chain."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.ledger import GENESIS, chain_hash, entry_leaf_hash
from frostgate.security import admin
from frostgate.security.peppers import load_peppers
from frostgate.store import schema
from frostgate.store.audit import audit_entry
from tests.conftest import Env

FORGED = "fgk_" + "0" * 16 + "_" + "A" * 43


def _settle(env: Env, *, flush: bool = False) -> None:
    audit = env.client.app.audit  # type: ignore[attr-defined]
    env.client.portal.call(audit.drain)  # type: ignore[union-attr]
    if flush:
        env.client.portal.call(lambda: audit.flush(everything=True))  # type: ignore[union-attr]


def _audit(env: Env, who: str, query: str = "") -> list[dict[str, object]]:
    r = env.client.get(f"/v1/audit{query}", headers=env.headers(who))
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


def test_auth_failure_flood_is_summarised_not_stored_row_by_row(env: Env) -> None:
    for _ in range(200):
        assert (
            env.client.get("/v1/stats", headers={"Authorization": f"Bearer {FORGED}"}).status_code
            == 401
        )
    _settle(env, flush=True)
    events = _audit(env, "platform", "?kind=auth_failure")
    assert sorted(e["count"] for e in events) == [1, 199]
    assert sum(int(str(e["count"])) for e in events) == 200


def test_tenant_mismatch_is_refused_and_audited_in_the_tenant_stream(env: Env) -> None:
    for request in (
        {"url": "/v1/decisions?tenant_id=globex"},
        {"url": "/v1/stats", "headers": {"X-Tenant-ID": "globex"}},
    ):
        headers = {**env.headers("acme"), **request.get("headers", {})}
        r = env.client.get(request["url"], headers=headers)
        assert r.status_code == 403
        assert r.json()["error_code"] == "TENANT_MISMATCH"
    ok = env.client.get("/v1/decisions?tenant_id=acme", headers=env.headers("acme"))
    assert ok.status_code == 200
    _settle(env)
    events = _audit(env, "acme", "?kind=tenant_mismatch")
    assert len(events) == 1  # the second is summarised into the first's window
    assert _audit(env, "globex", "?kind=tenant_mismatch") == []


def test_canary_key_is_denied_like_any_bad_key_and_raises_a_critical_event(env: Env) -> None:
    canary = admin.mint_key(
        env.db,
        load_peppers(env.settings),
        tenant_id="acme",
        kind="canary",
        scopes=frozenset({"stats:read"}),
    )
    bad = env.client.get("/v1/stats", headers={"Authorization": f"Bearer {FORGED}"})
    tripped = env.client.get("/v1/stats", headers={"Authorization": f"Bearer {canary.token}"})
    assert tripped.status_code == bad.status_code == 401
    assert tripped.json()["error_code"] == bad.json()["error_code"]
    assert tripped.json()["detail"] == bad.json()["detail"]
    assert tripped.headers.get("www-authenticate") == bad.headers.get("www-authenticate")
    _settle(env)
    events = _audit(env, "acme", "?kind=canary_key_used")
    assert len(events) == 1
    assert events[0]["severity"] == "critical"
    assert events[0]["actor_key_id"] == canary.key_id
    assert events[0]["client_ip"] == "testclient"


def test_admin_changes_are_audited_with_the_actor(env: Env) -> None:
    minted = env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
    key_id = minted.json()["key_id"]
    env.client.delete(f"/v1/keys/{key_id}", headers=env.headers())
    env.client.post("/v1/tenants/globex/suspend", headers=env.headers("platform"))
    kinds = [e["kind"] for e in _audit(env, "acme")]
    assert kinds[:2] == ["key_revoked", "key_minted"]
    minted_event = _audit(env, "acme", "?kind=key_minted")[0]
    assert minted_event["actor_key_id"] == env.keys["acme"].split("_")[1]
    assert minted_event["detail"] == {
        "via": "api",
        "key_id": key_id,
        "kind": "tenant",
        "scopes": ["feed:read"],
    }
    platform_kinds = [e["kind"] for e in _audit(env, "platform")]
    assert "tenant_suspended" in platform_kinds


def test_audit_filters_are_validated(env: Env) -> None:
    assert env.client.get("/v1/audit?severity=loud", headers=env.headers()).status_code == 422
    assert env.client.get("/v1/audit?limit=0", headers=env.headers()).status_code == 422


def test_audit_rows_form_a_verifiable_chain_per_stream(env: Env) -> None:
    for _ in range(3):
        env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
    env.client.get("/v1/stats", headers={"Authorization": f"Bearer {FORGED}"})
    _settle(env, flush=True)
    with env.db.read.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(schema.audit_events).order_by(
                    schema.audit_events.c.tenant_id, schema.audit_events.c.seq
                )
            )
        ]
    by_stream: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_stream.setdefault(str(row["tenant_id"]), []).append(row)
    assert set(by_stream) >= {"acme", "_platform"}
    for stream_rows in by_stream.values():
        prev = GENESIS
        for index, row in enumerate(stream_rows):
            assert row["seq"] == index
            leaf = entry_leaf_hash(audit_entry(row))
            assert leaf.hex() == row["leaf_hash"]
            assert row["prev_chain_hash"] == prev.hex()
            prev = chain_hash(prev, leaf)
            assert prev.hex() == row["chain_hash"]


def _refused_behind_a_proxy(env: Env, token: str, addresses: list[str]) -> None:
    """``GET /v1/stats`` with ``token`` once from each client address (forwarded by a
    trusted proxy), each refused 401; then every audit event is written."""
    settings = env.settings.model_copy(update={"trusted_proxy_cidrs": "10.0.0.1/32"})
    with TestClient(build_app(settings), client=("10.0.0.1", 40000)) as proxied:
        for address in addresses:
            headers = {"Authorization": f"Bearer {token}", "x-forwarded-for": address}
            assert proxied.get("/v1/stats", headers=headers).status_code == 401
        audit = proxied.app.audit  # type: ignore[attr-defined]
        proxied.portal.call(audit.drain)  # type: ignore[union-attr]
        proxied.portal.call(lambda: audit.flush(everything=True))  # type: ignore[union-attr]


def test_failures_from_one_ipv6_64_are_summarised_together(env: Env) -> None:
    """Summaries were keyed by the full address: every address of a /64 (2**64 of them)
    wrote its own audit row. A /64 is one client's usual allocation."""
    _refused_behind_a_proxy(env, FORGED, [f"2001:db8:5:5::{n:x}" for n in range(1, 21)])
    events = _audit(env, "platform", "?kind=auth_failure")
    assert sorted(int(str(e["count"])) for e in events) == [1, 19]


def test_a_canary_used_over_and_over_is_one_event_and_a_count(env: Env) -> None:
    """Each use of a canary key wrote a critical event and an alert per endpoint: 3,200
    uses in 15 s queued 3,200 alerts, and a real decision alert waited behind them for
    over ten minutes. Uses of one canary are summarised (first at once, then a count),
    from any address."""
    canary = admin.mint_key(
        env.db,
        load_peppers(env.settings),
        tenant_id="acme",
        kind="canary",
        scopes=frozenset({"stats:read"}),
    )
    _refused_behind_a_proxy(env, canary.token, [f"198.51.100.{n % 7 + 1}" for n in range(60)])
    events = _audit(env, "acme", "?kind=canary_key_used")
    assert sorted(int(str(e["count"])) for e in events) == [1, 59]
    assert {e["severity"] for e in events} == {"critical"}
    assert {e["actor_key_id"] for e in events} == {canary.key_id}
