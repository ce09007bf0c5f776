"""Witness export: each new signed checkpoint is POSTed to every FG_ANCHOR_WITNESS_URLS
entry through the egress client; a witness that fails never holds up anchoring and is
recorded as a ``witness_failed`` audit event. Receivers are real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from frostgate.config import Settings
from frostgate.egress import client_from_settings
from frostgate.jobs import AnchorOutcome
from frostgate.jobs.witness import WitnessPublisher, WitnessResult, parse_witness_urls
from frostgate.ledger.note import Verifier, open_checkpoint
from frostgate.store import Database
from tests.conftest import Env
from tests.egress.receivers import Behaviour, Receiver
from tests.ledger_store.served import EVENT, Served, free_port, serve


def wait_for(condition: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


def witness_failures(db: Database) -> list[dict[str, object]]:
    with db.read.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT tenant_id, severity, detail FROM audit_events "
                "WHERE kind = 'witness_failed' ORDER BY seq"
            )
        ).all()
    return [{"tenant_id": r[0], "severity": r[1], **orjson.loads(r[2])} for r in rows]


@pytest.fixture
def witnesses() -> Iterator[tuple[Receiver, Receiver]]:
    good, bad = Receiver(), Receiver()
    bad.behaviour = lambda _seen: Behaviour(status=500)
    yield good, bad
    good.close()
    bad.close()


@pytest.fixture
def served(
    settings: Settings, db: Database, witnesses: tuple[Receiver, Receiver]
) -> Iterator[Served]:
    good, bad = witnesses
    unlisted = free_port()  # loopback, not allowlisted: refused before any connection
    urls = [
        f"http://127.0.0.1:{good.port}/add-checkpoint?token=s3cret",
        f"http://127.0.0.1:{bad.port}/",
        f"http://127.0.0.1:{unlisted}/",
    ]
    yield from serve(
        settings,
        db,
        anchor_interval_seconds=0.2,
        anchor_witness_urls=",".join(urls),
        egress_allow_hosts=f"127.0.0.1:{good.port},127.0.0.1:{bad.port}",
    )


def test_each_new_checkpoint_reaches_the_witnesses_and_failures_are_audited(
    served: Served, witnesses: tuple[Receiver, Receiver]
) -> None:
    good, bad = witnesses
    served.ingest(9)
    wait_for(lambda: any(b"/decisions/acme\n9\n" in s.body for s in good.seen))
    verifier = Verifier.from_vkey(served.services.ledger_signer.vkey)
    seen = next(s for s in good.seen if b"/decisions/acme\n9\n" in s.body)
    assert seen.path == "/add-checkpoint?token=s3cret"
    assert seen.headers["content-type"] == "text/plain; charset=utf-8"
    checkpoint = open_checkpoint(seen.body, verifier, origin="frostgate.local/decisions/acme")
    assert checkpoint.size == 9
    # The failing witnesses were tried, anchoring went on, and each failure is audited.
    wait_for(lambda: any(b"/decisions/acme\n9\n" in s.body for s in bad.seen))
    wait_for(lambda: len({f["witness"] for f in witness_failures(served.db)}) == 2)
    failures = witness_failures(served.db)
    assert {f["tenant_id"] for f in failures} == {"_platform"}
    by_witness = {f["witness"]: f for f in failures}
    assert by_witness[1]["reason"] == "answered 500"
    assert str(by_witness[2]["reason"]).startswith("refused by the egress policy")
    assert all("s3cret" not in str(f) for f in failures)
    served.ingest(3, "more")
    wait_for(lambda: any(b"/decisions/acme\n12\n" in s.body for s in good.seen))


def _outcome(stream: str, size: int) -> AnchorOutcome:
    return AnchorOutcome(stream, size, "anchored", note=f"{stream}\n{size}\nsigned\n")


def test_only_the_newest_unposted_checkpoint_of_a_stream_is_posted(
    settings: Settings, witnesses: tuple[Receiver, Receiver]
) -> None:
    good, _ = witnesses
    allow = settings.model_copy(update={"egress_allow_hosts": f"127.0.0.1:{good.port}"})
    failures: list[tuple[WitnessResult, int]] = []
    publisher = WitnessPublisher(
        client_from_settings(allow),
        [f"http://127.0.0.1:{good.port}/"],
        on_failure=lambda first, count: failures.append((first, count)),
    )

    async def run() -> list[WitnessResult]:
        publisher.submit([_outcome("decisions/a", 5), AnchorOutcome("audit/a", 3, "unchanged")])
        publisher.submit([_outcome("decisions/a", 8), _outcome("audit/a", 4)])
        return await publisher.publish_pending()

    results = asyncio.run(run())
    assert sorted((r.stream, r.size, r.ok) for r in results) == [
        ("audit/a", 4, True),
        ("decisions/a", 8, True),
    ]
    assert sorted(s.body for s in good.seen) == [
        b"audit/a\n4\nsigned\n",
        b"decisions/a\n8\nsigned\n",
    ]
    assert failures == []


def test_witness_url_list() -> None:
    assert parse_witness_urls("") == []
    assert parse_witness_urls(" https://a.example/x , ,https://b.example ") == [
        "https://a.example/x",
        "https://b.example",
    ]


def test_frostgate_anchor_exports_too(
    env: Env, witnesses: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    good, bad = witnesses
    env.client.post(
        "/v1/ingest",
        json={"events": [dict(EVENT, event_id=f"c{i}") for i in range(4)]},
        headers=env.headers(),
    )
    child = {k: v for k, v in os.environ.items() if not k.startswith("FG_")}
    child.update(
        FG_PROFILE="test",
        FG_DATA_DIR=str(env.settings.data_dir),
        FG_DB_URL=env.settings.database_url,
        FG_KEY_PEPPERS=env.settings.key_peppers,
        FG_ANCHOR_WITNESS_URLS=f"http://127.0.0.1:{good.port}/,http://127.0.0.1:{bad.port}/",
        FG_EGRESS_ALLOW_HOSTS=f"127.0.0.1:{good.port},127.0.0.1:{bad.port}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "frostgate.cli", "anchor"],
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any(b"/decisions/acme\n4\n" in s.body for s in good.seen)
    assert "witness 1 (127.0.0.1) did not take decisions/acme@4: answered 500" in " ".join(
        done.stderr.split()
    )
    # One audit event for the failing witness, counting every checkpoint it missed.
    anchored = len(good.seen)
    assert [(f["witness"], f["failed_posts"]) for f in witness_failures(env.db)] == [(1, anchored)]


def test_a_dead_witness_costs_one_failure_per_pass_not_one_per_stream(
    settings: Settings, witnesses: tuple[Receiver, Receiver]
) -> None:
    good, bad = witnesses
    allow = settings.model_copy(
        update={"egress_allow_hosts": f"127.0.0.1:{good.port},127.0.0.1:{bad.port}"}
    )
    failures: list[tuple[WitnessResult, int]] = []
    publisher = WitnessPublisher(
        client_from_settings(allow),
        [f"http://127.0.0.1:{good.port}/", f"http://127.0.0.1:{bad.port}/"],
        on_failure=lambda first, count: failures.append((first, count)),
    )
    streams = [_outcome(f"decisions/t{i}", 10 + i) for i in range(5)]
    results = asyncio.run(publisher.publish(streams))
    assert sum(r.ok for r in results) == 5  # the good witness took all five
    assert [(first.witness, first.reason, count) for first, count in failures] == [
        (1, "answered 500", 5)
    ]
