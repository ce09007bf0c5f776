"""The ledger as an auditor uses it: signed checkpoints, proofs checked offline with the
public key alone, entries re-hashed, and tampering caught by the anchoring job."""

from __future__ import annotations

import base64
import contextlib
import pathlib
import random
import sqlite3

import pytest
import sqlalchemy as sa

from frostgate.api.context import app_services
from frostgate.jobs.anchor import Anchorer
from frostgate.ledger import entry_leaf_hash, verify_consistency, verify_inclusion
from frostgate.ledger.note import Verifier, open_checkpoint
from frostgate.security.ledger_key import load_ledger_signer
from tests.conftest import Env

EVENT = {"source": "sshd", "event_type": "auth.failed", "payload": {"src_ip": "203.0.113.9"}}


def _ingest(env: Env, count: int, prefix: str = "e", who: str = "acme") -> None:
    for start in range(0, count, 500):
        batch = [
            dict(EVENT, event_id=f"{prefix}{i}") for i in range(start, min(count, start + 500))
        ]
        r = env.client.post("/v1/ingest", json={"events": batch}, headers=env.headers(who))
        assert r.status_code == 200


def _anchor(env: Env) -> list[object]:
    outcomes: list[object] = app_services(env.client.app).anchorer.run_once()
    return outcomes


def _job(env: Env, export_dir: pathlib.Path | None) -> Anchorer:
    """An anchoring job of its own (not the app's), exporting to ``export_dir``."""
    return Anchorer(
        env.db,
        load_ledger_signer(env.settings),
        origin_prefix=env.settings.ledger_origin,
        lock_path=None,
        export_dir=export_dir,
    )


def _checkpoint(env: Env, stream: str = "decisions") -> tuple[int, bytes]:
    vkey = env.client.get("/v1/ledger/public-key").json()["vkey"]
    note = env.client.get(f"/v1/ledger/{stream}/checkpoint", headers=env.headers())
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    cp = open_checkpoint(
        note.text, Verifier.from_vkey(vkey), origin=f"frostgate.local/{stream}/acme"
    )
    return cp.size, cp.root


def test_inclusion_of_every_decision_verifies_with_the_public_key_alone(env: Env) -> None:
    _ingest(env, 37)
    _anchor(env)
    size, root = _checkpoint(env)
    assert size == 37
    entries = env.client.get(
        "/v1/ledger/decisions/entries?start=0&end=37", headers=env.headers()
    ).json()["entries"]
    for item in entries:
        leaf = entry_leaf_hash(item["entry"])
        assert leaf.hex() == item["leaf_hash"]
        proof = env.client.get(
            f"/v1/ledger/decisions/proof/inclusion?index={item['index']}&size={size}",
            headers=env.headers(),
        ).json()
        assert proof["leaf_hash"] == leaf.hex()
        verify_inclusion(
            leaf, item["index"], size, [bytes.fromhex(h) for h in proof["hashes"]], root
        )
    by_event = env.client.get(
        f"/v1/ledger/decisions/proof/inclusion?event_id=e5&size={size}", headers=env.headers()
    ).json()
    assert by_event["index"] == 5


def test_consistency_between_checkpoints(env: Env) -> None:
    _ingest(env, 10, "a")
    _anchor(env)
    size1, root1 = _checkpoint(env)
    _ingest(env, 23, "b")
    _anchor(env)
    size2, root2 = _checkpoint(env)
    proof = env.client.get(
        f"/v1/ledger/decisions/proof/consistency?first={size1}&second={size2}",
        headers=env.headers(),
    ).json()
    verify_consistency(size1, size2, [bytes.fromhex(h) for h in proof["hashes"]], root1, root2)
    listed = env.client.get("/v1/ledger/decisions/checkpoints", headers=env.headers()).json()
    assert [c["size"] for c in listed["checkpoints"]] == [10, 33]


def test_audit_stream_is_checkpointed_too(env: Env) -> None:
    env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
    _anchor(env)
    size, _root = _checkpoint(env, "audit")
    assert size >= 1


