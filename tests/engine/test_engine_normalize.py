"""normalize(): every alias, every canonical form, every refusal with its error code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from frostgate.engine import Event, normalize
from frostgate.errors import ErrorCode, FrostGateError

INVALID = ErrorCode.EVENT_INVALID
ID_INVALID = ErrorCode.EVENT_ID_INVALID
TS_INVALID = ErrorCode.TIMESTAMP_INVALID


def refused(raw: Any) -> ErrorCode:
    with pytest.raises(FrostGateError) as info:
        normalize(raw)
    return info.value.code


# --------------------------------------------------------------------------- shape


def test_minimal_event_gets_explicit_defaults() -> None:
    ev = normalize({})
    assert ev == Event(
        event_id=None,
        claimed_tenant=None,
        source="unspecified",
        event_type="unspecified",
        src_ip=None,
        src_net=None,
        user=None,
        failures=None,
        timestamp=None,
        persona=None,
        classification=None,
        ecs_category=(),
        ecs_outcome=None,
        payload={},
    )


@pytest.mark.parametrize("raw", [None, [], "event", 7, 1.5, True, [{"event_type": "x"}]])
def test_non_object_body_is_invalid(raw: Any) -> None:
    assert refused(raw) is INVALID


@pytest.mark.parametrize("payload", [[], "x", 3, True, [1, 2]])
def test_payload_must_be_an_object(payload: Any) -> None:
    assert refused({"payload": payload}) is INVALID


def test_payload_null_means_absent() -> None:
    assert normalize({"payload": None}).payload == {}


def test_payload_is_kept_read_only() -> None:
    ev = normalize({"payload": {"k": [1, 2], "n": 3}})
    assert ev.payload == {"k": [1, 2], "n": 3}
    assert isinstance(ev.payload, MappingProxyType)
    with pytest.raises(TypeError):
        ev.payload["n"] = 4  # type: ignore[index]


def test_event_is_frozen_and_hashable() -> None:
    ev = normalize({"event_type": "auth", "payload": {"a": 1}})
    with pytest.raises(AttributeError):
        ev.source = "x"  # type: ignore[misc]
    assert hash(ev) == hash(normalize({"event_type": "auth", "payload": {"a": 1}}))


def test_accepts_any_mapping() -> None:
    ev = normalize(MappingProxyType({"src_ip": "192.0.2.1", "payload": MappingProxyType({})}))
    assert ev.src_ip == "192.0.2.1"


# --------------------------------------------------------------------------- source IP


@pytest.mark.parametrize("key", ["src_ip", "source_ip", "ip", "client_ip", "remote_ip"])
def test_every_ip_alias_top_level(key: str) -> None:
    assert normalize({key: "203.0.113.9"}).src_ip == "203.0.113.9"


@pytest.mark.parametrize("key", ["src_ip", "source_ip", "ip", "client_ip", "remote_ip"])
def test_every_ip_alias_in_payload(key: str) -> None:
    assert normalize({"payload": {key: "203.0.113.9"}}).src_ip == "203.0.113.9"


def test_ip_aliases_that_agree_give_the_address() -> None:
    raw = {
        "remote_ip": "192.0.2.5",
        "client_ip": "::ffff:192.0.2.5",
        "payload": {"ip": "192.0.2.5"},
    }
    assert normalize(raw).src_ip == "192.0.2.5"


@pytest.mark.parametrize(
    ("raw", "used", "note"),
    [
        (
            {"remote_ip": "192.0.2.5", "client_ip": "192.0.2.4"},
            "192.0.2.4",
            "source address: remote_ip gives 192.0.2.5, client_ip (192.0.2.4) used",
        ),
        (
            {"src_ip": "127.0.0.1", "client_ip": "203.0.113.9"},
            "127.0.0.1",
            "source address: client_ip gives 203.0.113.9, src_ip (127.0.0.1) used",
        ),
        (
            {"remote_ip": "192.0.2.1", "payload": {"src_ip": "192.0.2.2"}},
            "192.0.2.1",
            "source address: payload.src_ip gives 192.0.2.2, remote_ip (192.0.2.1) used",
        ),
        (
            {"source": {"ip": "203.0.113.224"}, "payload": {"src_ip": "192.0.2.1"}},
            "192.0.2.1",
            "source address: source.ip gives 203.0.113.224, payload.src_ip (192.0.2.1) used",
        ),
        (
            {"src_ip": "198.51.100.66", "payload": {"client_ip": "1.2.3.4, 5.6.7.8"}},
            "198.51.100.66",
            "payload.client_ip does not parse: ignored",
        ),
    ],
)
def test_ip_spellings_that_disagree_are_chosen_in_alias_order_and_noted(
    raw: dict[str, Any], used: str, note: str
) -> None:
    # Refusing them let one value copied from a client header (client_ip) refuse a
    # whole batch; dropping them in silence hid what the sensor said. Neither now.
    event = normalize(raw)
    assert event.src_ip == used
    assert event.notes == (note,)


def test_ip_null_is_absent_and_next_alias_is_used() -> None:
    assert normalize({"src_ip": None, "ip": "192.0.2.3"}).src_ip == "192.0.2.3"


def test_dotted_ecs_source_ip_is_read() -> None:
    assert normalize({"source.ip": "203.0.113.240"}).src_ip == "203.0.113.240"
    assert normalize({"payload": {"source.ip": "203.0.113.241"}}).src_ip == "203.0.113.241"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (" 203.0.113.9 ", "203.0.113.9"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::0001", "2001:db8::1"),
        ("::FFFF:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_ip_is_canonicalized(given: str, canonical: str) -> None:
    assert normalize({"src_ip": given}).src_ip == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "not-an-ip",
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4/24",
        3232235777,
        1.5,
        True,
        ["1.2.3.4"],
        {"ip": "1.2.3.4"},
        "1" * 200,
    ],
)
def test_bad_ip_is_refused_not_dropped(bad: Any) -> None:
    assert refused({"src_ip": bad}) is INVALID
    assert refused({"payload": {"client_ip": bad}}) is INVALID


def test_ecs_source_ip_with_observer_name() -> None:
    ev = normalize({"source": {"ip": "198.51.100.7", "port": 51234}, "observer": {"name": "fw-1"}})
    assert ev.src_ip == "198.51.100.7"
    assert ev.source == "fw-1"


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"agent": {"name": "filebeat-7"}}, "filebeat-7"),
        ({"host": {"name": "web01"}}, "web01"),
        ({"observer": {"name": "fw"}, "agent": {"name": "fb"}, "host": {"name": "h"}}, "fw"),
        ({"agent": {"name": "fb"}, "host": {"name": "h"}}, "fb"),
        ({}, "unspecified"),
    ],
)
def test_ecs_sensor_name_fallbacks(extra: dict[str, Any], name: str) -> None:
    assert normalize({"source": {"ip": "192.0.2.1"}, **extra}).source == name


def test_ecs_names_do_not_override_a_string_source() -> None:
    assert normalize({"source": "sshd", "observer": {"name": "fw"}}).source == "sshd"


def test_non_object_host_and_agent_are_not_ecs() -> None:
    # Log shippers put plain strings under these names; they are not sensor names.
    ev = normalize({"payload": {"host": "web01", "agent": "Mozilla/5.0"}})
    assert ev.source == "unspecified"


def test_ecs_source_ip_in_payload_with_string_source() -> None:
    ev = normalize({"source": "gateway", "payload": {"source": {"ip": "192.0.2.8"}}})
    assert (ev.source, ev.src_ip) == ("gateway", "192.0.2.8")


def test_plain_ip_alias_beats_ecs_source_ip_and_the_other_is_noted() -> None:
    ev = normalize({"source": {"ip": "192.0.2.2"}, "payload": {"ip": "192.0.2.2"}})
    assert (ev.src_ip, ev.notes) == ("192.0.2.2", ())
    other = normalize({"source": {"ip": "192.0.2.1"}, "payload": {"ip": "192.0.2.2"}})
    assert other.src_ip == "192.0.2.2"
    assert other.notes == (
        "source address: source.ip gives 192.0.2.1, payload.ip (192.0.2.2) used",
    )


@pytest.mark.parametrize("bad", ["nope", 7, ["192.0.2.1"]])
def test_bad_ecs_source_ip_is_refused(bad: Any) -> None:
    assert refused({"source": {"ip": bad}}) is INVALID


def test_ecs_observer_name_must_be_text() -> None:
    assert refused({"observer": {"name": 5}}) is INVALID


# --------------------------------------------------------------------------- source


def test_source_is_stripped() -> None:
    assert normalize({"source": "  sshd  "}).source == "sshd"


def test_blank_source_means_unspecified() -> None:
    assert normalize({"source": "  "}).source == "unspecified"


@pytest.mark.parametrize("bad", [5, True, ["sshd"], 1.0])
def test_source_of_wrong_type_is_invalid(bad: Any) -> None:
    assert refused({"source": bad}) is INVALID


def test_source_in_payload_is_not_the_sensor_name() -> None:
    # Filebeat puts the log path under `source`; only the top level names the sensor.
    assert normalize({"payload": {"source": "/var/log/auth.log"}}).source == "unspecified"


@pytest.mark.parametrize("field", ["source", "event_type", "user"])
def test_text_limit_is_256(field: str) -> None:
    assert getattr(normalize({field: "a" * 256}), field) == "a" * 256
    assert refused({field: "a" * 257}) is INVALID


@pytest.mark.parametrize(
    "raw",
    [
        {"event_type": "a\x00b"},
        {"source": "sensor\x00"},
        {"payload": {"user": "\x00root"}},
        {"persona": "guardian\x00"},
        {"event": {"action": "x\x00"}},
        {"event": {"category": ["ok", "\x00"]}},
        {"agent": {"name": "a\x00"}},
    ],
)
def test_nul_in_free_text_is_refused(raw: dict[str, Any]) -> None:
    # Stored columns (source, event_type) cannot hold NUL on PostgreSQL; every text field
    # refuses it alike so SQLite and PostgreSQL answer the same 422.
    assert refused(raw) is INVALID


def test_other_control_characters_in_text_pass_through() -> None:
    assert normalize({"event_type": "a\tb\nc"}).event_type == "a\tb\nc"


# --------------------------------------------------------------------------- failures

COUNT_KEYS = [
    "failed_auths",
    "failed_attempts",
    "attempts",
    "fail_count",
    "failures",
    "num_failures",
    "failed_logins",
]


@pytest.mark.parametrize("key", COUNT_KEYS)
def test_every_failure_count_alias(key: str) -> None:
    assert normalize({key: 7}).failures == 7
    assert normalize({"payload": {key: "7"}}).failures == 7


def test_failure_count_spellings_that_agree_give_the_count() -> None:
    assert (
        normalize({"failures": 7, "attempts": "7", "payload": {"failed_auths": 7.0}}).failures == 7
    )


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        ({"attempts": 1, "failures": 50}, 50),
        ({"failed_auths": 0, "failures": 50}, 50),
        ({"failed_logins": 1, "attempts": 2, "failed_attempts": 3}, 3),
        ({"failures": 0, "payload": {"failures": 50}}, 50),
        ({"failed_auths": 3, "payload": {"attempts": "n/a"}}, 3),
    ],
)
def test_the_highest_failure_count_given_is_used_and_the_rest_noted(
    raw: dict[str, Any], count: int
) -> None:
    # The first spelling used to win: attempts 1 beside failures 50 decided "allow".
    event = normalize(raw)
    assert event.failures == count
    assert event.notes
    assert all("failure count" in n or "does not parse" in n for n in event.notes)


def test_count_is_not_an_alias() -> None:
    # The audited system read a generic "count" as failures; that is not a failure count.
    assert normalize({"count": 50}).failures is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0, 0),
        (7, 7),
        (7.0, 7),
        ("7", 7),
        (" 12 ", 12),
        ("007", 7),
        (10**9, 10**9),
        ("0", 0),
        (-0.0, 0),
    ],
)
def test_failure_count_forms(given: Any, expected: int) -> None:
    assert normalize({"failed_auths": given}).failures == expected


@pytest.mark.parametrize(
    "bad",
    [
        True,
        False,
        -1,
        "-1",
        7.5,
        "7.5",
        "7.0",
        "seven",
        "",
        " ",
        "+7",
        "1_000",
        "1e3",
        "\u0667",  # Arabic-Indic digit seven: isdigit() but not a decimal count
        "\u00b2",  # superscript two
        10**9 + 1,
        str(10**9 + 1),
        "9" * 5000,
        float("nan"),
        float("inf"),
        1e300,
        [7],
        {"n": 7},
    ],
)
def test_bad_failure_count_is_refused_never_zero(bad: Any) -> None:
    assert refused({"failed_auths": bad}) is INVALID
    assert refused({"payload": {"attempts": bad}}) is INVALID


# --------------------------------------------------------------------------- event type


def test_event_type_is_lowered_and_stripped() -> None:
    assert normalize({"event_type": "  Auth.FAILED "}).event_type == "auth.failed"


@pytest.mark.parametrize(
    "given", ["\uff21\uff35\uff34\uff28", "auth\u200b", "\u200bauth", "au\u2060th", "\ufeffAuth"]
)
def test_event_type_is_compared_in_nfkc_without_invisible_characters(given: str) -> None:
    assert normalize({"event_type": given}).event_type == "auth"


def test_dotted_ecs_event_fields_are_read() -> None:
    ev = normalize(
        {"event.category": "authentication", "event.outcome": "failure", "source.ip": "192.0.2.9"}
    )
    assert (ev.event_type, ev.ecs_category, ev.ecs_outcome) == (
        "authentication",
        ("authentication",),
        "failure",
    )
    assert normalize({"event.action": "Logon-Failed"}).event_type == "logon-failed"


def test_event_type_from_payload() -> None:
    assert normalize({"payload": {"event_type": "login"}}).event_type == "login"


def test_event_type_top_level_wins() -> None:
    assert normalize({"event_type": "a", "payload": {"event_type": "b"}}).event_type == "a"


def test_event_type_from_ecs_action() -> None:
    raw = {"event": {"action": "Logon-Failed", "category": ["authentication"]}}
    assert normalize(raw).event_type == "logon-failed"


def test_event_type_from_first_ecs_category() -> None:
    raw = {"event": {"category": ["Authentication", "session"]}}
    ev = normalize(raw)
    assert ev.event_type == "authentication"
    assert ev.ecs_category == ("authentication", "session")


def test_ecs_category_as_a_string() -> None:
    ev = normalize({"event": {"category": "network"}})
    assert (ev.event_type, ev.ecs_category) == ("network", ("network",))


def test_explicit_event_type_beats_ecs_but_ecs_fields_are_kept() -> None:
    raw = {
        "event_type": "ssh",
        "event": {"action": "x", "category": ["authentication"], "outcome": "Failure"},
    }
    ev = normalize(raw)
    assert ev.event_type == "ssh"
    assert ev.ecs_category == ("authentication",)
    assert ev.ecs_outcome == "failure"


@pytest.mark.parametrize("outcome", ["success", "failure", "unknown", "SUCCESS"])
def test_ecs_outcome_values(outcome: str) -> None:
    assert normalize({"event": {"outcome": outcome}}).ecs_outcome == outcome.lower()


def test_ecs_event_in_payload() -> None:
    ev = normalize({"payload": {"event": {"action": "login", "outcome": "failure"}}})
    assert (ev.event_type, ev.ecs_outcome) == ("login", "failure")


def test_missing_event_type_is_unspecified() -> None:
    assert normalize({"event_type": " "}).event_type == "unspecified"
    assert normalize({"event": {}}).event_type == "unspecified"


def test_non_object_event_is_not_ecs() -> None:
    assert normalize({"payload": {"event": "login"}}).event_type == "unspecified"


@pytest.mark.parametrize(
    "raw",
    [
        {"event_type": 5},
        {"event_type": ["auth"]},
        {"payload": {"event_type": True}},
        {"event": {"action": 5}},
        {"event": {"category": 5}},
        {"event": {"category": [5]}},
        {"event": {"category": ["ok", ""]}},
        {"event": {"category": {"a": 1}}},
        {"event": {"category": ["x"] * 33}},
        {"event": {"outcome": 1}},
        {"event": {"outcome": "maybe"}},
    ],
)
def test_wrong_event_type_shapes_are_invalid(raw: dict[str, Any]) -> None:
    assert refused(raw) is INVALID


# --------------------------------------------------------------------------- user


@pytest.mark.parametrize("key", ["user", "username", "user_name"])
def test_user_aliases(key: str) -> None:
    assert normalize({key: " alice "}).user == "alice"
    assert normalize({"payload": {key: "alice"}}).user == "alice"


def test_ecs_user_name() -> None:
    assert normalize({"user": {"name": "bob", "id": "1001"}}).user == "bob"


def test_plain_user_alias_beats_ecs_user() -> None:
    assert normalize({"user": {"name": "bob"}, "username": "alice"}).user == "alice"


@pytest.mark.parametrize("raw", [{"user": 5}, {"username": ["a"]}, {"user": {"name": 5}}])
def test_bad_user_is_invalid(raw: dict[str, Any]) -> None:
    assert refused(raw) is INVALID


# --------------------------------------------------------------------------- timestamp

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2025-01-01T00:00:00Z", T0),
        ("2025-01-01T00:00:00+00:00", T0),
        ("2025-01-01T01:00:00+01:00", T0),
        ("2025-01-01T00:00:00", T0),
        ("2025-01-01 00:00:00.250Z", T0 + timedelta(milliseconds=250)),
        ("  2025-01-01T00:00:00Z ", T0),
        (1735689600, T0),
        (1735689600.5, T0 + timedelta(milliseconds=500)),
        (1735689600000, T0),
        (1735689600250, T0 + timedelta(milliseconds=250)),
        (10**11, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=10**11)),
        (10**11 + 1, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=10**11 + 1)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(given: Any, expected: datetime) -> None:
    ts = normalize({"timestamp": given}).timestamp
    assert ts == expected
    assert ts is not None
    assert ts.utcoffset() == timedelta(0)


def test_timestamp_is_utc_whatever_the_offset() -> None:
    ts = normalize({"timestamp": "2025-01-01T05:30:00+05:30"}).timestamp
    assert ts is not None
    assert ts.tzinfo is UTC
    assert ts == T0


def test_timestamp_sources_in_order() -> None:
    assert normalize({"@timestamp": "2025-01-01T00:00:00Z"}).timestamp == T0
    assert normalize({"payload": {"timestamp": 1735689600}}).timestamp == T0
    both = {"timestamp": 1735689600, "@timestamp": "2030-01-01T00:00:00Z"}
    assert normalize(both).timestamp == T0
    top = {"@timestamp": 1735689600, "payload": {"timestamp": 0}}
    assert normalize(top).timestamp == T0


def test_absent_timestamp_is_none() -> None:
    assert normalize({"timestamp": None}).timestamp is None


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "",
        "2025-13-01T00:00:00Z",
        "2025-01-01T25:00:00Z",
        "1735689600",
        "2025-01-01T00:00:00." + "0" * 60 + "Z",
        "x" * 1000,
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        True,
        float("nan"),
        float("inf"),
        -float("inf"),
        10**20,
        -(10**12) * 10**6,
        1e300,
        [1735689600],
        {"s": 1},
    ],
)
def test_bad_timestamp_is_timestamp_invalid(bad: Any) -> None:
    assert refused({"timestamp": bad}) is TS_INVALID


def test_naive_timestamp_is_utc() -> None:
    ts = normalize({"timestamp": "2025-01-01T00:00:00"}).timestamp
    assert ts is not None
    assert ts.tzinfo is UTC


def test_non_utc_fixed_offset_becomes_utc() -> None:
    tz = timezone(timedelta(hours=-3))
    given = datetime(2024, 12, 31, 21, tzinfo=tz).isoformat()
    assert normalize({"timestamp": given}).timestamp == T0


# --------------------------------------------------------------------------- event_id


@pytest.mark.parametrize("good", ["a", "evt-1", "A1._:-x", "0" * 128, "ulid:01HZX.1"])
def test_good_event_ids(good: str) -> None:
    assert normalize({"event_id": good}).event_id == good


@pytest.mark.parametrize(
    "bad",
    ["", "-leading", ".x", "has space", "a/b", "a" * 129, "é", "a\n", 5, True, ["a"], {"a": 1}],
)
def test_bad_event_ids(bad: Any) -> None:
    assert refused({"event_id": bad}) is ID_INVALID


def test_event_id_is_read_at_the_top_level_only() -> None:
    # A payload's own numeric id (e.g. Windows EventID 4625) is not our event_id.
    assert normalize({"payload": {"event_id": 4625}}).event_id is None


# --------------------------------------------------------------------------- tenant, persona


def test_claimed_tenant_is_kept_verbatim_for_the_mismatch_check() -> None:
    assert normalize({"tenant_id": "acme"}).claimed_tenant == "acme"
    assert normalize({"tenant_id": ""}).claimed_tenant == ""
    assert normalize({}).claimed_tenant is None
    assert normalize({"payload": {"tenant_id": "other"}}).claimed_tenant is None


@pytest.mark.parametrize("bad", [5, ["acme"], {"id": "a"}, "t" * 257])
def test_bad_tenant_claim_is_invalid(bad: Any) -> None:
    assert refused({"tenant_id": bad}) is INVALID


def test_persona_lowered_classification_uppered() -> None:
    ev = normalize({"persona": " Guardian ", "payload": {"classification": "secret"}})
    assert (ev.persona, ev.classification) == ("guardian", "SECRET")


def test_persona_and_classification_are_compared_in_nfkc() -> None:
    ev = normalize(
        {
            "persona": "\uff47\uff55\uff41\uff52\uff44\uff49\uff41\uff4e",
            "classification": "SE\u200bCRET",
        }
    )
    assert (ev.persona, ev.classification) == ("guardian", "SECRET")


def test_blank_persona_is_absent() -> None:
    assert normalize({"persona": "", "classification": "  "}).persona is None


@pytest.mark.parametrize("raw", [{"persona": 1}, {"classification": ["SECRET"]}])
def test_bad_persona_or_classification(raw: dict[str, Any]) -> None:
    assert refused(raw) is INVALID


def test_error_is_a_frostgate_error_with_log_text_only() -> None:
    with pytest.raises(FrostGateError) as info:
        normalize({"failed_auths": "seven"})
    assert info.value.code is INVALID
    assert "failed_auths" in str(info.value)
