"""The enforcement stream, native and as CrowdSec's bouncer API, per key cursor."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from frostgate.enforcement.index import CHUNK
from tests.conftest import Env
from tests.enforcement.test_mitigations import (
    _insert_active,
    _insert_active_many,
    brute,
    defend,
    second_key,
)


def pull(env: Env, headers: dict[str, str], startup: bool = False) -> dict[str, Any]:
    flag = "true" if startup else "false"
    r = env.client.get(f"/v1/mitigations/stream?startup={flag}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def crowdsec(env: Env, token: str, path: str) -> Any:
    r = env.client.get(f"/crowdsec{path}", headers={"X-Api-Key": token})
    assert r.status_code == 200, r.text
    return r.json()


def test_startup_then_deltas_then_deleted(env: Env) -> None:
    bouncer = second_key(env, {"enforcement:read"})
    defend(env, brute("203.0.113.1", "s-1"))
    first = pull(env, bouncer, startup=True)
    assert [m["value"] for m in first["new"]] == ["203.0.113.1"]
    assert first["deleted"] == []
    assert pull(env, bouncer) == {"new": [], "deleted": [], "seq": first["seq"]}

    defend(env, brute("203.0.113.2", "s-2"))
    second = pull(env, bouncer)
    assert [m["value"] for m in second["new"]] == ["203.0.113.2"]
    mid = second["new"][0]["mitigation_id"]
    assert env.client.delete(f"/v1/mitigations/{mid}", headers=env.headers()).status_code == 200
    third = pull(env, bouncer)
    assert third["new"] == []
    assert [m["mitigation_id"] for m in third["deleted"]] == [mid]
    assert pull(env, bouncer)["deleted"] == []


def test_cursors_are_per_key(env: Env) -> None:
    one = second_key(env, {"enforcement:read"})
    two = second_key(env, {"enforcement:read"})
    defend(env, brute("203.0.113.3", "k-1"))
    assert len(pull(env, one, startup=True)["new"]) == 1
    assert pull(env, one)["new"] == []
    # the second bouncer has never pulled: it gets everything
    assert len(pull(env, two)["new"]) == 1


def test_tenants_see_only_their_own_stream(env: Env) -> None:
    defend(env, brute("203.0.113.4", "t-1"), who="acme")
    assert pull(env, env.headers("globex"), startup=True)["new"] == []
    r = env.client.get("/v1/mitigations/stream", headers=env.headers("platform"))
    assert r.status_code == 403


def test_crowdsec_bouncer_protocol(env: Env) -> None:
    token = env.keys["acme"]
    assert crowdsec(env, token, "/v1/decisions/stream?startup=true") == {
        "new": None,
        "deleted": None,
    }
    defend(env, brute("203.0.113.5", "cs-1"))
    stream = crowdsec(env, token, "/v1/decisions/stream?startup=false")
    [decision] = stream["new"]
    assert stream["deleted"] is None
    assert decision["type"] == "ban"
    assert decision["scope"] == "Ip"
    assert decision["value"] == "203.0.113.5"
    assert decision["origin"] == "frostgate"
    assert isinstance(decision["id"], int)
    assert re.fullmatch(r"\d+h\d+m\d+s", decision["duration"])
    assert decision["duration"].startswith("0h59m") or decision["duration"] == "1h0m0s"

    [hit] = crowdsec(env, token, "/v1/decisions?ip=203.0.113.5")
    assert hit["value"] == "203.0.113.5"
    assert crowdsec(env, token, "/v1/decisions?ip=203.0.113.6") is None

    mid = env.client.get("/v1/mitigations?ip=203.0.113.5", headers=env.headers()).json()["items"][
        0
    ]["mitigation_id"]
    env.client.delete(f"/v1/mitigations/{mid}", headers=env.headers())
    gone = crowdsec(env, token, "/v1/decisions/stream")
    assert gone["new"] is None
    assert [d["value"] for d in gone["deleted"]] == ["203.0.113.5"]
    assert crowdsec(env, token, "/v1/decisions?ip=203.0.113.5") is None


def test_crowdsec_scope_filter_and_auth(env: Env) -> None:
    env.client.post(
        "/v1/mitigations",
        json={"action": "block_user", "value": "mallory", "ttl_seconds": 600},
        headers=env.headers(),
    )
    token = env.keys["acme"]
    assert crowdsec(env, token, "/v1/decisions/stream?startup=true")["new"] is None
    users = crowdsec(env, token, "/v1/decisions/stream?startup=true&scopes=username")
    assert [d["scope"] for d in users["new"]] == ["Username"]
    r = env.client.get("/crowdsec/v1/decisions/stream", headers={"X-Api-Key": "bogus"})
    assert r.status_code == 401


def test_an_expired_mitigation_leaves_the_stream(env: Env) -> None:
    token = env.keys["acme"]
    _insert_active(env, "203.0.113.7", expires_in=0.5)
    time.sleep(0.3)
    [d] = crowdsec(env, token, "/v1/decisions/stream?startup=true")["new"]
    assert d["value"] == "203.0.113.7"
    deadline = time.monotonic() + 5
    deleted = None
    while time.monotonic() < deadline:
        deleted = crowdsec(env, token, "/v1/decisions/stream")["deleted"]
        if deleted:
            break
        time.sleep(0.2)
    assert deleted is not None
    assert [x["value"] for x in deleted] == ["203.0.113.7"]


def test_pulls_larger_than_one_chunk_are_whole(env: Env) -> None:
    """Answers of more than one chunk are streamed piece by piece: still one valid
    document with every mitigation exactly once, in both wire forms."""
    lasting = _insert_active_many(
        env, [f"10.9.{n >> 8}.{n & 255}" for n in range(CHUNK * 2 + 17)], 600
    )
    brief = _insert_active_many(env, [f"10.8.{n >> 8}.{n & 255}" for n in range(CHUNK + 3)], 1.0)
    time.sleep(0.3)  # the index refreshes within its max age
    token = env.keys["acme"]
    startup = crowdsec(env, token, "/v1/decisions/stream?startup=true")
    assert sorted(d["uuid"] for d in startup["new"]) == sorted(lasting + brief)
    assert startup["deleted"] is None
    bouncer = second_key(env, {"enforcement:read"})
    native = pull(env, bouncer, startup=True)
    assert sorted(m["mitigation_id"] for m in native["new"]) == sorted(lasting + brief)
    gone = _first_deletions(lambda: crowdsec(env, token, "/v1/decisions/stream"))
    assert gone["new"] is None
    assert sorted(d["uuid"] for d in gone["deleted"]) == sorted(brief)
    assert {d["duration"] for d in gone["deleted"]} == {"0h0m0s"}
    native_gone = _first_deletions(lambda: pull(env, bouncer))
    assert sorted(m["mitigation_id"] for m in native_gone["deleted"]) == sorted(brief)


def _first_deletions(pull_once: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Pull until a pull reports deletions (the expiry job marks expired rows within
    a few seconds), and return that pull."""
    deadline = time.monotonic() + 5
    while True:
        answer = pull_once()
        if answer["deleted"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_index_forms_agree_with_the_stored_row(env: Env) -> None:
    """The index keeps instants as integers and formats them per pull: what it serves
    must be exactly what the stored row says (same texts, to the microsecond)."""
    defend(env, brute("203.0.113.77", "agree-1"))
    [stored] = env.client.get("/v1/mitigations", headers=env.headers()).json()["items"]
    bouncer = second_key(env, {"enforcement:read"})
    [served] = pull(env, bouncer, startup=True)["new"]
    assert served == {k: stored[k] for k in served}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", served["expires_at"])
    [decision] = crowdsec(env, env.keys["acme"], "/v1/decisions/stream?startup=true")["new"]
    assert (decision["uuid"], decision["until"]) == (stored["mitigation_id"], stored["expires_at"])
    [looked_up] = env.client.get("/v1/mitigations?ip=203.0.113.77", headers=env.headers()).json()[
        "items"
    ]
    assert looked_up == served


# What bouncers are served of a mitigation: what they enforce, when and why, and no
# forensic field (the origin event is on the record, GET /v1/mitigations/{id}).
ENFORCEMENT_FIELDS = {
    "mitigation_id",
    "action",
    "scope",
    "value",
    "reason",
    "origin",
    "status",
    "created_at",
    "expires_at",
    "seq",
}


def test_enforcement_forms_leave_the_origin_event_to_the_record(env: Env) -> None:
    """The stream and address lookups serve the enforcement fields only; the mitigation
    record, fetched by id, adds the origin event and the other forensic fields."""
    defend(env, brute("203.0.113.88", "why-1"))
    bouncer = second_key(env, {"enforcement:read"})
    [served] = pull(env, bouncer, startup=True)["new"]
    assert set(served) == ENFORCEMENT_FIELDS
    [looked_up] = env.client.get("/v1/mitigations?ip=203.0.113.88", headers=env.headers()).json()[
        "items"
    ]
    assert looked_up == served
    r = env.client.get(f"/v1/mitigations/{served['mitigation_id']}", headers=bouncer)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["origin_event_id"] == "why-1"
    assert {k: record[k] for k in served} == served
    assert {"status_reason", "ttl_seconds", "proposed_by"} <= set(record)


def test_a_mitigation_record_is_its_tenants_alone(env: Env) -> None:
    defend(env, brute("203.0.113.89", "why-2"))
    [mine] = env.client.get("/v1/mitigations?ip=203.0.113.89", headers=env.headers()).json()[
        "items"
    ]
    path = f"/v1/mitigations/{mine['mitigation_id']}"
    other = env.client.get(path, headers=env.headers("globex"))
    assert other.status_code == 404
    assert other.json()["error_code"] == "NOT_FOUND"
    assert env.client.get("/v1/mitigations/mit_unknown", headers=env.headers()).status_code == 404
