"""The product as a user runs it: the CLI, a real ``frostgate serve`` process, real HTTP.

Covers what only a real process shows: SSE resume across reconnects, durability across
SIGKILL and restart, and key revocation reaching a running server from another process.
"""

from __future__ import annotations

import time

import httpx

from tests.e2e.served import BRUTE, Server


def _post_events(server: Server, prefix: str, count: int) -> None:
    events = [dict(BRUTE, event_id=f"{prefix}-{i}") for i in range(count)]
    r = httpx.post(
        f"{server.url}/v1/ingest", json={"events": events}, headers=server.headers(), timeout=10
    )
    assert r.status_code == 200, r.text


def _read_sse(response: httpx.Response, want: int) -> list[tuple[int, str]]:
    """The first ``want`` decision events as (id, event_id); other event types skipped."""
    got: list[tuple[int, str]] = []
    current_id: int | None = None
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            current_id = int(line[4:])
        elif line.startswith("data: ") and current_id is not None and kind == "decision":
            import orjson

            got.append((current_id, orjson.loads(line[6:])["event_id"]))
            if len(got) == want:
                return got
    return got


def test_sse_resume_with_last_event_id_misses_nothing_and_repeats_nothing(server: Server) -> None:
    _post_events(server, "first", 5)
    with httpx.stream(
        "GET", f"{server.url}/v1/feed/stream", headers=server.headers(), timeout=10
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        first = _read_sse(r, 5)
    assert [e for _, e in first] == [f"first-{i}" for i in range(5)]
    _post_events(server, "second", 7)
    resume = {**server.headers(), "Last-Event-ID": str(first[-1][0])}
    with httpx.stream("GET", f"{server.url}/v1/feed/stream", headers=resume, timeout=10) as r:
        second = _read_sse(r, 7)
    assert [e for _, e in second] == [f"second-{i}" for i in range(7)]
    ids = [i for i, _ in first + second]
    assert ids == sorted(ids)
    assert len(set(ids)) == 12


def test_sse_delivers_new_decisions_live(server: Server) -> None:
    with httpx.stream(
        "GET", f"{server.url}/v1/feed/stream", headers=server.headers(), timeout=10
    ) as r:
        _post_events(server, "live", 3)
        got = _read_sse(r, 3)
    assert [e for _, e in got] == ["live-0", "live-1", "live-2"]


def test_restart_after_sigkill_keeps_every_decision_and_the_chain(server: Server) -> None:
    _post_events(server, "durable", 50)
    replay_before = httpx.post(
        f"{server.url}/v1/defend", json=dict(BRUTE, event_id="durable-7"), headers=server.headers()
    )
    server.kill()
    server.start()
    listed = httpx.get(f"{server.url}/v1/decisions?limit=500", headers=server.headers()).json()[
        "items"
    ]
    assert {i["event_id"] for i in listed} == {f"durable-{i}" for i in range(50)}
    report = httpx.get(f"{server.url}/v1/forensics/chain/verify", headers=server.headers()).json()
    assert report == {"ok": True, "checked": 50, "first_bad_index": None, "reason": None}
    replay_after = httpx.post(
        f"{server.url}/v1/defend", json=dict(BRUTE, event_id="durable-7"), headers=server.headers()
    )
    assert replay_after.content == replay_before.content
    assert replay_after.headers["idempotent-replay"] == "true"


def test_cli_mint_and_revoke_reach_the_running_server_within_a_second(server: Server) -> None:
    minted = server.cli("keys", "mint", "--tenant", "demo", "--scopes", "feed:read", "--ttl", "1d")
    assert minted.returncode == 0, minted.stderr
    key = minted.stdout.strip().splitlines()[-1]
    assert key.startswith("fgk_")
    assert httpx.get(f"{server.url}/v1/feed/live", headers=server.headers(key)).status_code == 200
    assert (
        httpx.post(f"{server.url}/v1/defend", json=BRUTE, headers=server.headers(key)).status_code
        == 403
    )
    key_id = key.split("_")[1]
    listed = server.cli("keys", "list")
    assert key_id in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout
    assert server.cli("keys", "revoke", key_id).returncode == 0
    time.sleep(1.1)
    assert httpx.get(f"{server.url}/v1/feed/live", headers=server.headers(key)).status_code == 401


def test_cli_tenants(server: Server) -> None:
    assert server.cli("tenants", "create", "acme-corp").returncode == 0
    assert server.cli("tenants", "create", "acme-corp").returncode == 1
    assert server.cli("tenants", "create", "Bad Id").returncode == 1
    listed = server.cli("tenants", "list").stdout
    assert "acme-corp" in listed
    assert "demo" in listed


def test_sse_stream_never_carries_another_tenants_decisions(server: Server) -> None:
    assert server.cli("tenants", "create", "rival").returncode == 0
    rival = server.cli("keys", "mint", "--tenant", "rival", "--scopes", "ingest:write")
    rival_key = rival.stdout.strip().splitlines()[-1]
    events = [dict(BRUTE, event_id=f"rival-{i}", source="rival-sensor") for i in range(3)]
    r = httpx.post(
        f"{server.url}/v1/ingest", json={"events": events}, headers=server.headers(rival_key)
    )
    assert r.status_code == 200
    _post_events(server, "mine", 2)
    with httpx.stream(
        "GET", f"{server.url}/v1/feed/stream", headers=server.headers(), timeout=10
    ) as stream:
        got = _read_sse(stream, 2)
        assert [e for _, e in got] == ["mine-0", "mine-1"]


def test_forwarded_for_believed_only_from_a_trusted_proxy(server: Server) -> None:
    forged = {"Authorization": "Bearer fgk_" + "0" * 16 + "_" + "A" * 43}
    spoof = {**forged, "X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    assert httpx.get(f"{server.url}/v1/stats", headers=spoof).status_code == 401
    platform = (
        server.cli("keys", "mint", "--platform", "--scopes", "audit:read")
        .stdout.strip()
        .splitlines()[-1]
    )
    time.sleep(0.3)
    events = httpx.get(
        f"{server.url}/v1/audit?kind=auth_failure", headers=server.headers(platform)
    ).json()["items"]
    assert events[0]["client_ip"] == "127.0.0.1"
    assert events[0]["forwarded_for"] == "6.6.6.6, 203.0.113.7"
    # Restart behind a trusted proxy (this loopback peer): the right-most hop is believed.
    server.kill()
    server.env["FG_TRUSTED_PROXY_CIDRS"] = "127.0.0.1/32"
    server.start()
    spoof2 = {**forged, "X-Forwarded-For": "6.6.6.6, 198.51.100.23"}
    assert httpx.get(f"{server.url}/v1/stats", headers=spoof2).status_code == 401
    time.sleep(0.3)
    events = httpx.get(
        f"{server.url}/v1/audit?kind=auth_failure", headers=server.headers(platform)
    ).json()["items"]
    assert events[0]["client_ip"] == "198.51.100.23"
    assert events[0]["peer_ip"] == "127.0.0.1"


def test_sse_carries_mitigation_changes_without_moving_the_resume_point(server: Server) -> None:
    with httpx.stream(
        "GET", f"{server.url}/v1/feed/stream", headers=server.headers(), timeout=10
    ) as r:
        added = httpx.post(
            f"{server.url}/v1/mitigations",
            json={"action": "block_ip", "value": "192.0.2.200", "ttl_seconds": 600},
            headers=server.headers(),
        )
        assert added.status_code == 201, added.text
        lines: list[str] = []
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("data: ") and "192.0.2.200" in line:
                break
    event_at = lines.index("event: mitigation")
    assert not any(line.startswith("id: ") for line in lines[event_at:])
    import orjson

    change = orjson.loads(lines[-1][6:])
    assert change["change"] == "active"
    assert change["mitigation"]["value"] == "192.0.2.200"