@pytest.mark.parametrize(
    "query",
    [
        "proof/inclusion?index=5&size=5",
        "proof/inclusion?index=0&size=999",
        "proof/inclusion?index=-1&size=3",
        "proof/inclusion?index=99999999999999999999&size=3",
        "proof/inclusion",
        "proof/consistency?first=4&second=2",
        "proof/consistency?first=0&second=2",
        "proof/consistency?first=1&second=999",
        "entries?start=5&end=2",
        "entries?start=0&end=5000",
    ],
)
def test_bad_proof_requests_are_4xx(env: Env, query: str) -> None:
    _ingest(env, 5)
    r = env.client.get(f"/v1/ledger/decisions/{query}", headers=env.headers())
    assert r.status_code == 422, r.text
    assert r.json()["error_code"] == "RANGE_INVALID"


def test_foreign_or_unknown_streams_are_404(env: Env) -> None:
    _ingest(env, 3, who="globex")
    for path in (
        "/v1/ledger/globex/checkpoint",
        "/v1/ledger/keys/entries",
        "/v1/ledger/decisions/checkpoint",
    ):
        assert env.client.get(path, headers=env.headers()).status_code == 404
    entries = env.client.get("/v1/ledger/decisions/entries", headers=env.headers()).json()[
        "entries"
    ]
    assert entries == []


@pytest.mark.parametrize("seed", range(6))
def test_anchoring_refuses_to_sign_over_tampered_rows(env: Env, seed: int) -> None:
    """Alter a random row behind the application's back: the job refuses, raises a
    critical audit event, readiness fails, and chain verification names the row."""
    rng = random.Random(seed)
    _ingest(env, 20, "t")
    _anchor(env)
    _ingest(env, 20, "u")
    victim = rng.randrange(20, 40)
    column = rng.choice(["score", "source", "request_json", "threat_level", "event_type"])
    value = {
        "score": 7,
        "source": "forged",
        "request_json": '{"x":1}',
        "threat_level": "low",
        "event_type": "x",
    }[column]
    with env.db.write.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE decisions SET {column} = :v WHERE tenant_id = 'acme' AND seq = :s"),
            {"v": value, "s": victim},
        )
    outcomes = {o.stream: o for o in _anchor(env)}  # type: ignore[attr-defined]
    assert outcomes["decisions/acme"].status == "tampered"
    assert env.client.get("/health/ready").status_code == 503
    report = env.client.get("/v1/forensics/chain/verify", headers=env.headers()).json()
    assert report["ok"] is False
    assert report["first_bad_index"] == victim
    events = env.client.get("/v1/audit?kind=ledger_tampered", headers=env.headers()).json()["items"]
    assert events[0]["severity"] == "critical"


def test_anchoring_detects_truncation_and_rewritten_nodes(env: Env) -> None:
    _ingest(env, 16)
    _anchor(env)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_heads SET size = 12 WHERE stream = 'decisions/acme'"))
    assert {o.stream: o.status for o in _anchor(env)}["decisions/acme"] == "truncated"  # type: ignore[attr-defined]
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_heads SET size = 16 WHERE stream = 'decisions/acme'"))
        conn.execute(
            sa.text(
                "UPDATE ledger_nodes SET hash = :h"
                " WHERE stream = 'decisions/acme' AND level = 4 AND idx = 0"
            ),
            {"h": b"\x00" * 32},
        )
    assert {o.stream: o.status for o in _anchor(env)}["decisions/acme"] == "inconsistent"  # type: ignore[attr-defined]


def test_public_key_is_public_and_well_formed(env: Env) -> None:
    body = env.client.get("/v1/ledger/public-key").json()
    name, key_hash, key = body["vkey"].split("+", 2)
    assert name == body["origin"] == "frostgate.local"
    assert len(key_hash) == 8
    assert base64.b64decode(key)[0] == 1


def test_database_verification_passes_then_names_the_first_bad_entry(env: Env) -> None:
    from frostgate.decisions.ledger_audit import verify_database

    _ingest(env, 30)
    env.client.post("/v1/keys", json={"scopes": ["feed:read"]}, headers=env.headers())
    _anchor(env)
    _ingest(env, 5, "late")
    report = verify_database(env.settings)
    assert report.ok, report.as_dict()
    streams = {s.stream: s for s in report.streams}
    assert streams["decisions/acme"].checked == 35
    assert streams["decisions/acme"].checkpoints == 1
    with env.db.write.begin() as conn:
        conn.execute(
            sa.text("UPDATE decisions SET src_ip = '6.6.6.6' WHERE tenant_id = 'acme' AND seq = 17")
        )
        conn.execute(
            sa.text("UPDATE audit_events SET detail = '{}' WHERE tenant_id = 'acme' AND seq = 0")
        )
    report = verify_database(env.settings)
    assert not report.ok
    streams = {s.stream: s for s in report.streams}
    assert streams["decisions/acme"].first_bad_index == 17
    assert streams["audit/acme"].first_bad_index == 0
    assert streams["decisions/globex"].ok


