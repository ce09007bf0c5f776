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

from tests.conftest import Env
from tests.enforcement.test_mitigations import brute, defend, lookup


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
    assert (first["status"], first["ttl_seconds"]) == ("active", 600)  # shortened, and said
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
