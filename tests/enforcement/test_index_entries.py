"""The index's entries: what a rule's mitigations share is kept once, and what is
served is rebuilt exactly from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from frostgate.enforcement import index
from frostgate.enforcement.index import Entry
from frostgate.store import mitigations as repo
from frostgate.store.entries import epoch_micros

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def page_row(value: str, reason: str, seq: int = 1) -> tuple[object, ...]:
    """One row as ``changed_page`` returns it (the order of ``PAGE_COLUMNS``)."""
    values = {
        "mitigation_id": repo.new_mitigation_id(),
        "seq": seq,
        "action": "block_ip",
        "scope": "ip",
        "value": value,
        "reason": reason,
        "origin": "decision",
        "status": "active",
        "created_at": NOW,
        "activated_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
    }
    assert [c.name for c in repo.PAGE_COLUMNS] == list(values)
    return tuple(values.values())


def test_entries_of_one_rule_share_their_kind_and_serve_their_own_reason() -> None:
    one = Entry.from_page(page_row("203.0.113.1", "10 failed logins from 203.0.113.1"))
    two = Entry.from_page(page_row("203.0.113.2", "10 failed logins from 203.0.113.2", 2))
    manual = Entry.from_page(page_row("203.0.113.3", "seen in the honeypot", 3))
    assert one.kind is two.kind
    assert manual.kind is not one.kind
    assert (one.reason, two.reason) == (
        "10 failed logins from 203.0.113.1",
        "10 failed logins from 203.0.113.2",
    )
    assert manual.reason == "seen in the honeypot"
    decision = two.crowdsec(epoch_micros(NOW))
    assert decision["scenario"] == "frostgate/block_ip: 10 failed logins from 203.0.113.2"
    assert (decision["type"], decision["scope"], decision["duration"]) == ("ban", "Ip", "1h0m0s")
    assert manual.crowdsec(0)["scenario"] == "frostgate/block_ip: seen in the honeypot"


def test_the_shared_kinds_stay_bounded_whatever_reasons_are_typed() -> None:
    """Analysts type free reasons: each is a kind of its own, and the table that shares
    kinds must not grow with them. Entries made before it is reset keep theirs."""
    first = Entry.from_page(page_row("203.0.113.9", "typed reason 0"))
    for n in range(1, index._MAX_KINDS + 10):
        Entry.from_page(page_row("203.0.113.9", f"typed reason {n}", n))
    assert len(index._KINDS) <= index._MAX_KINDS
    assert first.reason == "typed reason 0"
    again = Entry.from_page(page_row("203.0.113.9", "10 failed logins from 203.0.113.9"))
    assert Entry.from_page(page_row("203.0.113.8", "10 failed logins from 203.0.113.8")).kind is (
        again.kind
    )
