"""Active mitigations from decisions and analysts; doctrine gating; the mission envelope."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from frostgate.security import admin
from frostgate.store import mitigations as repo
from frostgate.store import schema
from tests.conftest import Env, second_key


def brute(ip: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "sshd",
        "event_type": "auth.failed",
        "payload": {"src_ip": ip, "failed_auths": 9},
        **extra,
    }


def defend(env: Env, event: dict[str, Any], who: str = "acme") -> dict[str, Any]:
    r = env.client.post("/v1/defend", json=event, headers=env.headers(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def lookup(env: Env, ip: str, who: str = "acme") -> list[dict[str, Any]]:
    r = env.client.get(f"/v1/mitigations?ip={ip}", headers=env.headers(who))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_a_brute_force_decision_becomes_an_active_block(env: Env) -> None:
    decision = defend(env, brute("203.0.113.50", "bf-1"))
    assert decision["mitigations"][0]["action"] == "block_ip"
    [active] = lookup(env, "203.0.113.50")
    assert active["action"] == "block_ip"
    assert active["scope"] == "ip"
    assert active["status"] == "active"
    record = env.client.get(f"/v1/mitigations/{active['mitigation_id']}", headers=env.headers())
    assert record.json()["origin_event_id"] == "bf-1"
    assert lookup(env, "203.0.113.51") == []
    assert lookup(env, "203.0.113.50", who="globex") == []


def test_one_target_gets_one_live_mitigation(env: Env) -> None:
    for n in range(3):
        defend(env, brute("203.0.113.60", f"dup-{n}"))
    assert len(lookup(env, "203.0.113.60")) == 1


def test_ranges_cover_their_addresses_and_broad_ones_wait_for_approval(env: Env) -> None:
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "198.51.100.0/24", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active"
    assert [m["value"] for m in lookup(env, "198.51.100.77")] == ["198.51.100.0/24"]
    broad = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "10.0.0.0/8", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert broad.json()["status"] == "pending"
    assert broad.json()["status_reason"] == "broad range requires approval"
    assert lookup(env, "10.1.2.3") == []


def test_a_range_probe_finds_the_blocks_that_contain_it(env: Env) -> None:
    """CrowdSec bouncers ask ``?range=``; the index compared the text alone, so a /25
    inside a blocked /24 and even the /24 itself (or a /32 of a blocked address) were
    reported as not blocked."""
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "198.51.100.0/24", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.json()["status"] == "active"
    defend(env, brute("203.0.113.90", "range-1"))

    def crowdsec(query: str) -> list[str]:
        found = env.client.get(f"/crowdsec/v1/decisions?{query}", headers=env.headers()).json()
        return sorted(d["value"] for d in found or [])

    assert crowdsec("range=198.51.100.0/24") == ["198.51.100.0/24"]
    assert crowdsec("range=198.51.100.128/25") == ["198.51.100.0/24"]
    assert crowdsec("range=198.51.0.0/16") == []  # wider than the block: not covered
    assert crowdsec("range=203.0.113.90/32") == ["203.0.113.90"]
    assert [m["value"] for m in lookup(env, "198.51.100.128/25")] == ["198.51.100.0/24"]


def test_a_lookup_refuses_filters_it_would_ignore(env: Env) -> None:
    """``?ip=…&status=pending`` answered the active mitigations, and ``limit`` was
    ignored: a lookup answers what is in force, so the combination is refused."""
    defend(env, brute("203.0.113.80", "look-1"))
    assert len(lookup(env, "203.0.113.80")) == 1
    active = env.client.get("/v1/mitigations?ip=203.0.113.80&status=active", headers=env.headers())
    assert len(active.json()["items"]) == 1
    for query in ("status=pending", "status=lifted", "limit=1"):
        r = env.client.get(f"/v1/mitigations?ip=203.0.113.80&{query}", headers=env.headers())
        assert r.status_code == 422, query
        assert r.json()["error_code"] == "FILTER_INVALID"


def test_a_manual_block_drops_the_ipv6_zone_so_lookups_match(env: Env) -> None:
    """``2001:db8::1%eth0`` was stored with its zone: no lookup (``ip=2001:db8::1``) and
    no CrowdSec query matched it, while bouncers were served the zoned literal. (Zones
    are usual on link-local addresses, which are never enforced; the parser takes them
    on any IPv6 address.)"""
    for value, stored in (
        ("2001:db8::1%eth0", "2001:db8::1"),
        ("2001:db8::%eth1/64", "2001:db8::/64"),
    ):
        r = env.client.post(
            "/v1/mitigations",
            json={"action": "block_ip", "value": value, "ttl_seconds": 600},
            headers=env.headers(),
        )
        assert r.status_code == 201, r.text
        assert r.json()["value"] == stored
    found = sorted(m["value"] for m in lookup(env, "2001:db8::1"))
    assert found == ["2001:db8::/64", "2001:db8::1"]
    crowdsec = env.client.get("/crowdsec/v1/decisions?ip=2001:db8::1", headers=env.headers())
    assert sorted(d["value"] for d in crowdsec.json()) == ["2001:db8::/64", "2001:db8::1"]


@pytest.mark.parametrize(
    "body",
    [
        {"action": "block_ip", "value": "999.1.1.1"},
        {"action": "block_ip", "value": "fe80::1%"},
        {"action": "block_ip", "value": "10.0.0.1/8"},
        {"action": "block_user", "value": "bad user"},
        {"action": "quarantine_host", "value": "a..b"},
        {"action": "launch_missiles", "value": "1.2.3.4"},
        {"action": "block_ip", "value": "1.2.3.4", "ttl_seconds": 10},
        {"action": "block_ip", "value": "1.2.3.4", "ttl_seconds": 10**9},
    ],
)
def test_invalid_mitigations_are_refused(env: Env, body: dict[str, Any]) -> None:
    r = env.client.post("/v1/mitigations", json=body, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "MITIGATION_INVALID"


def test_doctrine_gated_block_waits_for_a_different_approver(env: Env) -> None:
    event = brute("203.0.113.70", "guarded", persona="guardian", classification="secret")
    decision = defend(env, event)
    assert decision["tie_d"]["gating_decision"] == "require_approval"
    assert lookup(env, "203.0.113.70") == []
    [pending] = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()[
        "items"
    ]
    assert pending["status_reason"] == "doctrine requires approval"
    stream = env.client.get("/v1/mitigations/stream?startup=true", headers=env.headers()).json()
    assert stream["new"] == []

    mid = pending["mitigation_id"]
    same = env.client.post(f"/v1/mitigations/{mid}/approve", headers=env.headers())
    assert same.status_code == 403
    assert same.json()["error_code"] == "APPROVAL_BY_PROPOSER"
    unscoped = env.client.post(
        f"/v1/mitigations/{mid}/approve", headers=second_key(env, {"mitigations:write"})
    )
    assert unscoped.status_code == 403
    approver = second_key(env, {"mitigations:approve"})
    ok = env.client.post(f"/v1/mitigations/{mid}/approve", headers=approver)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "active"
    assert [m["mitigation_id"] for m in lookup(env, "203.0.113.70")] == [mid]
    again = env.client.post(f"/v1/mitigations/{mid}/approve", headers=approver)
    assert again.status_code == 409
    assert again.json()["error_code"] == "MITIGATION_STATE"


def test_a_key_the_proposer_issued_cannot_approve(env: Env) -> None:
    """The proposer minted itself an approving key (it holds mitigations:approve, so
    minting was no escalation) and approved its own proposal with it. Every key the
    proposer issued, directly or through another key it issued, and every successor of
    it by rotation (its own, or one the platform made) is refused; a key issued
    elsewhere approves."""
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "10.0.0.0/8", "ttl_seconds": 600},
        headers=env.headers(),
    )
    mid = r.json()["mitigation_id"]
    assert r.json()["status"] == "pending"

    def mint(issuer: dict[str, str], scopes: list[str]) -> dict[str, str]:
        issued = env.client.post("/v1/keys", json={"scopes": scopes}, headers=issuer)
        assert issued.status_code == 201, issued.text
        return {"Authorization": f"Bearer {issued.json()['key']}"}

    child = mint(env.headers(), ["mitigations:approve", "keys:admin"])
    grandchild = mint(child, ["mitigations:approve"])
    proposer_id = env.keys["acme"].split("_")[1]

    def rotated(by: dict[str, str]) -> dict[str, str]:
        r = env.client.post(f"/v1/keys/{proposer_id}/rotate", headers=by)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['key']}"}

    # A successor stands for the key it replaced, whoever did the rotating.
    by_itself = rotated(env.headers())
    by_the_platform = rotated(env.headers("platform"))
    for approver in (child, grandchild, by_itself, by_the_platform):
        refused = env.client.post(f"/v1/mitigations/{mid}/approve", headers=approver)
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "APPROVAL_BY_PROPOSER"
    assert lookup(env, "10.1.2.3") == []
    independent = second_key(env, {"mitigations:approve"})
    ok = env.client.post(f"/v1/mitigations/{mid}/approve", headers=independent)
    assert ok.status_code == 200, ok.text
    assert [m["mitigation_id"] for m in lookup(env, "10.1.2.3")] == [mid]


def test_the_key_a_proposer_was_rotated_from_cannot_approve(env: Env) -> None:
    """Rotation keeps the old key working for its grace period (up to seven days): the
    new key proposed and the old one approved, one holder on both sides."""
    old = second_key(env, {"mitigations:write", "mitigations:approve", "keys:admin"})
    old_id = old["Authorization"].split("_")[1]
    rotated = env.client.post(
        f"/v1/keys/{old_id}/rotate", json={"grace_seconds": 604800}, headers=old
    )
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "10.0.0.0/8", "ttl_seconds": 600},
        headers=new,
    )
    assert r.json()["status"] == "pending"
    refused = env.client.post(f"/v1/mitigations/{r.json()['mitigation_id']}/approve", headers=old)
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "APPROVAL_BY_PROPOSER"


def test_lifting_is_audited_and_foreign_mitigations_do_not_exist(env: Env) -> None:
    defend(env, brute("203.0.113.80", "lift-me"))
    [active] = lookup(env, "203.0.113.80")
    mid = active["mitigation_id"]
    assert (
        env.client.delete(f"/v1/mitigations/{mid}", headers=env.headers("globex")).status_code
        == 404
    )
    r = env.client.delete(f"/v1/mitigations/{mid}", headers=env.headers())
    assert r.status_code == 200
    assert r.json()["status"] == "lifted"
    assert lookup(env, "203.0.113.80") == []
    twice = env.client.delete(f"/v1/mitigations/{mid}", headers=env.headers())
    assert twice.status_code == 409
    audit = env.client.get("/v1/audit?kind=mitigation_lifted", headers=env.headers()).json()
    assert audit["items"][0]["detail"]["mitigation_id"] == mid


def test_the_envelope_allowlists_restricts_and_caps(env: Env) -> None:
    r = env.client.put(
        "/v1/enforcement/envelope",
        json={
            "allowed_actions": ["block_ip", "block_user"],
            "max_ttl_seconds": 600,
            "blast_radius": {"max_blocks": 2, "window_seconds": 3600},
            "allowlist": {"cidrs": ["192.0.2.0/24"], "users": ["breakglass"]},
        },
        headers=env.headers(),
    )
    assert r.status_code == 200, r.text
    defend(env, brute("192.0.2.10", "allowlisted"))
    assert lookup(env, "192.0.2.10") == []
    rejected = env.client.get("/v1/mitigations?status=rejected", headers=env.headers()).json()
    assert rejected["items"][0]["status_reason"] == "target is allowlisted"

    for n in range(3):
        defend(env, brute(f"203.0.113.{90 + n}", f"cap-{n}"))
    active = env.client.get("/v1/mitigations?status=active", headers=env.headers()).json()
    assert len(active["items"]) == 2
    assert all(m["ttl_seconds"] == 600 for m in active["items"])  # shortened to the max
    pending = env.client.get("/v1/mitigations?status=pending", headers=env.headers()).json()
    assert [m["status_reason"] for m in pending["items"]] == ["blast-radius cap reached"]

    quarantine = env.client.post(
        "/v1/mitigations",
        json={"action": "quarantine_host", "value": "web-1.example", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert quarantine.json()["status"] == "rejected"


def test_a_malformed_envelope_is_refused_with_the_reason(env: Env) -> None:
    r = env.client.put(
        "/v1/enforcement/envelope", json={"max_ttl_seconds": 5}, headers=env.headers()
    )
    assert r.status_code == 422
    assert "max_ttl_seconds" in r.json()["reason"]
    r = env.client.put("/v1/enforcement/envelope", json={"bogus": 1}, headers=env.headers())
    assert r.status_code == 422


def _insert_active(env: Env, ip: str, expires_in: float) -> str:
    [mitigation_id] = _insert_active_many(env, [ip], expires_in)
    return mitigation_id


def _insert_active_many(env: Env, ips: list[str], expires_in: float) -> list[str]:
    now = datetime.now(UTC)
    rows = [
        {
            "mitigation_id": repo.new_mitigation_id(),
            "action": "block_ip",
            "scope": "ip",
            "value": ip,
            "reason": "test",
            "origin": "manual",
            "origin_event_id": None,
            "status": "active",
            "status_reason": None,
            "ttl_seconds": 60,
            "created_at": now,
            "activated_at": now,
            "expires_at": now + timedelta(seconds=expires_in),
            "ended_at": None,
            "proposed_by": None,
            "approved_by": None,
            "lifted_by": None,
        }
        for ip in ips
    ]
    with env.db.write.begin() as conn:
        repo.insert_mitigations(conn, "acme", rows)
    return [row["mitigation_id"] for row in rows]


def test_expiry_is_automatic(env: Env) -> None:
    mid = _insert_active(env, "203.0.113.99", expires_in=0.6)
    time.sleep(0.3)  # the index refreshes within its max age
    assert [m["mitigation_id"] for m in lookup(env, "203.0.113.99")] == [mid]
    time.sleep(1.0)
    assert lookup(env, "203.0.113.99") == []  # served no more at the instant of expiry
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with env.db.read.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT set_config('fg.tenant_id', 'acme', true)"))
            status = conn.execute(
                sa.select(schema.mitigations.c.status).where(
                    schema.mitigations.c.mitigation_id == mid
                )
            ).scalar()
        if status == "expired":
            break
        time.sleep(0.1)
    assert status == "expired"


def test_the_blast_radius_count_reads_only_what_took_effect_in_the_window(db: Any) -> None:
    """It runs in the writer's transaction for every batch that proposes a mitigation; by
    the tenant index alone it read every mitigation row, and the soak saw decisions/s fall
    by half in ten minutes as pending blocks piled up (migration 0008)."""
    if db.dialect != "sqlite":
        pytest.skip("the query plan is SQLite's; PostgreSQL plans an empty table by cost")
    admin.create_tenant(db, "acme")
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            captured.append((statement, params))

    sa.event.listen(db.write, "before_cursor_execute", capture)
    try:
        with db.write.begin() as conn:
            since = datetime.now(UTC) - timedelta(hours=1)
            assert repo.count_recent_blocks(conn, "acme", {"block_ip"}, since) == 0
    finally:
        sa.event.remove(db.write, "before_cursor_execute", capture)
    [(statement, params)] = captured
    with db.write.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    assert any("ix_mitigations_activated" in str(row) for row in plan), plan


def test_expiry_in_bulk_skips_a_mitigation_lifted_meanwhile(env: Env) -> None:
    """The expiry job reads what is due, then expires it in one statement: a mitigation
    an analyst lifted in between stays lifted, and each expired row gets its own change
    number after every earlier one (what a bouncer's delta pull relies on)."""
    due = _insert_active_many(env, ["198.51.100.41", "198.51.100.42", "198.51.100.43"], 600)
    now = datetime.now(UTC)
    with env.db.write.begin() as conn:
        lifted = repo.transition(
            conn, "acme", due[1], from_status=("active",), values={"status": "lifted"}
        )
    assert lifted is not None
    with env.db.write.begin() as conn:
        assert repo.expire(conn, "acme", due, now) == 2
    with env.db.read.connect() as conn:
        rows = {mid: repo.get_mitigation(conn, "acme", mid) for mid in due}
    assert {mid: r.status for mid, r in rows.items() if r} == {
        due[0]: "expired",
        due[1]: "lifted",
        due[2]: "expired",
    }
    expired_seqs = sorted(r.seq for r in rows.values() if r and r.status == "expired")
    assert expired_seqs[0] > lifted.seq
    assert len(set(expired_seqs)) == 2


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "this-network"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("255.255.255.255", "broadcast or reserved"),
        ("224.0.0.1", "multicast"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 form of 127.0.0.1
    ],
)
def test_an_event_cannot_make_a_bouncer_block_loopback_or_link_local(
    env: Env, address: str, kind: str
) -> None:
    """Whoever controls a logged source address got ``block_ip 127.0.0.1`` (or the
    metadata address, or ::) active and served to the tenant's bouncers, which would cut
    off their own host. Such addresses are recorded as rejected, never enforced."""
    defend(env, brute(address, "special-1"))
    assert (
        env.client.get("/v1/mitigations?status=active", headers=env.headers()).json()["items"] == []
    )
    [rejected] = env.client.get("/v1/mitigations?status=rejected", headers=env.headers()).json()[
        "items"
    ]
    article = "an" if kind == "unspecified" else "a"
    assert rejected["status_reason"] == f"target is {article} {kind} address: never enforced"
    manual = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": address, "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert manual.json()["status"] == "rejected", manual.text