def test_audit_packet_round_trip_verifies_offline_and_detects_tampering(env: Env) -> None:
    from datetime import UTC, datetime, timedelta

    from frostgate.ledger.packet import verify_packet

    _ingest(env, 25)
    now = datetime.now(UTC)
    window = {
        "since": (now - timedelta(minutes=5)).isoformat(),
        "until": (now + timedelta(minutes=5)).isoformat(),
    }
    created = env.client.post("/v1/forensics/packets", json=window, headers=env.headers())
    assert created.status_code == 201, created.text
    info = created.json()
    assert (info["start"], info["end"]) == (0, 25)
    download = env.client.get(info["download"], headers=env.headers())
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    again = env.client.get(info["download"], headers=env.headers())
    assert again.content == download.content  # deterministic
    vkey = env.client.get("/v1/ledger/public-key").json()["vkey"]
    report = verify_packet(download.content, Verifier.from_vkey(vkey), event_index=7)
    assert report.ok, report.as_dict()
    assert report.checked_entries == 25
    # Another tenant cannot fetch it; a changed history no longer rebuilds.
    assert env.client.get(info["download"], headers=env.headers("globex")).status_code == 404
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET score = 3 WHERE tenant_id = 'acme' AND seq = 4"))
    changed = env.client.get(info["download"], headers=env.headers())
    assert changed.status_code == 409
    assert changed.json()["error_code"] == "PACKET_HISTORY_CHANGED"
    audit = env.client.app.audit  # type: ignore[attr-defined]
    env.client.portal.call(audit.drain)  # type: ignore[union-attr]
    alarms = env.client.get("/v1/audit?kind=packet_history_changed", headers=env.headers())
    assert [e["severity"] for e in alarms.json()["items"]] == ["critical"]
    empty = {"since": "2001-01-01T00:00:00Z", "until": "2001-01-02T00:00:00Z"}
    r = env.client.post("/v1/forensics/packets", json=empty, headers=env.headers())
    assert r.status_code == 422


@pytest.mark.parametrize("column", ["actionable", "changed"])
def test_flags_kept_beside_the_entry_are_checked_against_it(env: Env, column: str) -> None:
    """``actionable`` and ``changed`` are columns the feed and stats filter on, outside
    the hashed entry; they follow from its ``actions`` and ``diff``. Flipped behind the
    application's back, a block dropped out of ``only_actionable`` with every verifier
    still passing."""
    from frostgate.decisions.ledger_audit import verify_database

    brute = dict(EVENT, payload={"src_ip": "203.0.113.9", "failed_auths": 9})
    _ingest(env, 6)
    r = env.client.post("/v1/defend", json=dict(brute, event_id="b1"), headers=env.headers())
    assert r.status_code == 200, r.text
    assert r.json()["mitigations"]
    with env.db.write.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE decisions SET {column} = NOT {column}"
                " WHERE tenant_id = 'acme' AND event_id = 'b1'"
            )
        )
    report = env.client.get("/v1/forensics/chain/verify", headers=env.headers()).json()
    assert (report["ok"], report["first_bad_index"]) == (False, 6)
    assert column in report["reason"]
    streams = {s.stream: s for s in verify_database(env.settings).streams}
    assert streams["decisions/acme"].first_bad_index == 6


def _as_the_file_owner(env: Env, *statements: str) -> None:
    """Run ``statements`` on the SQLite file with foreign keys off, as whoever holds the
    file can."""
    path = env.db.write.url.database
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        for statement in statements:
            raw.execute(statement)


def test_a_tenant_whose_record_is_gone_still_has_its_streams_verified(env: Env) -> None:
    """The verifier listed streams from the tenants table: deleting a tenant's record
    (tenants are never deleted) hid its ledger, tampered rows included, and verification
    passed."""
    from frostgate.decisions.ledger_audit import verify_database

    if env.db.dialect != "sqlite":
        pytest.skip(
            "on PostgreSQL the verifier connects as the RLS-bound application role, which "
            "sees a tenant's rows only through its record; removing that record takes a "
            "superuser (foreign keys, no DELETE policy)"
        )
    _ingest(env, 8, who="globex")
    _as_the_file_owner(
        env,
        "DELETE FROM tenants WHERE tenant_id = 'globex'",
        "UPDATE decisions SET score = 1 WHERE tenant_id = 'globex' AND seq = 5",
    )
    report = verify_database(env.settings)
    assert not report.ok
    streams = {s.stream: s for s in report.streams}
    assert streams["decisions/globex"].first_bad_index == 5
    assert not streams["audit/globex"].ok
    assert "no tenant record" in str(streams["audit/globex"].reason)
    assert streams["decisions/acme"].ok


