"""The index's entries: what a rule's mitigations share is kept once, and what is
served is rebuilt exactly from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from frostgate.enforcement import index
from frostgate.enforcement.index import CrowdSecForm, Entry, crowdsec_parts, native_parts
from frostgate.store import mitigations as repo
from frostgate.store.entries import epoch_micros, format_timestamp

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def page_row(
    value: str, reason: str, seq: int = 1, expires_at: datetime | None = NOW + timedelta(hours=1)
) -> tuple[object, ...]:
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
        "expires_at": expires_at,
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
    decision = CrowdSecForm(epoch_micros(NOW)).decision(two)
    assert decision.scenario == "frostgate/block_ip: 10 failed logins from 203.0.113.2"
    assert (decision.type, decision.scope, decision.duration) == ("ban", "Ip", "1h0m0s")
    assert CrowdSecForm(0).decision(manual).scenario == "frostgate/block_ip: seen in the honeypot"


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


def expected_decision(entry: Entry, expires_at: datetime | None, left: str) -> dict[str, object]:
    """The LAPI decision object an entry must be served as, built from its record."""
    return {
        "id": int(entry.mitigation_id[-15:], 16),
        "uuid": entry.mitigation_id,
        "origin": "frostgate",
        "type": "ban",
        "scope": "Ip",
        "value": entry.value,
        "scenario": f"frostgate/block_ip: from {entry.value}",
        "simulated": False,
        "until": None if expires_at is None else format_timestamp(expires_at),
        "duration": left,
    }


def test_a_pull_shares_texts_between_entries_but_serves_each_its_own() -> None:
    """A pull makes the text of each expiry second and each time left once; entries in
    the same second with other fractions, other seconds, and entries that never expire
    are still each served exactly their own."""
    expiries: list[datetime | None] = [
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=1, microseconds=500_000),  # same second, other fraction
        NOW + timedelta(hours=2, minutes=3, seconds=4),
        NOW + timedelta(hours=1),  # the first's time left again
        None,
    ]
    entries = [
        Entry.from_page(page_row(f"198.51.100.{n}", f"from 198.51.100.{n}", n, expires))
        for n, expires in enumerate(expiries)
    ]
    now_us = epoch_micros(NOW)
    served = orjson.loads(b"".join(crowdsec_parts(entries, now_us)))
    lefts = ["1h0m0s", "1h0m0s", "2h3m4s", "1h0m0s", "0h0m0s"]
    assert served == [
        expected_decision(e, expires, left)
        for e, expires, left in zip(entries, expiries, lefts, strict=True)
    ]
    ended = orjson.loads(b"".join(crowdsec_parts(entries, now_us, deleted=True)))
    assert [d["duration"] for d in ended] == ["0h0m0s"] * len(entries)
    assert [d["until"] for d in ended] == [d["until"] for d in served]


def test_a_pull_of_no_entries_is_null_as_lapi_answers() -> None:
    assert b"".join(crowdsec_parts([], epoch_micros(NOW))) == b"null"


def test_a_pull_spanning_chunks_is_one_json_array_in_order() -> None:
    entries = [
        Entry.from_page(page_row(f"10.0.{n >> 8}.{n & 255}", "x", n))
        for n in range(index.CHUNK * 2 + 3)
    ]
    served = orjson.loads(b"".join(crowdsec_parts(entries, epoch_micros(NOW))))
    assert [d["value"] for d in served] == [e.value for e in entries]


def test_the_native_form_of_a_pull_is_each_entrys_record() -> None:
    """The FrostGate form shares instant texts within a pull, and still serves each
    entry its own creation and expiry, exactly as the record's form does."""
    expiries: list[datetime | None] = [
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=1, microseconds=1),
        None,
    ]
    rows = [
        page_row(f"192.0.2.{n}", f"from 192.0.2.{n}", n, expires)
        for n, expires in enumerate(expiries)
    ]
    entries = [Entry.from_page(row) for row in rows]
    served = orjson.loads(b"".join(native_parts(entries)))
    assert served == [
        {
            "mitigation_id": e.mitigation_id,
            "action": "block_ip",
            "scope": "ip",
            "value": e.value,
            "reason": f"from {e.value}",
            "origin": "decision",
            "status": "active",
            "created_at": format_timestamp(NOW),
            "expires_at": None if expires is None else format_timestamp(expires),
            "seq": e.seq,
        }
        for e, expires in zip(entries, expiries, strict=True)
    ]
    assert [orjson.loads(e.native) for e in entries] == served
