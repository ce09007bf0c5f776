"""Decisions listing, the live feed, stats, forensics and health."""

from __future__ import annotations

import sqlalchemy as sa

from frostgate.api.context import app_services
from tests.conftest import Env

BRUTE = {
    "source": "sshd",
    "event_type": "auth.failed",
    "payload": {"src_ip": "203.0.113.9", "failed_auths": 7},
}
QUIET = {"source": "web", "event_type": "http.request", "payload": {"ip": "198.51.100.4"}}
LLM = {
    "source": "gw",
    "event_type": "suspicious_llm_usage",
    "payload": {"src_ip": "198.51.100.7", "failed_auths": 12},
}


def _post(env: Env, events: list[dict[str, object]], who: str = "acme") -> None:
    batch = [dict(e, event_id=f"{who}-{i}") for i, e in enumerate(events)]
    r = env.client.post("/v1/ingest", json={"events": batch}, headers=env.headers(who))
    assert r.status_code == 200, r.text


def test_list_filters_and_cursor(env: Env) -> None:
    _post(env, [BRUTE, QUIET] * 5)
    r = env.client.get("/v1/decisions?threat_level=high&limit=3", headers=env.headers())
    page = r.json()
    assert [i["threat_level"] for i in page["items"]] == ["high"] * 3
    rest = env.client.get(
        f"/v1/decisions?threat_level=high&limit=3&cursor={page['next_cursor']}",
        headers=env.headers(),
    )
    assert len(rest.json()["items"]) == 2
    seqs = [i["seq"] for i in page["items"] + rest.json()["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 5
    by_source = env.client.get("/v1/decisions?source=web", headers=env.headers()).json()["items"]
    assert {i["source"] for i in by_source} == {"web"}
    assert len(by_source) == 5


def test_unknown_filter_value_is_422(env: Env) -> None:
    for query in ("threat_level=severe", "since=notatime", "cursor=abc", "limit=0", "limit=501"):
        r = env.client.get(f"/v1/decisions?{query}", headers=env.headers())
        assert r.status_code == 422, query
        assert r.json()["error_code"] in {"FILTER_INVALID", "TIMESTAMP_INVALID", "CURSOR_INVALID"}


def test_foreign_decision_is_404(env: Env) -> None:
    _post(env, [BRUTE], who="globex")
    r = env.client.get("/v1/decisions/globex-0", headers=env.headers("acme"))
    assert r.status_code == 404
    assert r.json()["error_code"] == "NOT_FOUND"
    assert env.client.get("/v1/decisions", headers=env.headers("acme")).json()["items"] == []


def test_feed_filters_applied_in_query_so_pages_are_full(env: Env) -> None:
    _post(env, [QUIET] * 30 + [BRUTE] * 4 + [QUIET] * 30 + [BRUTE] * 4)
    r = env.client.get("/v1/feed/live?only_actionable=true&limit=5", headers=env.headers())
    items = r.json()["items"]
    assert len(items) == 5
    assert all(i["action_taken"] == ["block_ip:203.0.113.9"] for i in items)
    nxt = env.client.get(
        f"/v1/feed/live?only_actionable=true&since={r.json()['next_since']}", headers=env.headers()
    )
    assert len(nxt.json()["items"]) == 3


def test_feed_only_changed_tracks_lineage(env: Env) -> None:
    _post(env, [QUIET, QUIET, BRUTE, BRUTE, QUIET])
    items = env.client.get("/v1/feed/live?only_changed=true", headers=env.headers()).json()["items"]
    # First of each lineage counts as a change; repeats with the same outcome do not.
    assert [i["event_id"] for i in items] == ["acme-0", "acme-2"]


def test_diff_against_previous_decision(env: Env) -> None:
    a = dict(BRUTE, payload={"src_ip": "203.0.113.9", "failed_auths": 1})
    _post(env, [a, BRUTE])
    second = env.client.get("/v1/decisions/acme-1", headers=env.headers()).json()
    assert second["changed"] is True
    assert second["diff"]["previous_event_id"] == "acme-0"
    assert second["diff"]["threat_level"] == ["none", "high"]
    assert second["diff"]["rules_added"] == ["brute_force"]


def test_stats_counts_every_level(env: Env) -> None:
    _post(env, [BRUTE, QUIET, LLM])
    stats = env.client.get("/v1/stats", headers=env.headers()).json()
    assert stats["total"] == 3
    assert stats["by_threat_level"] == {"none": 1, "low": 0, "medium": 0, "high": 1, "critical": 1}
    assert stats["unique_ips"] == 3
    assert {r["name"] for r in stats["top_rules"]} >= {"brute_force", "suspicious_llm_usage"}
    assert stats["top_sources"][0]["count"] == 1
    summary = env.client.get("/v1/stats/summary", headers=env.headers()).json()
    assert summary["by_threat_level"]["critical"] == 1
    assert summary["headline"].startswith("3 decisions")


def test_forensics_snapshot_and_chain_verify(env: Env) -> None:
    _post(env, [BRUTE, QUIET, LLM])
    snap = env.client.get("/v1/forensics/snapshot/acme-1", headers=env.headers()).json()
    assert snap["ledger"]["index"] == 1
    assert snap["request"]["event_id"] == "acme-1"
    report = env.client.get("/v1/forensics/chain/verify", headers=env.headers()).json()
    assert report == {"ok": True, "checked": 3, "first_bad_index": None, "reason": None}


def test_chain_verify_names_first_tampered_row(env: Env) -> None:
    _post(env, [BRUTE, QUIET, LLM, QUIET])
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET score = 1 WHERE tenant_id = 'acme' AND seq = 2"))
    report = env.client.get("/v1/forensics/chain/verify", headers=env.headers()).json()
    assert report["ok"] is False
    assert report["first_bad_index"] == 2


def test_chain_verify_detects_tail_truncation(env: Env) -> None:
    _post(env, [BRUTE, QUIET, LLM])
    with env.db.write.begin() as conn:
        conn.execute(sa.text("DELETE FROM decisions WHERE tenant_id = 'acme' AND seq = 2"))
    report = env.client.get("/v1/forensics/chain/verify", headers=env.headers()).json()
    assert report["ok"] is False
    assert report["first_bad_index"] == 2


def test_health(env: Env) -> None:
    assert env.client.get("/health/live").json() == {"status": "ok"}
    assert env.client.get("/health/ready").status_code == 200


def test_windows_at_the_ends_of_the_calendar_are_refused_not_a_server_error(env: Env) -> None:
    """The stats trend compares against the window before the one asked for; near year 1
    that window cannot exist (this was an OverflowError, a 500). A time whose UTC form
    leaves the calendar is no timestamp at all."""
    _post(env, [BRUTE])
    refused = {
        "/v1/stats?until=0001-01-02T00:00:00Z": "RANGE_INVALID",
        "/v1/stats?since=0001-01-01T00:00:00Z": "RANGE_INVALID",
        "/v1/stats/summary?until=0001-01-01T00:30:00%2B00:00": "RANGE_INVALID",
        "/v1/stats?since=0001-01-01T00:00:00%2B01:00": "TIMESTAMP_INVALID",
        "/v1/decisions?until=9999-12-31T23:59:59-01:00": "TIMESTAMP_INVALID",
        "/v1/decisions?since=0001-01-01T00:00:00%2B00:01": "TIMESTAMP_INVALID",
    }
    for url, code in refused.items():
        r = env.client.get(url, headers=env.headers())
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error_code"] == code, url
    everything = env.client.get(
        "/v1/decisions?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
        headers=env.headers(),
    )
    assert [i["event_id"] for i in everything.json()["items"]] == ["acme-0"]


def test_a_reversed_or_empty_window_is_refused_on_every_listing(env: Env) -> None:
    """``since`` is inclusive and ``until`` exclusive; ``/v1/stats`` already refused a
    window that ends before it starts, while ``/v1/decisions`` answered an empty page."""
    _post(env, [BRUTE])
    for route in ("/v1/decisions", "/v1/stats", "/v1/stats/summary"):
        for since, until in (
            ("2026-12-08T00:00:00Z", "2026-12-01T00:00:00Z"),
            ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ):
            r = env.client.get(f"{route}?since={since}&until={until}", headers=env.headers())
            assert r.status_code == 422, (route, since, r.text)
            assert r.json()["error_code"] == "RANGE_INVALID"


def test_chain_verify_refuses_positions_no_chain_can_have(env: Env) -> None:
    """Integers past what the database holds were an OverflowError in the query (a 500);
    a start past the chain's end answered ``ok`` over zero entries."""
    _post(env, [BRUTE, QUIET, LLM])
    for query in (
        "start=0&end=999999999999999999999",
        "start=9223372036854775808",
        "start=3",
        "start=2&end=2",
        "start=-1",
        "start=%C2%B2",
    ):
        r = env.client.get(f"/v1/forensics/chain/verify?{query}", headers=env.headers())
        assert r.status_code == 422, (query, r.text)
        assert r.json()["error_code"] == "RANGE_INVALID", query
    tail = env.client.get("/v1/forensics/chain/verify?start=2", headers=env.headers()).json()
    assert tail == {"ok": True, "checked": 1, "first_bad_index": None, "reason": None}


def _walk(env: Env, route: str, limit: int) -> tuple[list[int], int]:
    """Every seq of ``route`` page by page, and how many pages it took."""
    seqs: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = env.client.get(f"{route}?{query}", headers=env.headers()).json()
        pages += 1
        assert page["items"], f"a cursor led to an empty page ({route}, limit {limit})"
        seqs += [item["seq"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seqs, pages


def test_a_full_last_page_says_there_is_no_next_page(env: Env) -> None:
    """A page that happened to be full always carried a cursor, which led to an empty
    page: with limit=1, one request more than there were items."""
    _post(env, [BRUTE, QUIET, LLM, QUIET])
    for _ in range(3):
        minted = env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
        assert minted.status_code == 201
    audit_total = len(env.client.get("/v1/audit?limit=500", headers=env.headers()).json()["items"])
    assert audit_total >= 3
    for route, total in (("/v1/decisions", 4), ("/v1/audit", audit_total)):
        for limit in sorted({1, 2, total, total + 1}):
            seqs, pages = _walk(env, route, limit)
            assert sorted(seqs, reverse=True) == seqs
            assert len(set(seqs)) == len(seqs) == total
            assert pages == -(-total // limit), (route, limit)


def test_a_feed_cursor_ahead_of_the_newest_decision_is_refused(env: Env) -> None:
    """A resume position the feed never reached (a cursor kept across a restore of the
    database, or made up) connected and waited in silence, then skipped every decision
    up to it. The live page and the stream refuse it; the newest position is fine."""
    _post(env, [BRUTE, QUIET, LLM])
    at_head = env.client.get("/v1/feed/live?since=2", headers=env.headers())
    assert at_head.status_code == 200
    assert at_head.json() == {"items": [], "next_since": "2"}
    for request in (
        lambda: env.client.get("/v1/feed/live?since=3", headers=env.headers()),
        lambda: env.client.get("/v1/feed/stream?since=3", headers=env.headers()),
        lambda: env.client.get("/v1/feed/stream", headers={**env.headers(), "Last-Event-ID": "3"}),
        # EventSource polyfills send the resume point in the query.
        lambda: env.client.get("/v1/feed/stream?lastEventId=3", headers=env.headers()),
        lambda: env.client.get("/v1/feed/live?since=0", headers=env.headers("globex")),
    ):
        r = request()
        assert r.status_code == 422, r.text
        assert r.json()["error_code"] == "CURSOR_INVALID"
        assert r.json()["reason"] == "the cursor is ahead of the feed's newest decision"


def test_whole_stream_reads_run_one_per_tenant(env: Env) -> None:
    """Dozens of concurrent chain verifications from one tenant slowed every tenant's
    answers to seconds and then 504s, inside that tenant's in-flight share. While one
    runs (held here from the event loop, as a running read holds it), the same tenant's
    next verification or packet is refused at once; another tenant's still runs."""
    _post(env, [BRUTE, QUIET])
    _post(env, [BRUTE], who="globex")
    heavy = app_services(env.client.app).heavy_reads
    running = heavy.slot("acme")
    portal = env.client.portal  # type: ignore[union-attr]
    portal.call(running.__enter__)
    try:
        packet = {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
        for r in (
            env.client.get("/v1/forensics/chain/verify", headers=env.headers()),
            env.client.post("/v1/forensics/packets", json=packet, headers=env.headers()),
        ):
            assert r.status_code == 429, r.text
            assert r.json()["error_code"] == "CONCURRENCY_LIMITED"
        other = env.client.get("/v1/forensics/chain/verify", headers=env.headers("globex"))
        assert other.json()["ok"] is True
    finally:
        portal.call(running.__exit__, None, None, None)
    again = env.client.get("/v1/forensics/chain/verify", headers=env.headers())
    assert again.json() == {"ok": True, "checked": 2, "first_bad_index": None, "reason": None}


def test_stats_run_two_at_a_time_per_tenant(env: Env) -> None:
    """Sixteen concurrent /v1/stats calls over a 351,000-decision window (3.7 s each)
    took another tenant's one-row read from 10 ms to 24.5 s, and sixty-four exhausted
    the connection pool (503 for everyone). Statistics run two at a time per tenant; a
    third is refused at once while another tenant's still run."""
    _post(env, [BRUTE, QUIET])
    stats_reads = app_services(env.client.app).stats_reads
    portal = env.client.portal  # type: ignore[union-attr]
    held = [stats_reads.slot("acme"), stats_reads.slot("acme")]
    for slot in held:
        portal.call(slot.__enter__)
    try:
        for path in ("/v1/stats", "/v1/stats/summary"):
            r = env.client.get(path, headers=env.headers())
            assert r.status_code == 429, r.text
            assert r.json()["error_code"] == "CONCURRENCY_LIMITED"
            assert "statistics" in r.json()["reason"]
        assert env.client.get("/v1/stats", headers=env.headers("globex")).status_code == 200
    finally:
        for slot in held:
            portal.call(slot.__exit__, None, None, None)
    assert env.client.get("/v1/stats", headers=env.headers()).status_code == 200
