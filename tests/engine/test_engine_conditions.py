"""The rule condition language: every op on every kind of field, type strictness, nesting."""

from __future__ import annotations

from typing import Any

import pytest

from frostgate.engine import PolicyError, evaluate, normalize
from tests.engine.engine_policies import NOW, with_rules


def fires(when: dict[str, Any], raw: dict[str, Any]) -> bool:
    policy = with_rules({"id": "t", "points": 50, "when": when})
    return evaluate(normalize(raw), policy, now=NOW).rules_triggered == ("t",)


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


@pytest.mark.parametrize(
    ("when", "raw", "expected"),
    [
        # eq on text, integer, derived boolean
        (leaf("source", "eq", "sshd"), {"source": "sshd"}, True),
        (leaf("source", "eq", "sshd"), {"source": "SSHD"}, False),
        (leaf("failures", "eq", 3), {"failures": "3"}, True),
        (leaf("failures", "eq", 3), {}, False),
        (leaf("auth_like", "eq", False), {"event_type": "http"}, True),
        (leaf("auth_like", "eq", False), {"event_type": "login"}, False),
        (leaf("bruteforce_type", "eq", True), {"event_type": "x_brute_force_y"}, True),
        (leaf("ecs_outcome", "eq", "failure"), {"event": {"outcome": "FAILURE"}}, True),
        (leaf("classification", "eq", "SECRET"), {"classification": "Secret"}, True),
        (leaf("src_ip", "eq", "2001:db8::1"), {"ip": "2001:DB8:0::1"}, True),
        # in
        (leaf("event_type", "in", ["a", "b"]), {"event_type": "B"}, True),
        (leaf("event_type", "in", ["a", "b"]), {"event_type": "c"}, False),
        (leaf("failures", "in", [1, 2]), {"failures": 2}, True),
        (leaf("user", "in", ["root"]), {}, False),
        # contains: substring on text, membership on the ECS category list
        (leaf("event_type", "contains", "fail"), {"event_type": "auth_failed"}, True),
        (leaf("event_type", "contains", "fail"), {"event_type": "auth_ok"}, False),
        (leaf("user", "contains", "adm"), {}, False),
        (
            leaf("ecs_category", "contains", "network"),
            {"event": {"category": ["a", "network"]}},
            True,
        ),
        (leaf("ecs_category", "contains", "net"), {"event": {"category": ["network"]}}, False),
        # gte / lte
        (leaf("failures", "gte", 3), {"failures": 3}, True),
        (leaf("failures", "gte", 3), {"failures": 2}, False),
        (leaf("failures", "lte", 3), {"failures": 3}, True),
        (leaf("failures", "lte", 3), {"failures": 4}, False),
        (leaf("failures", "lte", 3), {}, False),
        (leaf("failures", "gte", 2.5), {"failures": 3}, True),
        # gt / lt: strict
        (leaf("failures", "gt", 3), {"failures": 3}, False),
        (leaf("failures", "gt", 3), {"failures": 4}, True),
        (leaf("failures", "lt", 3), {"failures": 2}, True),
        (leaf("failures", "lt", 3), {}, False),
        # regex (RE2, unanchored search)
        (leaf("user", "regex", "^adm"), {"user": "admin"}, True),
        (leaf("user", "regex", "^adm"), {"user": "sysadm"}, False),
        (leaf("user", "regex", "adm"), {}, False),
        (leaf("ecs_category", "regex", "^net"), {"event": {"category": ["x", "network"]}}, True),
        # cidr
        (leaf("src_ip", "cidr", "192.0.2.0/24"), {"ip": "192.0.2.200"}, True),
        (leaf("src_ip", "cidr", ["10.0.0.0/8", "2001:db8::/32"]), {"ip": "2001:db8::9"}, True),
        (leaf("src_ip", "cidr", "192.0.2.0/24"), {"ip": "198.51.100.1"}, False),
        (leaf("src_ip", "cidr", "192.0.2.0/24"), {}, False),
        # exists
        (leaf("user", "exists"), {"username": "bob"}, True),
        (leaf("user", "exists"), {}, False),
        (leaf("user", "exists", False), {}, True),
        (leaf("ecs_category", "exists"), {}, False),
        (leaf("ecs_category", "exists"), {"event": {"category": "web"}}, True),
        (leaf("ecs_category", "exists", False), {}, True),
    ],
)
def test_ops_on_event_fields(when: dict[str, Any], raw: dict[str, Any], expected: bool) -> None:
    assert fires(when, raw) is expected


