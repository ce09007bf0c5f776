"""A NUL character in a stored text field is bad input (422), on SQLite and PostgreSQL.

PostgreSQL text columns cannot hold NUL: before normalization refused it, such an event
reached the writer and failed the commit, answering 503 STORAGE_UNAVAILABLE (a 5xx for
bad input, and a whole ingest batch refused as if storage were down).
"""

from __future__ import annotations

from tests.conftest import Env


def test_nul_in_event_type_is_422_and_nothing_is_stored(env: Env) -> None:
    r = env.client.post("/v1/defend", json={"event_type": "a\x00b"}, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "EVENT_INVALID"
    listed = env.client.get("/v1/decisions", headers=env.headers())
    assert listed.status_code == 200
    assert listed.json()["items"] == []


def test_nul_in_a_batch_refuses_the_batch_with_422(env: Env) -> None:
    events = [{"event_id": "ok-1", "event_type": "ping"}, {"event_id": "bad-1", "source": "\x00"}]
    r = env.client.post("/v1/ingest", json={"events": events}, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "EVENT_INVALID"