def test_a_missing_tree_node_fails_database_verification(env: Env) -> None:
    """Only the stored nodes were compared: a deleted one passed, and proofs and packets
    that need it then failed with 500s."""
    from frostgate.decisions.ledger_audit import verify_database

    _ingest(env, 9)
    with env.db.write.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM ledger_nodes WHERE stream = 'decisions/acme' AND level = 1 AND idx = 3"
            )
        )
    streams = {s.stream: s for s in verify_database(env.settings).streams}
    bad = streams["decisions/acme"]
    assert (bad.ok, bad.first_bad_index) == (False, 6)
    assert bad.reason == "stored tree node (1, 3) is missing"


def _rewrite_history(env: Env, *, change: int | None = None, keep: int | None = None) -> bytes:
    """Rewrite acme's decision stream behind the application's back, as someone with
    write access to the database can: change entry ``change`` and/or drop every entry
    from ``keep`` on, then recompute every leaf, chain hash, stored node and the head so
    the stream is internally perfect. Checkpoint rows are left alone. Returns the new
    root."""
    from frostgate.ledger import GENESIS, MemoryTree, chain_hash
    from frostgate.store import schema
    from frostgate.store.entries import decision_entry

    with env.db.write.begin() as conn:
        if keep is not None:
            conn.execute(
                sa.text("DELETE FROM decisions WHERE tenant_id = 'acme' AND seq >= :k"), {"k": keep}
            )
        if change is not None:
            conn.execute(
                sa.text("UPDATE decisions SET score = 1 WHERE tenant_id = 'acme' AND seq = :s"),
                {"s": change},
            )
        decisions = schema.decisions
        rows = conn.execute(
            sa.select(decisions).where(decisions.c.tenant_id == "acme").order_by(decisions.c.seq)
        ).mappings()
        prev, leaves = GENESIS, []
        for row in list(rows):
            leaf = entry_leaf_hash(decision_entry(row))
            link = chain_hash(prev, leaf)
            conn.execute(
                sa.text(
                    "UPDATE decisions SET leaf_hash = :l, prev_chain_hash = :p, chain_hash = :c"
                    " WHERE tenant_id = 'acme' AND seq = :s"
                ),
                {"l": leaf.hex(), "p": prev.hex(), "c": link.hex(), "s": row["seq"]},
            )
            prev = link
            leaves.append(leaf)
        tree = MemoryTree(leaves)
        conn.execute(sa.text("DELETE FROM ledger_nodes WHERE stream = 'decisions/acme'"))
        for level in range(len(leaves).bit_length()):
            for index in range(len(leaves) >> level):
                conn.execute(
                    sa.text(
                        "INSERT INTO ledger_nodes (stream, tenant_id, level, idx, hash)"
                        " VALUES ('decisions/acme', 'acme', :lv, :i, :h)"
                    ),
                    {"lv": level, "i": index, "h": tree.node(level, index)},
                )
        conn.execute(
            sa.text(
                "UPDATE ledger_heads SET size = :n, chain_hash = :c WHERE stream = 'decisions/acme'"
            ),
            {"n": len(leaves), "c": prev.hex()},
        )
    return tree.root()


def test_anchoring_checks_history_against_the_signed_note_not_the_root_column(
    env: Env,
) -> None:
    """The job read the previous root from the checkpoint row's unsigned root_hash
    column: with history rewritten and that column set to the forged root, the log key
    signed a fork of its own history."""
    _ingest(env, 20)
    assert {o.stream: o.status for o in _anchor(env)}["decisions/acme"] == "anchored"  # type: ignore[attr-defined]
    forged = _rewrite_history(env, change=5)
    with env.db.write.begin() as conn:
        conn.execute(
            sa.text("UPDATE checkpoints SET root_hash = :r WHERE stream = 'decisions/acme'"),
            {"r": forged.hex()},
        )
    _ingest(env, 4, "more")
    outcome = {o.stream: o for o in _anchor(env)}["decisions/acme"]  # type: ignore[attr-defined]
    assert outcome.status == "tampered"
    assert "signed note" in outcome.detail
    assert _checkpoint(env)[0] == 20  # nothing new was signed