@pytest.mark.parametrize(
    ("when", "payload", "expected"),
    [
        (leaf("payload.port", "eq", 22), {"port": 22}, True),
        (leaf("payload.port", "eq", 22), {"port": "22"}, False),
        (leaf("payload.port", "eq", 22), {"port": 22.0}, True),
        (leaf("payload.flag", "eq", True), {"flag": 1}, False),  # 1 is not true
        (leaf("payload.flag", "eq", 1), {"flag": True}, False),  # true is not 1
        (leaf("payload.flag", "eq", True), {"flag": True}, True),
        (leaf("payload.a.b.c", "eq", "x"), {"a": {"b": {"c": "x"}}}, True),
        (leaf("payload.a.b.c", "eq", "x"), {"a": {"b": "c"}}, False),
        (leaf("payload.a.b", "exists"), {"a": {"b": 0}}, True),
        (leaf("payload.a.b", "exists"), {"a": [1]}, False),
        (leaf("payload.a", "exists", False), {"a": None}, True),
        (leaf("payload.n", "gte", 10), {"n": 10}, True),
        (leaf("payload.n", "gte", 10), {"n": "10"}, False),
        (leaf("payload.n", "gte", 1), {"n": True}, False),
        (leaf("payload.n", "lte", 1.5), {"n": 1.5}, True),
        (leaf("payload.n", "lte", 1.5), {"n": {"x": 1}}, False),
        (leaf("payload.path", "contains", "/admin"), {"path": "/x/admin/y"}, True),
        (leaf("payload.tags", "contains", "tor"), {"tags": ["vpn", "tor"]}, True),
        (leaf("payload.tags", "contains", 1), {"tags": [True]}, False),
        (leaf("payload.tags", "contains", "t"), {"tags": {"t": 1}}, False),
        (leaf("payload.path", "contains", 5), {"path": "555"}, False),
        (leaf("payload.method", "in", ["GET", "HEAD"]), {"method": "HEAD"}, True),
        (leaf("payload.method", "in", [1]), {"method": True}, False),
        (leaf("payload.method", "in", ["GET"]), {"method": {"GET": 1}}, False),
        (leaf("payload.method", "in", ["GET"]), {}, False),
        (leaf("payload.n", "gt", 1), {"n": 1.5}, True),
        (leaf("payload.n", "lt", 1), {"n": False}, False),
        (leaf("payload.ua", "regex", "(?i)nmap"), {"ua": "NMAP 7"}, True),
        (leaf("payload.ua", "regex", "1"), {"ua": 1}, False),
        (leaf("payload.ua", "regex", "^b"), {"ua": ["a", "b"]}, True),
        (leaf("payload.peer", "cidr", "10.0.0.0/8"), {"peer": "::ffff:10.1.1.1"}, True),
        (leaf("payload.peer", "cidr", "10.0.0.0/8"), {"peer": "10.1.1.1x"}, False),
        (leaf("payload.peer", "cidr", "10.0.0.0/8"), {"peer": 167772161}, False),
    ],
)
def test_ops_on_payload_paths_are_type_strict(
    when: dict[str, Any], payload: dict[str, Any], expected: bool
) -> None:
    assert fires(when, {"payload": payload}) is expected


def test_all_any_not_nesting() -> None:
    when = {
        "all": [
            leaf("failures", "gte", 1),
            {
                "any": [
                    leaf("user", "eq", "root"),
                    leaf("user", "eq", "admin"),
                    leaf("src_ip", "exists"),
                ]
            },
            {"not": leaf("source", "eq", "trusted")},
            leaf("failures", "lte", 100),
        ]
    }
    assert fires(when, {"failures": 5, "user": "admin", "source": "x"})
    assert fires(when, {"failures": 5, "ip": "192.0.2.1"})
    assert not fires(when, {"failures": 5, "user": "bob"})
    assert not fires(when, {"failures": 5, "user": "root", "source": "trusted"})
    assert not fires(when, {"failures": 500, "user": "root"})
    assert not fires(when, {"user": "root"})


