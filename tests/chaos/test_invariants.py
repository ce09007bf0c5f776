"""The chaos invariant checker must say "broken" when storage is broken.

Decisions are stored through the real service (the app, its writer, SQLite or the test
PostgreSQL); the broken states are real rows or real absences, never mocked answers.
"""

from __future__ import annotations

import sqlalchemy as sa

from frostgate.jobs.chaos import check_ledger, check_stored
from frostgate.jobs.chaos.invariants import refused_only_during
from frostgate.jobs.chaos.load import Outcome, chaos_event
from tests.conftest import Env

ENDPOINT = "wh_none"  # no endpoint: the benign events below alert nobody


def _store(env: Env, count: int) -> list[Outcome]:
    outcomes = []
    for n in range(count):
        event = chaos_event(f"inv-{n}", 2 * n + 1)  # odd numbers: benign logins, no alert
        answer = env.client.post("/v1/defend", json=event, headers=env.headers())
        assert answer.status_code == 200, answer.text
        outcomes.append(Outcome(event["event_id"], answer.status_code, None))
    return outcomes


def test_the_checker_holds_on_whole_storage(env: Env) -> None:
    outcomes = _store(env, 3)
    sent = {o.event_id for o in outcomes}
    found = check_stored(env.db, "acme", outcomes, sent, endpoint_id=ENDPOINT)
    assert [(i.name, i.held) for i in found] == [
        ("acknowledged events stored exactly once", True),
        ("no event half-stored", True),
    ]
    assert check_ledger(env.settings).held


def test_an_acknowledged_event_that_is_not_stored_breaks_the_invariant(env: Env) -> None:
    outcomes = _store(env, 2)
    ghost = Outcome("inv-ghost", 200, None)  # a 2xx the database never saw
    sent = {o.event_id for o in outcomes} | {ghost.event_id}
    once, whole = check_stored(env.db, "acme", [*outcomes, ghost], sent, endpoint_id=ENDPOINT)
    assert not once.held
    assert "missing: inv-ghost" in once.detail
    assert whole.held


def test_a_stored_event_nobody_sent_breaks_the_invariant(env: Env) -> None:
    outcomes = _store(env, 2)
    sent = {outcomes[0].event_id}
    _once, whole = check_stored(env.db, "acme", outcomes[:1], sent, endpoint_id=ENDPOINT)
    assert not whole.held
    assert "stored but never sent: inv-1" in whole.detail


def test_an_alert_level_decision_without_its_outbox_row_breaks_the_invariant(env: Env) -> None:
    created = env.client.post(
        "/v1/webhooks",
        json={"url": "https://alerts.example.com/hook", "min_threat_level": "high"},
        headers=env.headers(),
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["endpoint_id"]
    event = chaos_event("inv-brute", 0)  # even: a brute-force report, threat level high
    answer = env.client.post("/v1/defend", json=event, headers=env.headers())
    assert answer.json()["threat_level"] in {"high", "critical"}
    outcome = Outcome("inv-brute", 200, None)
    _once, whole = check_stored(env.db, "acme", [outcome], {"inv-brute"}, endpoint_id=endpoint)
    assert whole.held, whole.detail
    with env.db.write.begin() as conn:  # the decision stays, its alert is gone
        conn.execute(sa.text("DELETE FROM delivery_attempts"))
        conn.execute(sa.text("DELETE FROM outbox"))
    _once, whole = check_stored(env.db, "acme", [outcome], {"inv-brute"}, endpoint_id=endpoint)
    assert not whole.held
    assert "1 alert-level decisions but the outbox accounts for 0" in whole.detail


def test_a_rewritten_decision_row_fails_ledger_verification(env: Env) -> None:
    _store(env, 3)
    with env.db.write.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET score = score + 1 WHERE event_id = 'inv-1'"))
    verdict = check_ledger(env.settings)
    assert not verdict.held
    assert "decisions/acme" in verdict.detail


def test_a_refusal_outside_the_fault_breaks_the_invariant() -> None:
    # The fault lasted from t=10 to t=14; grace 1 s.
    during = Outcome("a", 503, "STORAGE_UNAVAILABLE", started=11.0, ended=11.1)
    overlapping = Outcome("b", None, "connection failed", started=9.9, ended=10.2)
    in_grace = Outcome("c", 503, "STORAGE_UNAVAILABLE", started=14.5, ended=14.6)
    fine = Outcome("d", 200, None, started=20.0, ended=20.1)
    held = refused_only_during([during, overlapping, in_grace, fine], 10.0, 14.0, 1.0)
    assert held.held, held.detail
    after = Outcome("e", 503, "RATE_LIMITER_UNAVAILABLE", started=16.0, ended=16.1)
    before = Outcome("f", 503, "STORAGE_UNAVAILABLE", started=2.0, ended=2.1)
    broken = refused_only_during([during, after, before], 10.0, 14.0, 1.0)
    assert not broken.held
    assert broken.detail.startswith("2 refused outside the fault, the first sent -8.0 s")
