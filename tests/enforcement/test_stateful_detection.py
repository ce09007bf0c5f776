"""Stateful rules: window stores (memory and a real Redis) and the end-to-end burst."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from frostgate.decisions.service import DecisionService
from frostgate.decisions.windows import (
    MemoryWindowStore,
    Observation,
    RedisWindowStore,
    WindowStore,
)
from frostgate.engine import (
    PolicyError,
    WindowProbe,
    WindowState,
    load_policy,
    normalize,
    policy_from_document,
)
from frostgate.errors import ErrorCode, FrostGateError
from frostgate.security import admin
from frostgate.store import Database, GroupCommitWriter
from tests.conftest import Env
from tests.engine.engine_policies import default_document

REDIS_URL = os.environ.get("FG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
COUNT = WindowProbe("r", "r|1.2.3.4", None, seconds=60, threshold=3, cooldown_seconds=300)
DISTINCT = WindowProbe("s", "s|1.2.3.4", "u0", seconds=60, threshold=3, cooldown_seconds=0)


def _stores() -> list[WindowStore]:
    return [MemoryWindowStore(), RedisWindowStore(REDIS_URL, key_prefix=f"t:{uuid.uuid4()}:")]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> WindowStore:
    chosen: WindowStore = _stores()[0 if request.param == "memory" else 1]
    return chosen


def _observe_all(
    store: WindowStore, steps: list[tuple[WindowProbe, str, float]]
) -> list[WindowState]:
    """Observe each (probe, event id, seconds after T0) in order, in one event loop."""

    async def go() -> list[WindowState]:
        out = []
        for probe, event_id, at in steps:
            observed = await store.observe("acme", event_id, [probe], T0 + timedelta(seconds=at))
            states = observed.states
            out.append(states[probe.rule_id])
        await store.close()
        return out

    return asyncio.run(go())


def test_counts_arm_once_then_cool_down(store: WindowStore) -> None:
    states = _observe_all(store, [(COUNT, f"e{i}", i) for i in range(6)])
    assert [s.count for s in states] == [1, 2, 3, 4, 5, 6]
    assert [s.armed for s in states] == [False, False, True, False, False, False]


def test_a_replayed_event_is_not_counted_twice(store: WindowStore) -> None:
    states = _observe_all(store, [(COUNT, "same-event", at) for at in (0, 1, 2)])
    assert states[-1].count == 1


def test_entries_leave_the_window(store: WindowStore) -> None:
    states = _observe_all(store, [(COUNT, "a", 0), (COUNT, "b", 1), (COUNT, "c", 61.5)])
    assert [s.count for s in states] == [1, 2, 1]


def test_distinct_counts_members_not_events(store: WindowStore) -> None:
    same_user = [(DISTINCT, f"e{at}", float(at)) for at in range(5)]
    others = [
        (WindowProbe("s", "s|1.2.3.4", user, 60, 3, 0), f"x{n}", 10.0 + n)
        for n, user in enumerate(("u1", "u2"))
    ]
    states = _observe_all(store, same_user + others)
    assert states[4].count == 1
    assert states[-1].count == 3
    assert states[-1].armed


def test_memory_store_is_bounded_lru() -> None:
    store = MemoryWindowStore(max_keys=1000, max_members=50)

    async def go() -> None:
        for n in range(3000):
            probe = WindowProbe("r", f"r|10.0.{n // 256}.{n % 256}", None, 60, 3, 60)
            await store.observe("acme", f"e{n}", [probe], T0)
        hot = WindowProbe("r", "r|hot", None, 60, 3, 60)
        for n in range(500):
            states = (await store.observe("acme", f"h{n}", [hot], T0)).states
        assert states["r"].count == 50

    asyncio.run(go())
    assert len(store) == 1000


def test_memory_store_forgets_idle_windows() -> None:
    """A scan from ever-new addresses keeps only the last window's keys, not every dead
    window up to the LRU cap (found by the soak: memory grew for minutes, 1.3 KiB a key)."""
    store = MemoryWindowStore()

    async def go() -> None:
        for n in range(2000):  # ten new addresses a second for 200 s
            probe = WindowProbe("r", f"r|10.0.{n // 256}.{n % 256}", None, 60, 3, 300)
            await store.observe("acme", f"e{n}", [probe], T0 + timedelta(seconds=n / 10))

    asyncio.run(go())
    assert 600 <= len(store) <= 602  # the addresses of the last 60 s


def test_a_cooling_window_is_remembered_until_its_cooldown_ends() -> None:
    store = MemoryWindowStore()
    other = WindowProbe("r", "r|5.6.7.8", None, 60, 3, 300)
    steps = [(COUNT, "a", 0), (COUNT, "b", 1), (COUNT, "c", 2), (other, "o", 120)]
    steps += [(COUNT, "d", 130), (COUNT, "e", 131), (COUNT, "f", 132), (other, "g", 500)]

    async def go() -> list[WindowState]:
        return [
            (await store.observe("acme", eid, [p], T0 + timedelta(seconds=at))).states[p.rule_id]
            for p, eid, at in steps
        ]

    states = asyncio.run(go())
    assert states[2].armed
    # Its entries expired, but it is still cooling down: three more do not arm it again.
    assert [s.count for s in states[4:7]] == [1, 2, 3]
    assert not states[6].armed
    assert len(store) == 1  # at 500 s both idle windows are forgotten; the new one is left


def test_an_unreachable_redis_fails_closed() -> None:
    store = RedisWindowStore("redis://127.0.0.1:1/0", timeout=0.1)
    with pytest.raises(FrostGateError) as caught:
        _observe_all(store, [(COUNT, "e", 0)])
    assert caught.value.code.name == "STORAGE_UNAVAILABLE"


def test_the_policy_probes_only_matching_events() -> None:
    policy = load_policy()
    failed = normalize({"event_type": "ssh_login_failed", "src_ip": "1.2.3.4", "user": "bob"})
    assert {p.rule_id for p in policy.window_probes(failed)} == {
        "brute_force_burst",
        "password_spraying",
    }
    no_user = normalize({"event_type": "ssh_login_failed", "src_ip": "1.2.3.4"})
    assert {p.rule_id for p in policy.window_probes(no_user)} == {"brute_force_burst"}
    success = normalize(
        {"event_type": "login", "src_ip": "1.2.3.4", "event": {"outcome": "success"}}
    )
    assert policy.window_probes(success) == ()
    no_ip = normalize({"event_type": "ssh_login_failed"})
    assert policy.window_probes(no_ip) == ()


def test_ten_failed_ssh_logins_one_per_event_yield_one_block_a_bouncer_sees(env: Env) -> None:
    """Issue 6 done-means: no counts from the sensor; one block; on the CrowdSec stream;
    gone from it once lifted."""
    token = env.keys["acme"]
    cs = {"X-Api-Key": token}
    assert env.client.get("/crowdsec/v1/decisions/stream?startup=true", headers=cs).json() == {
        "new": None,
        "deleted": None,
    }
    levels = []
    for n in range(12):
        event = {
            "event_id": f"ssh-{n}",
            "source": "sshd",
            "event_type": "ssh_login_failed",
            "src_ip": "198.51.100.200",
            "user": "root",
        }
        r = env.client.post("/v1/defend", json=event, headers=env.headers())
        assert r.status_code == 200, r.text
        levels.append((r.json()["threat_level"], len(r.json()["mitigations"])))
    assert levels[:9] == [("none", 0)] * 9
    assert levels[9] == ("high", 1)  # the tenth: the burst, with its block
    assert levels[10:] == [("high", 0)] * 2  # cooldown: still high, no second block

    stream = env.client.get("/crowdsec/v1/decisions/stream", headers=cs).json()
    [decision] = stream["new"]
    assert (decision["value"], decision["type"], decision["scope"]) == (
        "198.51.100.200",
        "ban",
        "Ip",
    )
    active = env.client.get("/v1/mitigations?ip=198.51.100.200", headers=env.headers()).json()
    [mitigation] = active["items"]
    path = f"/v1/mitigations/{mitigation['mitigation_id']}"
    assert env.client.get(path, headers=env.headers()).json()["origin_event_id"] == "ssh-9"

    env.client.delete(f"/v1/mitigations/{mitigation['mitigation_id']}", headers=env.headers())
    gone = env.client.get("/crowdsec/v1/decisions/stream", headers=cs).json()
    assert gone["new"] is None
    assert [d["value"] for d in gone["deleted"]] == ["198.51.100.200"]


def _store_a_note(env: Env, event_id: str) -> None:
    """A stored event under ``event_id``, which a later failure then reuses."""
    note = {"event_id": event_id, "source": "s", "event_type": "note"}
    assert env.client.post("/v1/defend", json=note, headers=env.headers()).status_code == 200


def _ssh_failure(event_id: str, ip: str) -> dict[str, str]:
    return {"event_id": event_id, "source": "sshd", "event_type": "ssh_login_failed", "src_ip": ip}


def test_an_event_that_is_not_stored_counts_for_nothing(env: Env) -> None:
    """A red-team round: nine failures, then a tenth sent under an event_id already
    used (409 IDEMPOTENCY_CONFLICT) started the burst's cooldown although nothing was
    stored, so the burst was never blocked. A refused event is now taken back from the
    windows, and the burst is blocked by the next real failure."""
    _store_a_note(env, "note-1")

    def failure(event_id: str) -> dict[str, str]:
        return _ssh_failure(event_id, "192.0.2.111")

    for n in range(9):
        r = env.client.post("/v1/defend", json=failure(f"f-{n}"), headers=env.headers())
        assert r.json()["mitigations"] == []
    refused = env.client.post("/v1/defend", json=failure("note-1"), headers=env.headers())
    assert refused.status_code == 409
    # A replay of a stored failure is not a new failure either.
    replay = env.client.post("/v1/defend", json=failure("f-8"), headers=env.headers())
    assert replay.headers["idempotent-replay"] == "true"
    tenth = env.client.post("/v1/defend", json=failure("f-9"), headers=env.headers()).json()
    assert [m["action"] for m in tenth["mitigations"]] == ["block_ip"]
    active = env.client.get("/v1/mitigations?ip=192.0.2.111", headers=env.headers()).json()
    assert len(active["items"]) == 1


def test_retracting_an_observation_takes_back_its_count_and_cooldown(store: WindowStore) -> None:
    async def go() -> list[WindowState]:
        seen = []
        for n in range(2):
            await store.observe("acme", f"e{n}", [COUNT], T0 + timedelta(seconds=n))
        third = await store.observe("acme", "e2", [COUNT], T0 + timedelta(seconds=2))
        seen.append(third.states["r"])
        await store.retract("acme", third)
        seen.append(
            (await store.observe("acme", "e3", [COUNT], T0 + timedelta(seconds=3))).states["r"]
        )
        # Distinct counts: a user seen again and taken back is still counted once.
        await store.observe("acme", "d0", [DISTINCT], T0)
        again = await store.observe("acme", "d1", [DISTINCT], T0 + timedelta(seconds=1))
        await store.retract("acme", again)
        other = WindowProbe("s", "s|1.2.3.4", "u1", seconds=60, threshold=3, cooldown_seconds=0)
        seen.append(
            (await store.observe("acme", "d2", [other], T0 + timedelta(seconds=2))).states["s"]
        )
        await store.close()
        return seen

    third, next_one, distinct = asyncio.run(go())
    assert (third.count, third.armed) == (3, True)
    assert (next_one.count, next_one.armed) == (3, True)
    assert distinct.count == 2


def test_an_ipv6_burst_spread_over_one_64_is_one_source_and_the_64_is_blocked(
    env: Env,
) -> None:
    """Ten failures from ten addresses of one IPv6 /64 (each address fails once) are one
    attacker: one block, on the whole /64, that bouncers see as a range."""
    levels = []
    for n in range(10):
        event = {
            "event_id": f"ssh6-{n}",
            "source": "sshd",
            "event_type": "ssh_login_failed",
            "src_ip": f"2001:db8:1:2:{n:x}::{n + 1:x}",
            "user": "root",
        }
        r = env.client.post("/v1/defend", json=event, headers=env.headers())
        assert r.status_code == 200, r.text
        levels.append(r.json()["threat_level"])
    assert levels[-1] == "high"
    [mitigation] = env.client.get("/v1/mitigations", headers=env.headers()).json()["items"]
    assert (mitigation["action"], mitigation["scope"], mitigation["value"]) == (
        "block_ip",
        "range",
        "2001:db8:1:2::/64",
    )
    cs = {"X-Api-Key": env.keys["acme"]}
    [decision] = env.client.get("/crowdsec/v1/decisions?ip=2001:db8:1:2:ffff::1", headers=cs).json()
    assert (decision["scope"], decision["value"]) == ("Range", "2001:db8:1:2::/64")
    assert env.client.get("/crowdsec/v1/decisions?ip=2001:db8:1:3::1", headers=cs).json() is None


def test_the_source_network_of_each_address_form() -> None:
    cases = {
        "203.0.113.9": "203.0.113.9",
        "::ffff:203.0.113.9": "203.0.113.9",
        "2001:DB8:1:2:3:4:5:6": "2001:db8:1:2::/64",
        "fe80::1%eth0": "fe80::/64",
        "2001:db8::": "2001:db8::/64",
    }
    assert {ip: normalize({"src_ip": ip}).src_net for ip in cases} == cases
    assert normalize({}).src_net is None


def test_one_tenant_spraying_keys_cannot_evict_another_tenants_counts() -> None:
    """Tenant ``noisy`` touches 10x the cap in distinct source addresses between two
    halves of ``acme``'s brute force: acme's count survives and the rule still fires."""
    store = MemoryWindowStore(max_keys=1000, max_members=50)
    burst = WindowProbe("r", "r|198.51.100.7", None, seconds=600, threshold=5, cooldown_seconds=0)

    async def go() -> list[WindowState]:
        states = [(await store.observe("acme", f"a{n}", [burst], T0)).states["r"] for n in range(4)]
        for n in range(10_000):
            probe = WindowProbe("r", f"r|10.{n >> 16}.{n >> 8 & 255}.{n & 255}", None, 600, 5, 0)
            await store.observe("noisy", f"n{n}", [probe], T0)
        states.append((await store.observe("acme", "a4", [burst], T0)).states["r"])
        return states

    states = asyncio.run(go())
    assert [s.count for s in states] == [1, 2, 3, 4, 5]
    assert states[-1].armed
    assert len(store) == 1000


def test_at_the_cap_the_largest_tenant_gives_way() -> None:
    """A tenant below its fair share inserting at the cap evicts from the largest."""
    store = MemoryWindowStore(max_keys=100, max_members=5)

    async def go() -> WindowState:
        for n in range(100):
            await store.observe("big", f"b{n}", [WindowProbe("r", f"r|{n}", None, 60, 3, 0)], T0)
        keep = WindowProbe("r", "r|first", None, 60, 2, 0)
        await store.observe("small", "s0", [keep], T0)
        for n in range(10):
            probe = WindowProbe("r", f"r|s{n}", None, 60, 3, 0)
            await store.observe("small", f"s{n + 1}", [probe], T0)
        return (await store.observe("small", "s-last", [keep], T0)).states["r"]

    state = asyncio.run(go())
    assert (state.count, state.armed) == (2, True)
    assert len(store) == 100


def test_eviction_drops_scan_noise_before_a_burst_about_to_fire() -> None:
    """A red-team round: acme's 9 failures from one address, then 700 one-event keys of
    acme's own scan noise, then 400 of another tenant's; acme (over its fair share)
    gave way by plain LRU, which dropped the burst: its 10th failure decided 'allow'."""
    store = MemoryWindowStore(max_keys=1000)
    burst = WindowProbe("r", "r|192.0.2.80", None, seconds=600, threshold=10, cooldown_seconds=0)

    def noise(n: int) -> WindowProbe:
        return WindowProbe("r", f"r|10.{n >> 8 & 255}.{n & 255}.1", None, 600, 10, 0)

    async def go() -> WindowState:
        for n in range(9):
            await store.observe("acme", f"a{n}", [burst], T0)
        for n in range(700):
            await store.observe("acme", f"an{n}", [noise(n)], T0)
        for n in range(400):
            await store.observe("beta", f"b{n}", [noise(n)], T0)
        return (await store.observe("acme", "a9", [burst], T0)).states["r"]

    state = asyncio.run(go())
    assert (state.count, state.armed) == (10, True)
    assert len(store) == 1000


class _RetractFails(MemoryWindowStore):
    """A window store that records but cannot take back (Redis gone in between)."""

    async def retract(self, tenant_id: str, observation: Observation) -> None:
        raise FrostGateError(ErrorCode.STORAGE_UNAVAILABLE, "window store down")


def test_a_stored_event_is_answered_even_if_a_take_back_fails(db: Database) -> None:
    """A batch with one new event and one replay: when taking the replay back from the
    windows failed, the whole request was answered 503, although the new event was
    committed. Only over-counting can come of a failed take-back; it is logged."""
    admin.create_tenant(db, "acme")
    writer = GroupCommitWriter(db.write)
    writer.start()
    service = DecisionService(load_policy(), writer, windows=_RetractFails())

    def failure(event_id: str) -> dict[str, str]:
        return {"event_id": event_id, "event_type": "ssh_login_failed", "src_ip": "192.0.2.9"}

    try:
        asyncio.run(service.decide_batch("acme", [failure("one")]))
        outcomes = asyncio.run(service.decide_batch("acme", [failure("one"), failure("two")]))
    finally:
        writer.stop()
    assert [o.status for o in outcomes] == ["replayed", "created"]


WEIGHTED = WindowProbe("r", "r|1.2.3.4", None, seconds=60, threshold=10, cooldown_seconds=300)


def test_a_weighted_observation_counts_for_its_weight_once(store: WindowStore) -> None:
    """``weight: failures``: an event reporting four failed logins is four of them. A
    replay adds nothing, and taking an observation back removes all it added."""
    four = dataclasses.replace(WEIGHTED, weight=4)

    async def go() -> list[WindowState]:
        seen = []
        for event_id in ("e1", "e2", "e1"):
            seen.append((await store.observe("acme", event_id, [four], T0)).states["r"])
        third = await store.observe("acme", "e3", [four], T0 + timedelta(seconds=1))
        seen.append(third.states["r"])
        await store.retract("acme", third)
        seen.append(
            (await store.observe("acme", "e4", [four], T0 + timedelta(seconds=2))).states["r"]
        )
        await store.close()
        return seen

    states = asyncio.run(go())
    assert [s.count for s in states] == [4, 8, 8, 12, 12]
    assert [s.armed for s in states] == [False, False, False, True, True]


def test_a_burst_reported_four_failures_at_a_time_is_blocked(env: Env) -> None:
    """A red-team round: nine events from one address, each reporting 4 failures (36 in
    a second), all decided none: brute_force needs 5 in one event and the burst counted
    events. The burst rule now counts the failures the events report."""
    decisions = []
    for n in range(4):
        event = {**_ssh_failure(f"four-{n}", "203.0.113.222"), "failures": 4}
        r = env.client.post("/v1/defend", json=event, headers=env.headers())
        decisions.append((r.json()["rules_triggered"], len(r.json()["mitigations"])))
    assert all("brute_force_burst" not in rules for rules, _ in decisions[:2])
    assert "brute_force_burst" in decisions[2][0]
    assert decisions[2][1] == 1


def test_a_weight_is_only_failures_and_never_on_a_distinct_count() -> None:
    for rule_id, extra, message in (
        ("brute_force_burst", {"weight": "bytes"}, "the only weight is 'failures'"),
        ("password_spraying", {"weight": "failures"}, "it has no weight"),
    ):
        document = default_document()
        [rule] = [r for r in document["rules"] if r["id"] == rule_id]
        rule["window"].update(extra)
        with pytest.raises(PolicyError, match=message):
            policy_from_document(document)


def test_the_probe_weight_is_the_reported_failures_capped_at_the_threshold() -> None:
    policy = load_policy()

    def weight(**fields: Any) -> int:
        event = normalize({"event_type": "ssh_login_failed", "src_ip": "192.0.2.7", **fields})
        [probe] = [p for p in policy.window_probes(event) if p.rule_id == "brute_force_burst"]
        return probe.weight

    assert (weight(), weight(failures=4), weight(failures=10**9), weight(failures=0)) == (
        1,
        4,
        10,
        1,
    )


def test_a_resent_event_in_a_batch_does_not_hide_the_burst_behind_it(env: Env) -> None:
    """A red-team round: [9 failures, an old event_id resent with another body, the
    10th failure] in one batch. The resent event armed the burst rule, the 10th was
    decided inside that cooldown, and the take-back then cleared a cooldown nobody
    had used: ten stored failures, no block. Already stored ids are not observed."""
    _store_a_note(env, "old-1")

    def failure(event_id: str) -> dict[str, str]:
        return _ssh_failure(event_id, "203.0.113.77")

    batch = [failure(f"r{n}") for n in range(1, 10)] + [failure("old-1"), failure("r10")]
    r = env.client.post("/v1/ingest", json={"events": batch}, headers=env.headers())
    results = r.json()["results"]
    assert results[9]["status"] == "conflict"
    assert [m["action"] for m in results[10]["decision"]["mitigations"]] == ["block_ip"]


def test_a_take_back_leaves_what_a_stored_event_of_the_batch_recorded() -> None:
    """In a Redis set a member is shared: taking back a refused event's user removed the
    same user that a stored event of the same batch (same instant) had recorded."""
    store = RedisWindowStore(REDIS_URL, key_prefix=f"t:{uuid.uuid4()}:")
    spray = WindowProbe("s", "s|1.2.3.4", "u1", seconds=60, threshold=3, cooldown_seconds=0)
    service = DecisionService(load_policy(), None, windows=store)  # type: ignore[arg-type]

    async def go() -> int:
        refused = await store.observe("acme", "refused", [spray], T0)
        stored = await store.observe("acme", "stored", [spray], T0)
        await service._retract("acme", [refused], [stored])
        other = dataclasses.replace(spray, member="u2")
        count = (await store.observe("acme", "next", [other], T0)).states["s"].count
        await store.close()
        return count

    assert asyncio.run(go()) == 2