def test_empty_all_always_holds_and_missing_when_too() -> None:
    assert fires({"all": []}, {})
    policy = with_rules({"id": "always", "points": 1})
    assert evaluate(normalize({}), policy, now=NOW).rules_triggered == ("always",)


def test_unless_fired_chains_and_fallback() -> None:
    policy = with_rules(
        {"id": "a", "points": 10, "when": leaf("failures", "gte", 10)},
        {"id": "b", "points": 5, "when": leaf("failures", "gte", 5), "unless_fired": ["a"]},
        {"id": "c", "points": 1, "when": leaf("failures", "gte", 1), "unless_fired": ["a", "b"]},
        {"id": "d", "points": 0, "fallback": True, "when": leaf("user", "exists")},
    )

    def rules(raw: dict[str, Any]) -> tuple[str, ...]:
        return evaluate(normalize(raw), policy, now=NOW).rules_triggered

    assert rules({"failures": 12}) == ("a",)
    assert rules({"failures": 7}) == ("b",)
    assert rules({"failures": 2}) == ("c",)
    assert rules({"failures": 0, "user": "u"}) == ("d",)
    assert rules({"failures": 0}) == ()


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (leaf("payload.", "exists"), "unknown field 'payload.'"),
        (leaf("payload.a..b", "exists"), "unknown field"),
        ({"field": 5, "op": "eq", "value": 1}, "field must be a string"),
        ({"field": "user", "op": "eq", "value": "x", "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        (leaf("user", "exists", "yes"), "exists takes true or false"),
        (leaf("user", "in", "root"), "in takes a non-empty list"),
        (leaf("user", "in", []), "in takes a non-empty list"),
        (leaf("user", "in", ["a", 1]), r"value\[1\]: field 'user' compares with a string"),
        (leaf("failures", "contains", 1), "contains needs a text or list field"),
        (leaf("payload.x", "eq", [1]), "value must be a string, number or boolean"),
        (leaf("payload.x", "contains", {"a": 1}), "value must be a string, number or boolean"),
        (leaf("payload.x", "gte", True), "gte takes a number"),
        (leaf("auth_like", "eq", "yes"), "compares with a boolean"),
        (leaf("ecs_category", "contains", "Network"), "'ecs_category' is lower-cased"),
        (leaf("persona", "eq", "Guardian"), "'persona' is lower-cased"),
        (leaf("classification", "eq", "secret"), "'classification' is upper-cased"),
        (leaf("src_ip", "in", ["nope"]), "'nope' is not an IP address"),
        (leaf("user", "regex", r"(a)\1"), r"regex '\(a\)\\\\1' refused: invalid escape"),
        (leaf("user", "regex", "(?=x)"), "refused: invalid perl operator"),
        (leaf("user", "regex", ""), "regex takes a non-empty pattern string"),
        (leaf("failures", "regex", "1"), "regex needs a text or list field"),
        (leaf("src_ip", "cidr", "10.0.0.1/8"), "has host bits set\\); did you mean '10.0.0.0/8'"),
        (leaf("src_ip", "cidr", []), "cidr takes a network or a list"),
        (leaf("src_ip", "cidr", [8]), "cidr takes networks such as"),
        (leaf("user", "cidr", "10.0.0.0/8"), "cidr needs an address field"),
        (leaf("user", "gt", 1), "gt needs a numeric field"),
        (leaf("failures", "lt", "1"), "lt takes a number"),
        ({"not": [leaf("user", "exists")]}, r"when\.not: a condition must be a mapping"),
        ({"all": leaf("user", "exists")}, r"when\.all: must be a list of conditions"),
        ({"all": [], "extra": 1}, "'all' must be the only key"),
        ({}, "needs exactly one of all, any, not, field"),
    ],
)
def test_bad_conditions_are_refused(when: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        with_rules({"id": "t", "points": 1, "when": when})
