"""A decision says what became of each mitigation it proposed.

A red-team round: a brute force from 127.0.0.1 answered ``block_ip 127.0.0.1`` with
``gating_decision: allow``, the live feed listed it as an action taken, and the block
had in fact been refused as never enforceable; the same for allowlisted targets, for
blocks held back by the blast-radius cap, and for addresses already waiting for an
approval. The decision's ``mitigations[]`` now carry ``status`` and ``status_reason``,
in the stored (and ledgered) answer, and only what is in force or waiting counts as
an action.
"""

from __future__ import annotations

from typing import Any

from frostgate.enforcement.service import MitigationService
from frostgate.security import admin
from frostgate.store import Database, PendingDecision
from tests.conftest import Env
from tests.enforcement.test_mitigations import brute, defend, lookup
from tests.store.test_writer import pending


def _only(decision: dict[str, Any]) -> dict[str, Any]:
    [mitigation] = decision["mitigations"]
    return mitigation


def _feed_actions(env: Env, event_id: str) -> list[str]:
    items = env.client.get("/v1/feed/live", headers=env.headers()).json()["items"]
    [item] = [i for i in items if i["event_id"] == event_id]
    actions: list[str] = item["action_taken"]
    return actions


def test_an_admitted_block_says_it_is_active(env: Env) -> None:
    mitigation = _only(defend(env, brute("203.0.113.60", "ok-1")))
    assert (mitigation["status"], mitigation["status_reason"]) == ("active", None)
    assert _feed_actions(env, "ok-1") == ["block_ip:203.0.113.60"]


def test_a_never_enforced_target_is_reported_rejected_and_not_taken(env: Env) -> None:
    r = env.client.post("/v1/defend", json=brute("127.0.0.1", "lo-1"), headers=env.headers())
    mitigation = _only(r.json())
    assert mitigation["status"] == "rejected"
    assert mitigation["status_reason"] == "target is a loopback address: never enforced"
    assert _feed_actions(env, "lo-1") == []
    only = env.client.get("/v1/feed/live?only_actionable=true", headers=env.headers()).json()
    assert "lo-1" not in [i["event_id"] for i in only["items"]]
    # The replay is the stored answer, byte for byte, status included.
    again = env.client.post("/v1/defend", json=brute("127.0.0.1", "lo-1"), headers=env.headers())
    assert again.content == r.content


def test_allowlisted_and_capped_targets_say_so(env: Env) -> None:
    envelope = {
        "blast_radius": {"max_blocks": 1, "window_seconds": 3600},
        "allowlist": {"cidrs": ["198.51.100.0/24"], "users": []},
        "max_ttl_seconds": 600,
    }
    assert (
        env.client.put("/v1/enforcement/envelope", json=envelope, headers=env.headers())
    ).status_code == 200
    allowlisted = _only(defend(env, brute("198.51.100.61", "al-1")))
    assert (allowlisted["status"], allowlisted["status_reason"]) == (
        "rejected",
        "target is allowlisted",
    )
    first = _only(defend(env, brute("203.0.113.70", "cap-1")))
    assert (first["status"], first["status_reason"]) == (
        "active",
        "ttl shortened to 600 s by the envelope",
    )
    capped = _only(defend(env, brute("203.0.113.71", "cap-2")))
    assert (capped["status"], capped["status_reason"]) == ("pending", "blast-radius cap reached")
    assert _feed_actions(env, "cap-2") == ["block_ip:203.0.113.71"]


def test_a_target_already_waiting_for_approval_is_reported_pending(env: Env) -> None:
    guarded = brute("198.51.100.50", "g-1", persona="guardian", classification="SECRET")
    assert _only(defend(env, guarded))["status"] == "pending"
    later = _only(defend(env, brute("198.51.100.50", "g-2")))
    assert later["status"] == "pending"
    assert later["status_reason"] == "an earlier mitigation of this target is pending"
    assert [m["status"] for m in lookup(env, "198.51.100.50")] == []  # none in force


def _proposing(event_id: str, *proposals: tuple[str, str | None, str, int]) -> PendingDecision:
    return pending(event_id, proposals=proposals, threat_level="high", score=90)


def test_an_unparsable_target_is_rejected_and_advice_is_advisory(db: Database) -> None:
    """Every unparsable target was reported 'advisory', as if there were nothing to
    enforce; an enforceable action whose target is bad is refused, and says why."""
    admin.create_tenant(db, "acme")
    item = _proposing("e-1", ("block_user", "not a user!", "r", 600), ("alert", None, "r", 600))
    with db.write.begin() as conn:
        outcomes = MitigationService(db).record_from_decisions(
            conn, "acme", [item], item.created_at
        )
    [(bad_status, bad_reason, _), advice] = outcomes["e-1"]
    assert bad_status == "rejected"
    assert bad_reason is not None
    assert "not a user!" in bad_reason
    assert advice == ("advisory", "nothing to enforce", 600)


def test_a_repeated_target_reads_the_same_in_one_commit_as_across_commits(db: Database) -> None:
    """A second proposal for a pair in the same group commit copied the first's outcome
    (active, no reason); in a later commit it read 'an earlier mitigation ... is active'.
    The ledgered answer must not depend on how requests were batched."""
    admin.create_tenant(db, "acme")
    service = MitigationService(db)
    block = ("block_ip", "203.0.113.90", "r", 600)
    first, second, third = (_proposing(f"b-{n}", block) for n in range(3))
    with db.write.begin() as conn:
        together = service.record_from_decisions(conn, "acme", [first, second], first.created_at)
    with db.write.begin() as conn:
        later = service.record_from_decisions(conn, "acme", [third], third.created_at)
    assert together["b-0"] == [("active", None, 600)]
    assert (
        together["b-1"]
        == later["b-2"]
        == [("active", "an earlier mitigation of this target is active", 600)]
    )
