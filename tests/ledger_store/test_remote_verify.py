"""``frostgate verify --url``: a served ledger verified through its API with a key.

A real server on loopback (uvicorn in a thread), the real command, the real egress
client (allowlisted for that loopback port, as FG_EGRESS_ALLOW_HOSTS must say); rows and
checkpoints are changed behind the application's back with the owner's connection.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import pytest
import sqlalchemy as sa
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner, Result

from frostgate.cli import app
from frostgate.cli.verify import REMOTE_MAX_RESPONSE_BYTES
from frostgate.config import Settings
from frostgate.decisions.remote_verify import RemoteReport, verify_remote
from frostgate.egress import client_from_settings
from frostgate.ledger import generate_signing_key
from frostgate.ledger.note import Signer, format_checkpoint, sign_note
from frostgate.store import Database
from frostgate.store.checkpoints import insert_checkpoint
from tests.ledger_store.served import Served, serve


@pytest.fixture
def served(settings: Settings, db: Database) -> Iterator[Served]:
    yield from serve(settings, db)


@pytest.fixture
def allowed(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    monkeypatch.setenv("FG_PROFILE", "test")
    monkeypatch.setenv("FG_EGRESS_ALLOW_HOSTS", served.allow)
    monkeypatch.delenv("FG_VERIFY_KEY", raising=False)
    return served


def verify(served: Served, *args: str, who: str = "acme") -> Result:
    return CliRunner().invoke(
        app, ["verify", "--url", served.url, "--key", served.keys[who], *args]
    )


def report(result: Result) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def streams(result: Result) -> dict[str, dict[str, object]]:
    return {s["stream"]: s for s in report(result)["streams"]}  # type: ignore[attr-defined]


def one_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_served_ledger_verifies_with_a_read_key(allowed: Served) -> None:
    allowed.ingest(30)
    allowed.anchor()
    allowed.ingest(5, "late")
    allowed.ingest(4, who="globex")
    result = verify(allowed, "--json", "--event-id", "e7")
    assert result.exit_code == 0, result.output
    body = report(result)
    assert body["ok"] is True
    assert body["vkey"] == allowed.services.ledger_signer.vkey
    decisions = streams(result)["decisions/acme"]
    assert (decisions["entries"], decisions["checkpoints"], decisions["tree_size"]) == (35, 1, 30)
    assert decisions["unanchored"] == 5
    assert "audit/acme" in streams(result)
    assert body["event"] == {
        "event_id": "e7",
        "stream": "decisions/acme",
        "index": 7,
        "tree_size": 30,
        "included": True,
    }
    other = CliRunner().invoke(
        app,
        ["verify", "--url", allowed.url, "--json"],
        env={"FG_VERIFY_KEY": allowed.keys["globex"]},
    )
    assert other.exit_code == 0, other.output
    assert streams(other)["decisions/globex"]["entries"] == 4


def _five_anchored_behind(
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    wrap: Callable[[ASGIApp], ASGIApp],
) -> Iterator[Served]:
    """A served ledger of five anchored acme decisions, reached through ``wrap``."""
    for served in serve(settings, db, wrap=wrap):
        monkeypatch.setenv("FG_PROFILE", "test")
        monkeypatch.setenv("FG_EGRESS_ALLOW_HOSTS", served.allow)
        served.ingest(5)
        served.anchor()
        yield served


def _proves_entry_0_for_any_event(app: ASGIApp) -> ASGIApp:
    """A hostile server: asked to prove an event_id, it proves entry 0 instead (a real,
    valid proof of a real entry, just not the one asked for)."""

    async def hostile(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/proof/inclusion"):
            query = parse_qsl(scope["query_string"].decode())
            lied = [("index", "0") if name == "event_id" else (name, v) for name, v in query]
            scope = dict(scope, query_string=urlencode(lied).encode())
        await app(scope, receive, send)

    return hostile


def test_a_proof_of_another_entry_does_not_include_the_event(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verifier checked the served proof against its re-hashed leaf, but not that
    the leaf was the asked-for event's: any valid proof "included" any event_id."""
    for hostile in _five_anchored_behind(settings, db, monkeypatch, _proves_entry_0_for_any_event):
        result = verify(hostile, "--event-id", "never-recorded")
        assert result.exit_code == 1, result.output
        assert "entry 0 is not event 'never-recorded'" in one_line(result)
        # The honest answer for a recorded event still passes through the same server.
        assert verify(hostile, "--event-id", "e0").exit_code == 0


def test_entries_far_past_the_newest_checkpoint_end_verification(allowed: Served) -> None:
    """Past its checkpoints a server owes nothing: a hostile one could serve well-chained
    entries for ever. The verifier reads a bounded number of them."""
    allowed.ingest(10)
    allowed.anchor()
    allowed.ingest(1500, "late")

    def run(limit: int) -> RemoteReport:
        client = client_from_settings(
            allowed.settings.model_copy(update={"egress_allow_hosts": allowed.allow}),
            max_response_bytes=REMOTE_MAX_RESPONSE_BYTES,
        )
        return asyncio.run(
            verify_remote(client, allowed.url, allowed.keys["acme"], max_unanchored=limit)
        )

    assert run(2000).ok
    refused = run(1000)
    assert not refused.ok
    assert "more than 1000 entries after its newest checkpoint (10)" in str(refused.reason)