@pytest.mark.parametrize("value", ["0.0.0.0/0", "127.0.0.0/8", "::/0", "fe80::/64"])
def test_no_range_over_loopback_or_link_local_is_enforced(env: Env, value: str) -> None:
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": value, "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.json()["status"] == "rejected", r.text
    assert "never enforced" in r.json()["status_reason"]


def test_the_allowlist_matches_every_form_of_an_allowlisted_target(env: Env) -> None:
    """An IPv4-mapped CIDR was stored as IPv6 and never matched (targets are unmapped),
    the NAT64, 6to4 and IPv4-compatible forms of an allowlisted address were enforced,
    and a user allowlisted as ``admin`` was blocked as ``Admin``."""
    r = env.client.put(
        "/v1/enforcement/envelope",
        json={
            "allowlist": {
                "cidrs": ["203.0.113.0/24", "::ffff:192.0.2.0/120"],
                "users": ["admin"],
            }
        },
        headers=env.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["allowlist"]["cidrs"] == ["203.0.113.0/24", "192.0.2.0/24"]
    cases = [
        ("block_ip", "192.0.2.7"),
        ("block_ip", "64:ff9b::203.0.113.5"),
        ("block_ip", "2002:cb00:7105::1"),
        ("block_ip", "::203.0.113.5"),
        ("block_user", "Admin"),
        ("block_user", "ADMIN"),
    ]
    for action, value in cases:
        made = env.client.post(
            "/v1/mitigations",
            json={"action": action, "value": value, "ttl_seconds": 600},
            headers=env.headers(),
        )
        assert (value, made.json()["status"]) == (value, "rejected"), made.text
        assert made.json()["status_reason"] == "target is allowlisted"


@pytest.mark.parametrize(
    "value",
    [
        "64:ff9b::7f00:0/120",  # NAT64 form of 127.0.0.0/24
        "::7f00:0/104",  # IPv4-compatible form of 127.0.0.0/8
        "2002:7f00:1::/48",  # 6to4 form of 127.0.0.1
        "64:ff9b::/64",  # every NAT64 address: loopback included
        "2001:0:4136:e378::/64",  # Teredo clients behind one server: any IPv4
    ],
)
def test_a_range_in_an_ipv6_transition_form_of_loopback_is_not_enforced(
    env: Env, value: str
) -> None:
    """Each address of these ranges was refused on its own, but the range was active:
    NAT64, 6to4 and IPv4-compatible ranges are judged by the IPv4 range they lead to."""
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": value, "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.json()["status"] == "rejected", r.text


def test_a_range_in_a_transition_form_of_an_allowlisted_range_is_allowlisted(env: Env) -> None:
    r = env.client.put(
        "/v1/enforcement/envelope",
        json={"allowlist": {"cidrs": ["192.0.2.0/24"]}},
        headers=env.headers(),
    )
    assert r.status_code == 200, r.text
    for value in ("64:ff9b::c000:200/120", "2002:c000:205::/48"):
        made = env.client.post(
            "/v1/mitigations",
            json={"action": "block_ip", "value": value, "ttl_seconds": 600},
            headers=env.headers(),
        )
        assert made.json()["status"] == "rejected", made.text
        assert made.json()["status_reason"] == "target is allowlisted"
    public = env.client.post(
        "/v1/mitigations",
        json={"action": "block_ip", "value": "64:ff9b::cb00:7100/120", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert public.json()["status"] == "active", public.text  # 203.0.113.0/24 is fair game


@pytest.mark.parametrize("value", ["127.0.0.1", "localhost", "db.localhost", "169.254.169.254"])
def test_a_host_action_on_loopback_or_link_local_is_not_enforced(env: Env, value: str) -> None:
    """quarantine_host and terminate took IP literals and ``localhost`` as host names
    and skipped both the never-enforced list and the allowlist."""
    r = env.client.post(
        "/v1/mitigations",
        json={"action": "quarantine_host", "value": value, "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert r.json()["status"] == "rejected", r.text
    assert "never enforced" in r.json()["status_reason"]


def test_a_host_action_on_an_allowlisted_address_is_not_enforced(env: Env) -> None:
    r = env.client.put(
        "/v1/enforcement/envelope",
        json={"allowlist": {"cidrs": ["192.0.2.0/24"]}},
        headers=env.headers(),
    )
    assert r.status_code == 200, r.text
    made = env.client.post(
        "/v1/mitigations",
        json={"action": "terminate", "value": "192.0.2.5", "ttl_seconds": 600},
        headers=env.headers(),
    )
    assert made.json()["status"] == "rejected", made.text
    assert made.json()["status_reason"] == "target is allowlisted"


def test_a_crowdsec_lookup_takes_one_probe(env: Env) -> None:
    """``?ip=…&range=…`` answered for the ip and dropped the range in silence."""
    both = env.client.get(
        "/crowdsec/v1/decisions?ip=198.51.100.1&range=203.0.113.9/32", headers=env.headers()
    )
    assert both.status_code == 422, both.text
    assert both.json()["error_code"] == "FILTER_INVALID"
    blank = env.client.get(
        "/crowdsec/v1/decisions?ip=&range=203.0.113.9/32&value=", headers=env.headers()
    )
    assert blank.status_code == 200, blank.text  # blank LAPI parameters are absent ones