def test_anchoring_refuses_a_history_cut_below_what_it_signed(
    env: Env, tmp_path: pathlib.Path
) -> None:
    """Truncating the stream and deleting the checkpoints that covered the lost tail left
    nothing in the database to compare with: the job signed the shorter history. It now
    remembers what it signed, and with an export directory so does a restarted job."""

    first = _job(env, tmp_path / "exported")
    _ingest(env, 20)
    assert {o.stream: o.status for o in first.run_once()}["decisions/acme"] == "anchored"
    _rewrite_history(env, keep=12)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("DELETE FROM checkpoints WHERE stream = 'decisions/acme'"))
    for job in (first, _job(env, tmp_path / "exported")):  # the same job, and one started afresh
        outcome = {o.stream: o for o in job.run_once()}["decisions/acme"]
        assert outcome.status == "truncated", outcome
        assert "checkpoint 20" in outcome.detail
    with env.db.read.connect() as conn:
        signed = "SELECT count(*) FROM checkpoints WHERE stream = 'decisions/acme'"
        assert conn.execute(sa.text(signed)).scalar() == 0


def test_database_verification_checks_the_checkpoints_kept_outside_it(
    env: Env, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that lost its tail together with the checkpoints covering it (a bad
    restore, or someone hiding decisions) verifies by itself: nothing in it says more
    was signed. The exported checkpoints do; ``frostgate verify --checkpoints`` (default
    FG_ANCHOR_EXPORT_DIR) holds the database to them."""
    from typer.testing import CliRunner

    from frostgate.cli import app
    from frostgate.config import get_settings
    from frostgate.decisions.ledger_audit import verify_database

    exported = tmp_path / "exported"
    job = _job(env, exported)
    _ingest(env, 20)
    job.run_once()
    assert verify_database(env.settings, checkpoint_dir=exported).ok
    _rewrite_history(env, keep=12)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("DELETE FROM checkpoints WHERE stream = 'decisions/acme'"))
    assert verify_database(env.settings).ok  # the database alone cannot tell
    streams = {s.stream: s for s in verify_database(env.settings, checkpoint_dir=exported).streams}
    bad = streams["decisions/acme"]
    assert (bad.ok, bad.first_bad_index) == (False, 12)
    assert bad.reason == "exported checkpoint 20 covers entries the database does not hold"
    assert streams["audit/acme"].ok

    for name, value in {
        "FG_PROFILE": "test",
        "FG_DATA_DIR": str(env.settings.data_dir),
        "FG_DB_URL": env.settings.database_url,
        "FG_KEY_PEPPERS": env.settings.key_peppers,
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("FG_ANCHOR_EXPORT_DIR", raising=False)
    get_settings.cache_clear()
    try:
        assert CliRunner().invoke(app, ["verify"]).exit_code == 0
        flagged = CliRunner().invoke(app, ["verify", "--checkpoints", str(exported)])
        assert flagged.exit_code == 1, flagged.output
        assert "exported checkpoint 20" in flagged.output
        monkeypatch.setenv("FG_ANCHOR_EXPORT_DIR", str(exported))
        get_settings.cache_clear()
        assert CliRunner().invoke(app, ["verify"]).exit_code == 1
    finally:
        get_settings.cache_clear()


def test_an_export_that_fails_is_reported_and_the_other_streams_still_anchor(
    env: Env, tmp_path: pathlib.Path
) -> None:
    """An exception from writing the export left run_once, so every stream after the
    failing one went unanchored that round. A failed export is logged and named in the
    stream's outcome; the checkpoint itself is signed and stored."""

    blocked = tmp_path / "exported"
    blocked.write_text("a file where the directory should be")
    job = _job(env, blocked)
    _ingest(env, 5)
    _ingest(env, 3, who="globex")
    outcomes = {o.stream: o for o in job.run_once()}
    for stream in ("decisions/acme", "decisions/globex"):
        assert outcomes[stream].status == "anchored"
        assert outcomes[stream].detail.startswith("export failed")
    assert _checkpoint(env)[0] == 5


def test_an_exported_checkpoint_that_is_not_a_regular_file_is_refused_unread(
    env: Env, tmp_path: pathlib.Path
) -> None:
    """A FIFO named like a checkpoint blocked the anchoring thread for ever."""
    import os

    exported = tmp_path / "exported"
    (exported / "decisions" / "acme").mkdir(parents=True)
    os.mkfifo(exported / "decisions" / "acme" / f"{30:020d}.checkpoint")
    job = _job(env, exported)
    _ingest(env, 5)
    outcome = {o.stream: o for o in job.run_once()}["decisions/acme"]
    assert outcome.status == "inconsistent"
    assert "not a regular file" in outcome.detail


def test_checkpoints_held_outside_are_read_before_the_database(
    env: Env, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read after a stream's rows, a checkpoint the anchoring job exported meanwhile was
    newer than what the database showed, and a healthy, running ledger failed as if it
    had lost its tail. Every kept checkpoint is read before the database is opened."""
    from frostgate.decisions import ledger_audit

    exported = tmp_path / "exported"
    events: list[str] = []
    real_newest, real_open = ledger_audit.newest_exported, ledger_audit.open_database

    def newest(*args: object) -> object:
        events.append("read export")
        return real_newest(*args)  # type: ignore[arg-type]

    def opened(*args: object) -> object:
        events.append("open database")
        return real_open(*args)  # type: ignore[arg-type]

    job = _job(env, exported)
    _ingest(env, 5)
    job.run_once()
    monkeypatch.setattr(ledger_audit, "newest_exported", newest)
    monkeypatch.setattr(ledger_audit, "open_database", opened)
    assert ledger_audit.verify_database(env.settings, checkpoint_dir=exported).ok
    assert "read export" in events
    assert events.index("open database") > max(
        i for i, e in enumerate(events) if e == "read export"
    )


def test_a_checkpoint_directory_that_is_not_there_fails_verification(
    env: Env, tmp_path: pathlib.Path
) -> None:
    """A typo or an unmounted volume verified clean, as if nothing were kept outside."""
    from frostgate.decisions.ledger_audit import verify_database

    with pytest.raises(FileNotFoundError, match="does not exist"):
        verify_database(env.settings, checkpoint_dir=tmp_path / "not-mounted")


def test_a_job_that_remembers_a_checkpoint_holds_the_tree_to_its_root(
    env: Env, tmp_path: pathlib.Path
) -> None:
    """Only the remembered checkpoint's size was compared: once a job without memory
    (``frostgate anchor`` with no export directory) had signed a rewritten history at
    that size or beyond, the remembering job signed on over it."""

    remembering = _job(env, tmp_path / "exported")
    _ingest(env, 10)
    assert {o.stream: o.status for o in remembering.run_once()}["decisions/acme"] == "anchored"
    _rewrite_history(env, change=5)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("DELETE FROM checkpoints WHERE stream = 'decisions/acme'"))
    forgetful = {o.stream: o.status for o in _job(env, None).run_once()}
    assert forgetful["decisions/acme"] == "anchored"  # it has nothing to compare with
    for grown in (False, True):  # unchanged since, and grown since
        if grown:
            _ingest(env, 3, "more")
        outcome = {o.stream: o for o in remembering.run_once()}["decisions/acme"]
        assert outcome.status == "inconsistent", outcome
        assert "checkpoint 10" in outcome.detail


def test_an_export_directory_not_made_yet_is_a_fresh_install_not_a_failure(
    env: Env, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With FG_ANCHOR_EXPORT_DIR set before the first anchoring made it, verify failed a
    healthy ledger. The configured directory not existing yet is said, not failed; one
    named with --checkpoints must exist."""
    from typer.testing import CliRunner

    from frostgate.cli import app
    from frostgate.config import get_settings

    _ingest(env, 3)
    for name, value in {
        "FG_PROFILE": "test",
        "FG_DATA_DIR": str(env.settings.data_dir),
        "FG_DB_URL": env.settings.database_url,
        "FG_KEY_PEPPERS": env.settings.key_peppers,
        "FG_ANCHOR_EXPORT_DIR": str(tmp_path / "not-yet"),
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    try:
        fresh = CliRunner().invoke(app, ["verify"])
        assert fresh.exit_code == 0, fresh.output
        assert "does not exist: no exported checkpoints checked" in fresh.output
        named = CliRunner().invoke(app, ["verify", "--checkpoints", str(tmp_path / "typo")])
        assert named.exit_code == 1
    finally:
        get_settings.cache_clear()