def _denies_every_proof(app: ASGIApp) -> ASGIApp:
    """A hostile server: it serves its entries but answers 404 to every inclusion proof,
    as if an event it recorded were unknown."""

    async def hostile(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/proof/inclusion"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b'{"error_code":"NOT_FOUND"}'})
            return
        await app(scope, receive, send)

    return hostile


def test_a_server_denying_an_event_it_served_fails(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 404 for the proof was taken at its word ("not included"), though the verifier
    had just re-hashed the event's entry under a signed checkpoint."""
    for hostile in _five_anchored_behind(settings, db, monkeypatch, _denies_every_proof):
        result = verify(hostile, "--event-id", "e3")
        assert result.exit_code == 1, result.output
        assert "denies a proof of event 'e3', which it served as entry 3" in one_line(result)


def test_human_summary_and_key_from_the_environment(allowed: Served) -> None:
    allowed.ingest(12)
    allowed.anchor()
    result = CliRunner().invoke(
        app,
        ["verify", "--url", allowed.url, "--vkey", allowed.services.ledger_signer.vkey],
        env={"FG_VERIFY_KEY": allowed.keys["acme"]},
    )
    assert result.exit_code == 0, result.output
    assert "remote ledger verified" in result.output
    assert "decisions/acme" in result.output


def test_an_unknown_or_unanchored_event_is_not_included(allowed: Served) -> None:
    allowed.ingest(3)
    allowed.anchor()
    allowed.ingest(2, "late")
    result = verify(allowed, "--event-id", "never-sent")
    assert result.exit_code == 1
    assert "never-sent" in one_line(result)
    late = verify(allowed, "--event-id", "late1", "--json")
    assert late.exit_code == 1
    event = report(late)["event"]
    assert event["included"] is False  # type: ignore[index]
    assert "not anchored yet" in event["reason"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("column", "value"),
    [("score", 7), ("source", "forged"), ("request_json", '{"x":1}'), ("chain_hash", "00" * 32)],
)
def test_a_row_changed_behind_the_app_fails_at_its_index(
    allowed: Served, column: str, value: object
) -> None:
    allowed.ingest(40)
    allowed.anchor()
    with allowed.db.write.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE decisions SET {column} = :v WHERE tenant_id = 'acme' AND seq = 23"),
            {"v": value},
        )
    result = verify(allowed, "--json")
    assert result.exit_code == 1
    bad = streams(result)["decisions/acme"]
    assert bad["ok"] is False
    assert bad["first_bad_index"] == 23
    human = verify(allowed)
    assert human.exit_code == 1
    assert "entry 23" in one_line(human)


def test_deleted_tail_is_caught_against_the_checkpoint(allowed: Served) -> None:
    allowed.ingest(20)
    allowed.anchor()
    with allowed.db.write.begin() as conn:
        conn.execute(sa.text("DELETE FROM decisions WHERE tenant_id = 'acme' AND seq >= 16"))
    bad = streams(verify(allowed, "--json"))["decisions/acme"]
    assert bad["first_bad_index"] == 16
    assert "missing" in str(bad["reason"])


def test_a_pinned_key_that_is_not_the_servers_fails(allowed: Served) -> None:
    allowed.ingest(3)
    allowed.anchor()
    _, other = generate_signing_key("frostgate.local")
    result = verify(allowed, "--vkey", other)
    assert result.exit_code == 1
    assert "pinned" in one_line(result)


def test_a_forged_checkpoint_fails(allowed: Served) -> None:
    allowed.ingest(10)
    allowed.anchor()
    allowed.ingest(5, "more")
    skey, _ = generate_signing_key("frostgate.local")
    forger = Signer.from_skey(skey)
    tree_root = bytes(32)
    note = sign_note(format_checkpoint("frostgate.local/decisions/acme", 15, tree_root), forger)
    with allowed.db.write.begin() as conn:
        insert_checkpoint(conn, "acme", "decisions/acme", 15, tree_root, note, datetime.now(UTC))
    result = verify(allowed, "--json")
    bad = streams(result)["decisions/acme"]
    assert result.exit_code == 1
    assert "checkpoint 15" in str(bad["reason"])
    assert "not signed by any known key" in str(bad["reason"])


@pytest.mark.parametrize(
    "note", ["garbage", "frostgate.local/decisions/acme\n10\nAAAA\n\n— x AAAA\n"]
)
def test_a_malformed_note_fails_cleanly(allowed: Served, note: str) -> None:
    allowed.ingest(10)
    allowed.anchor()
    with allowed.db.write.begin() as conn:
        conn.execute(
            sa.text("UPDATE checkpoints SET note = :n WHERE stream = 'decisions/acme'"), {"n": note}
        )
    result = verify(allowed)
    assert result.exit_code == 1
    assert "checkpoint 10" in one_line(result)


def test_a_key_the_server_refuses(allowed: Served) -> None:
    result = CliRunner().invoke(app, ["verify", "--url", allowed.url, "--key", "fgk_nope_nope"])
    assert result.exit_code == 1
    assert "401 AUTH_REQUIRED" in one_line(result)


def test_a_key_without_the_scope(allowed: Served) -> None:
    result = verify(allowed, who="acme:write")  # has ledger:read too: passes
    assert result.exit_code == 0, result.output
    from frostgate.security import admin
    from frostgate.security.peppers import load_peppers

    feed_only = admin.mint_key(
        allowed.db,
        load_peppers(allowed.settings),
        tenant_id="acme",
        scopes=frozenset({"feed:read"}),
    ).token
    refused = CliRunner().invoke(app, ["verify", "--url", allowed.url, "--key", feed_only])
    assert refused.exit_code == 1
    assert "403 SCOPE_DENIED" in one_line(refused)


def test_the_egress_policy_refuses_an_unlisted_loopback_url(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FG_EGRESS_ALLOW_HOSTS", raising=False)
    result = verify(served)
    assert result.exit_code == 1
    assert "refused by the egress policy" in one_line(result)
    as_json = verify(served, "--json")
    assert report(as_json)["ok"] is False
    assert "egress policy" in str(report(as_json)["reason"])


def test_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ledger_store.served import free_port

    port = free_port()
    monkeypatch.setenv("FG_EGRESS_ALLOW_HOSTS", f"127.0.0.1:{port}")
    result = CliRunner().invoke(
        app, ["verify", "--url", f"http://127.0.0.1:{port}", "--key", "fgk_a_b"]
    )
    assert result.exit_code == 1
    assert "failed: connection failed" in one_line(result)


def test_a_response_over_the_cap_is_refused(allowed: Served) -> None:
    allowed.ingest(40)
    allowed.anchor()
    small = client_from_settings(
        allowed.settings.model_copy(update={"egress_allow_hosts": allowed.allow}),
        max_response_bytes=4096,
    )
    result = asyncio.run(verify_remote(small, allowed.url, allowed.keys["acme"]))
    assert result.ok is False
    assert "larger than the verifier's response cap" in str(result.reason)


def test_usage_errors(allowed: Served) -> None:
    no_key = CliRunner().invoke(app, ["verify", "--url", allowed.url])
    assert no_key.exit_code == 1
    assert "FG_VERIFY_KEY" in one_line(no_key)
    both = CliRunner().invoke(app, ["verify", "--url", allowed.url, "--packet", "x.zip"])
    assert both.exit_code == 2
    stray = CliRunner().invoke(app, ["verify", "--key", "fgk_a_b"])
    assert stray.exit_code == 2


def test_long_runs_get_a_progress_bar_but_json_stays_clean(
    allowed: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frostgate.cli import verify as verify_module

    monkeypatch.setattr(verify_module, "PROGRESS_THRESHOLD", 10)
    allowed.ingest(1200)  # two pages
    allowed.anchor()
    shown = verify(allowed)
    assert shown.exit_code == 0, shown.output
    assert "remote ledger verified" in shown.stdout
    quiet = verify(allowed, "--json")
    assert quiet.exit_code == 0
    assert streams(quiet)["decisions/acme"]["entries"] == 1200
    assert quiet.stderr == ""


@pytest.mark.parametrize("seed", range(4))
def test_random_mutations_are_named_at_their_index(allowed: Served, seed: int) -> None:
    """Issue 4 part 8 for the remote verifier: a random row, column and byte."""
    rng = random.Random(seed)
    allowed.ingest(60)
    allowed.anchor()
    allowed.ingest(10, "late")
    victim = rng.randrange(70)
    column = rng.choice(["source", "event_type", "src_ip", "event_id", "response_json"])
    with allowed.db.read.connect() as conn:
        old = conn.execute(
            sa.text(f"SELECT {column} FROM decisions WHERE tenant_id = 'acme' AND seq = :s"),
            {"s": victim},
        ).scalar_one()
    position = rng.randrange(len(old))
    new = old[:position] + chr((ord(old[position]) + 1 - 32) % 94 + 32) + old[position + 1 :]
    with allowed.db.write.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE decisions SET {column} = :v WHERE tenant_id = 'acme' AND seq = :s"),
            {"v": new, "s": victim},
        )
    bad = streams(verify(allowed, "--json"))["decisions/acme"]
    assert (bad["ok"], bad["first_bad_index"]) == (False, victim), (column, position)


def test_an_audit_row_changed_behind_the_app(allowed: Served) -> None:
    allowed.ingest(3)  # the audit stream already holds the key mints
    with allowed.db.write.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET detail = :d WHERE tenant_id = 'acme' AND seq = 0"),
            {"d": '{"forged":true}'},
        )
    result = verify(allowed, "--json")
    bad = streams(result)["audit/acme"]
    assert (bad["ok"], bad["first_bad_index"]) == (False, 0)
    assert streams(result)["decisions/acme"]["ok"] is True
