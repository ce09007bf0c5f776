"""/v1/defend and /v1/ingest: decisions, persistence, idempotency, bad input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from frostgate.api import build_app
from frostgate.store import schema
from tests.conftest import Env

BRUTE = {
    "source": "sshd",
    "event_type": "auth.failed",
    "payload": {"src_ip": "203.0.113.9", "failed_auths": 7},
}


def _count(env: Env) -> int:
    with env.db.read.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(schema.decisions)).scalar_one()
        )


def test_defend_decides_and_persists(env: Env) -> None:
    r = env.client.post("/v1/defend", json=BRUTE, headers=env.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["threat_level"] == "high"
    assert body["score"] == 90
    assert body["rules_triggered"] == ["brute_force"]
    assert body["mitigations"][0]["action"] == "block_ip"
    assert body["mitigations"][0]["target"] == "203.0.113.9"
    assert body["tenant_id"] == "acme"
    assert len(body["policy_hash"]) == 64
    stored = env.client.get(f"/v1/decisions/{body['event_id']}", headers=env.headers())
    assert stored.status_code == 200
    assert stored.json()["decision"] == body
    assert _count(env) == 1


def test_server_assigns_uuid7_event_id(env: Env) -> None:
    r = env.client.post("/v1/defend", json=BRUTE, headers=env.headers())
    event_id = r.json()["event_id"]
    assert len(event_id) == 36
    assert event_id[14] == "7"


def test_replay_returns_identical_bytes(env: Env) -> None:
    event = dict(BRUTE, event_id="evt-1")
    first = env.client.post("/v1/defend", json=event, headers=env.headers())
    # Same body, keys in another order: still the same event.
    reordered = orjson.loads(orjson.dumps(dict(reversed(list(event.items())))))
    second = env.client.post("/v1/defend", json=reordered, headers=env.headers())
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replay"] == "true"
    assert "idempotent-replay" not in first.headers
    assert _count(env) == 1


def test_same_event_id_different_body_conflicts(env: Env) -> None:
    env.client.post("/v1/defend", json=dict(BRUTE, event_id="evt-2"), headers=env.headers())
    changed = dict(BRUTE, event_id="evt-2", source="other")
    r = env.client.post("/v1/defend", json=changed, headers=env.headers())
    assert r.status_code == 409
    assert r.json()["error_code"] == "IDEMPOTENCY_CONFLICT"
    assert _count(env) == 1


def test_event_ids_are_per_tenant(env: Env) -> None:
    a = env.client.post(
        "/v1/defend", json=dict(BRUTE, event_id="shared"), headers=env.headers("acme")
    )
    b = env.client.post(
        "/v1/defend", json=dict(BRUTE, event_id="shared"), headers=env.headers("globex")
    )
    assert a.status_code == b.status_code == 200
    assert b.json()["tenant_id"] == "globex"
    assert "idempotent-replay" not in b.headers


def test_ingest_batch_in_order_with_replays_and_conflicts(env: Env) -> None:
    events = [dict(BRUTE, event_id=f"b-{i}") for i in range(5)]
    r = env.client.post("/v1/ingest", json={"events": events}, headers=env.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["event_id"] for x in body["results"]] == [f"b-{i}" for i in range(5)]
    assert body["counts"] == {"created": 5, "replayed": 0, "conflict": 0, "quota_exceeded": 0}
    again = [
        *events[:2],
        dict(BRUTE, event_id="b-2", source="changed"),
        dict(BRUTE, event_id="b-9"),
    ]
    r2 = env.client.post("/v1/ingest", json={"events": again}, headers=env.headers())
    statuses = [x["status"] for x in r2.json()["results"]]
    assert statuses == ["replayed", "replayed", "conflict", "created"]
    assert r2.json()["results"][0]["decision"] == body["results"][0]["decision"]
    assert _count(env) == 6


def test_ingest_requires_event_ids(env: Env) -> None:
    r = env.client.post("/v1/ingest", json={"events": [BRUTE]}, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "EVENT_ID_REQUIRED"
    assert _count(env) == 0


def test_ingest_rejects_duplicate_ids_in_one_batch(env: Env) -> None:
    events = [dict(BRUTE, event_id="dup"), dict(BRUTE, event_id="dup")]
    r = env.client.post("/v1/ingest", json={"events": events}, headers=env.headers())
    assert r.json()["error_code"] == "DUPLICATE_EVENT_IN_BATCH"
    assert _count(env) == 0


def test_event_naming_another_tenant_is_refused(env: Env) -> None:
    r = env.client.post("/v1/defend", json=dict(BRUTE, tenant_id="globex"), headers=env.headers())
    assert r.status_code == 403
    assert r.json()["error_code"] == "TENANT_MISMATCH"
    assert _count(env) == 0


def _nested(depth: int) -> object:
    value: object = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "MALFORMED_JSON"),
        (b'{"event_type": 5}', 422, "EVENT_INVALID"),
        (b"[1, 2]", 422, "EVENT_INVALID"),
        (orjson.dumps({"payload": _nested(16)}), 422, "JSON_TOO_DEEP"),
        # Past orjson's own nesting cap (1,024) the parser refuses first: still depth.
        (b'{"payload": ' + b"[" * 1100 + b"]" * 1100 + b"}", 422, "JSON_TOO_DEEP"),
        (orjson.dumps({"payload": {"xs": list(range(1001))}}), 422, "ARRAY_TOO_LONG"),
        (orjson.dumps({"payload": {"s": "x" * 8193}}), 422, "STRING_TOO_LONG"),
        (orjson.dumps({"payload": {"s": "é" * 4097}}), 422, "STRING_TOO_LONG"),
        (orjson.dumps({"timestamp": "yesterday-ish"}), 422, "TIMESTAMP_INVALID"),
        (orjson.dumps({"payload": {"failed_auths": "many"}}), 422, "EVENT_INVALID"),
        (orjson.dumps({"event_id": "bad id with spaces"}), 422, "EVENT_ID_INVALID"),
        (b"x" * (1024 * 1024 + 1), 413, "BODY_TOO_LARGE"),
    ],
)
def test_bad_input_gets_its_own_code_and_stores_nothing(
    env: Env, raw: bytes, status: int, code: str
) -> None:
    headers = dict(env.headers(), **{"content-type": "application/json"})
    r = env.client.post("/v1/defend", content=raw, headers=headers)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code
    assert set(body) - {"reason"} == {"error_code", "detail", "request_id"}
    # A reason names the field in FrostGate's words; the client's value is never echoed.
    assert not any(value in body.get("reason", "") for value in _strings(raw))
    assert _count(env) == 0


def _strings(raw: bytes) -> list[str]:
    """Every string value in a JSON document (none when it is not JSON)."""
    try:
        stack = [orjson.loads(raw)]
    except orjson.JSONDecodeError:
        return []
    found = []
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            found.append(node)
    return found


def test_depth_sixteen_is_accepted(env: Env) -> None:
    r = env.client.post("/v1/defend", json={"payload": _nested(15)}, headers=env.headers())
    assert r.status_code == 200, r.text


def test_streamed_body_over_limit_without_content_length(env: Env) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    headers = dict(env.headers(), **{"content-type": "application/json"})
    r = env.client.post("/v1/defend", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert r.json()["error_code"] == "BODY_TOO_LARGE"


def test_declared_body_over_limit_is_refused_before_a_byte_is_read(env: Env) -> None:
    """A Content-Length over the cap is refused by the gate up front, without reading the
    body: the streamed count alone would still answer 413, but only after taking in a
    megabyte. Raw ASGI, so the declared length is exactly what is sent."""
    reads: list[int] = []
    sent: list[dict[str, Any]] = []
    declared = 1024 * 1024 + 1

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"x" * declared, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = dict(env.headers(), **{"content-type": "application/json"})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/defend",
        "raw_path": b"/v1/defend",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(declared).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    env.client.portal.call(env.client.app, scope, receive, send)  # type: ignore[union-attr]
    assert sent[0]["status"] == 413
    assert b"BODY_TOO_LARGE" in sent[1]["body"]
    assert reads == []
    assert _count(env) == 0


def test_batch_over_limit(env: Env) -> None:
    """A batch over 1,000 is BATCH_TOO_LARGE, as documented (the general array limit,
    also 1,000, answered first with ARRAY_TOO_LONG); an array inside an event is still
    held to the array limit."""
    events = [{"event_id": f"e{i}"} for i in range(1001)]
    r = env.client.post("/v1/ingest", json={"events": events}, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "BATCH_TOO_LARGE"
    inner = [{"event_id": "e0", "payload": {"tags": ["t"] * 1001}}]
    r = env.client.post("/v1/ingest", json={"events": inner}, headers=env.headers())
    assert r.status_code == 422
    assert r.json()["error_code"] == "ARRAY_TOO_LONG"
    assert _count(env) == 0


def test_a_configured_batch_limit_above_the_array_limit_is_honoured(env: Env) -> None:
    settings = env.settings.model_copy(update={"max_batch_events": 1500})
    events = [{"event_id": f"big-{i}", "source": "s"} for i in range(1200)]
    with TestClient(build_app(settings)) as client:
        r = client.post("/v1/ingest", json={"events": events}, headers=env.headers())
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["created"] == 1200
    assert _count(env) == 1200


def test_wrong_content_type(env: Env) -> None:
    r = env.client.post(
        "/v1/defend", content=b"{}", headers=dict(env.headers(), **{"content-type": "text/plain"})
    )
    assert r.status_code == 415
    assert r.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_storage_down_answers_503_and_acknowledges_nothing(env: Env) -> None:
    if env.db.dialect != "sqlite":
        pytest.skip("simulated by dropping the SQLite table; PostgreSQL outage is a chaos test")
    with env.db.write.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE decisions RENAME TO decisions_away")
    r = env.client.post("/v1/defend", json=BRUTE, headers=env.headers())
    assert r.status_code == 503
    assert r.json()["error_code"] == "STORAGE_UNAVAILABLE"
    assert set(r.json()) == {"error_code", "detail", "request_id"}
    with env.db.write.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE decisions_away RENAME TO decisions")
    assert _count(env) == 0


def test_a_refused_batch_names_the_event_and_the_field(env: Env) -> None:
    """One bad event refuses the whole batch (nothing is stored); the answer says which
    event and what is wrong with it, in FrostGate's words, never echoing the client's text."""
    cases = [
        (
            {"event_id": "v-2", "timestamp": "<script>"},
            "TIMESTAMP_INVALID",
            "events[1]: timestamp is not ISO 8601",
        ),
        (
            {"event_id": "v-2", "payload": {"src_ip": "999.1.1.1"}},
            "EVENT_INVALID",
            "events[1]: src_ip is not an IP address",
        ),
        (
            {"event_id": "v-2", "payload": {"failed_auths": "many"}},
            "EVENT_INVALID",
            "events[1]: failed_auths is not a decimal count",
        ),
        ({"payload": {}}, "EVENT_ID_REQUIRED", "events[1]"),
        ("not an object", "EVENT_INVALID", "events[1]: event must be an object"),
        (
            {"event_id": "v-1"},
            "DUPLICATE_EVENT_IN_BATCH",
            "events[1] repeats the event_id of events[0]",
        ),
    ]
    for bad, code, reason in cases:
        events = [{"event_id": "v-1", "source": "s"}, bad]
        r = env.client.post("/v1/ingest", json={"events": events}, headers=env.headers())
        assert r.status_code == 422, r.text
        assert (r.json()["error_code"], r.json()["reason"]) == (code, reason)
    single = env.client.post(
        "/v1/defend", json={"payload": {"src_ip": "999.1.1.1"}}, headers=env.headers()
    )
    assert single.json()["reason"] == "src_ip is not an IP address"
    assert _count(env) == 0
