"""Sigma rules through pySigma: the field-matching subset fires through ``evaluate``; every
construct outside it is refused with the file, the line and the construct.

The rules are real Sigma YAML, parsed by the real pySigma and compiled by the real engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frostgate.engine import Policy, RuleFileError, evaluate, load_policy, normalize
from tests.engine.engine_policies import NOW
from tests.rules.rule_files import line_of, write

HEADER = """
title: Test rule
id: 5b0f1f4e-1111-4a2b-9c3d-0123456789ab
status: test
level: high
logsource:
  product: linux
  service: sshd
"""
RULE_ID = "sigma:5b0f1f4e-1111-4a2b-9c3d-0123456789ab"


def sigma(tmp_path: Path, body: str, header: str = HEADER, name: str = "rule.yml") -> Path:
    return write(tmp_path, name, header.lstrip("\n") + body.lstrip("\n"))


def fired(policy: Policy, raw: dict[str, Any]) -> bool:
    return RULE_ID in evaluate(normalize(raw), policy, now=NOW).rules_triggered


def refused(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(RuleFileError) as info:
        load_policy(None, [path])
    assert all(p.file == str(path) for p in info.value.problems)
    return [(p.line, p.message) for p in info.value.problems]


SSH_ROOT = """
detection:
  selection_user:
    User|contains:
      - root
      - 'adm*n'
  selection_ip:
    SourceIp|cidr: 203.0.113.0/24
  filter_internal:
    Port|gte: 1024
  condition: all of selection_* and not filter_internal
frostgate:
  mitigation:
    action: block_ip
    target_field: src_ip
    confidence: 0.8
    reason: "Sigma: {user} from {src_ip}"
    ttl_seconds: 1200
"""


def test_a_sigma_rule_fires_through_evaluate_with_its_mitigation(tmp_path: Path) -> None:
    policy = load_policy(None, [sigma(tmp_path, SSH_ROOT)])
    decision = evaluate(
        normalize({"user": "ROOT", "src_ip": "203.0.113.9", "payload": {"Port": 22}}),
        policy,
        now=NOW,
    )
    assert decision.rules_triggered == (RULE_ID,)
    assert decision.score == 80  # level high -> the policy's 'high' threshold
    assert decision.threat_level == "high"
    (mitigation,) = decision.mitigations
    assert mitigation.as_dict() == {
        "action": "block_ip",
        "target": "203.0.113.9",
        "reason": "Sigma: ROOT from 203.0.113.9",
        "confidence": 0.8,
        "ttl_seconds": 1200,
    }
    assert policy.document["packs"] == [{"name": RULE_ID, "version": "sigma"}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"user": "sysadmin", "src_ip": "203.0.113.1"}, True),  # adm*n wildcard, contains
        ({"user": "bob", "src_ip": "203.0.113.1"}, False),
        ({"user": "root", "src_ip": "198.51.100.1"}, False),  # outside the cidr
        ({"user": "root", "src_ip": "203.0.113.1", "payload": {"Port": 2222}}, False),  # filter
        ({"user": "root", "src_ip": "203.0.113.1", "payload": {"Port": "2222"}}, True),
    ],
)
def test_selections_modifiers_and_not(tmp_path: Path, raw: dict[str, Any], expected: bool) -> None:
    policy = load_policy(None, [sigma(tmp_path, SSH_ROOT)])
    assert fired(policy, raw) is expected


@pytest.mark.parametrize(
    ("detection", "raw", "expected"),
    [
        # strings are case-insensitive and whole-value unless wildcarded
        ("sel: {event_type: LOGIN}", {"event_type": "login"}, True),
        ("sel: {event_type: LOGIN}", {"event_type": "login_failed"}, False),
        ("sel: {User|cased: Root}", {"user": "root"}, False),
        ("sel: {User|cased: Root}", {"user": "Root"}, True),
        ("sel: {User|startswith: adm}", {"user": "ADMIN"}, True),
        ("sel: {User|endswith: min}", {"user": "admin"}, True),
        ("sel: {User|endswith: min}", {"user": "minx"}, False),
        ("sel: {User: 'r?ot'}", {"user": "rxot"}, True),
        ("sel: {User: 'a.b'}", {"user": "axb"}, False),  # '.' is literal, not a regex dot
        # |all: every value; a list otherwise means any
        ("sel: {Cmd|contains|all: [wget, '| sh']}", {"payload": {"Cmd": "wget x | sh"}}, True),
        ("sel: {Cmd|contains|all: [wget, '| sh']}", {"payload": {"Cmd": "wget x"}}, False),
        ("sel: {Cmd|contains: [wget, curl]}", {"payload": {"Cmd": "curl x"}}, True),
        # regex: unanchored, case-sensitive unless |i
        ("sel: {Msg|re: 'fail(ed|ure)'}", {"payload": {"Msg": "auth failure!"}}, True),
        ("sel: {Msg|re: 'fail(ed|ure)'}", {"payload": {"Msg": "FAILED"}}, False),
        ("sel: {Msg|re|i: 'fail(ed|ure)'}", {"payload": {"Msg": "FAILED"}}, True),
        # numbers match the number or its text; comparisons
        ("sel: {EventID: 4625}", {"payload": {"EventID": 4625}}, True),
        ("sel: {EventID: 4625}", {"payload": {"EventID": "4625"}}, True),
        ("sel: {EventID: 4625}", {"payload": {"EventID": 4624}}, False),
        ("sel: {failures|gt: 5}", {"failures": 6}, True),
        ("sel: {failures|lte: 5}", {"failures": 6}, False),
        ("sel: {failures: 3}", {"failures": 3}, True),
        # null is absent; exists
        ("sel: {TargetUserName: null}", {}, True),
        ("sel: {TargetUserName: null}", {"user": "x"}, False),
        ("sel: {Extra|exists: true}", {"payload": {"Extra": 0}}, True),
        ("sel: {Extra|exists: true}", {}, False),
        # field mapping: ECS dotted names and nested payload paths
        ("sel: {source.ip|cidr: '2001:db8::/32'}", {"src_ip": "2001:db8::1"}, True),
        ("sel: {event.outcome: failure}", {"event": {"outcome": "failure"}}, True),
        ("sel: {process.name: sshd}", {"payload": {"process": {"name": "SSHD"}}}, True),
        # a list of maps is OR, a map is AND
        ("sel: [{User: a}, {User: b}]", {"user": "b"}, True),
        ("sel: {User: a, event_type: x}", {"user": "a", "event_type": "y"}, False),
    ],
)
def test_the_supported_subset_matches_like_sigma(
    tmp_path: Path, detection: str, raw: dict[str, Any], expected: bool
) -> None:
    body = f"detection:\n  {detection}\n  condition: sel\n"
    policy = load_policy(None, [sigma(tmp_path, body)])
    assert fired(policy, raw) is expected


@pytest.mark.parametrize(
    ("condition", "raw", "expected"),
    [
        ("1 of sel_*", {"user": "b"}, True),
        ("all of sel_*", {"user": "b"}, False),
        ("all of them", {"user": "a", "event_type": "x"}, False),
        ("sel_a and not sel_b", {"user": "a"}, True),
        ("(sel_a or sel_b) and not other", {"user": "b", "event_type": "x"}, False),
        ("any of sel_*", {"user": "a"}, True),
    ],
)
def test_condition_expressions(
    tmp_path: Path, condition: str, raw: dict[str, Any], expected: bool
) -> None:
    body = (
        "detection:\n"
        "  sel_a: {User: a}\n"
        "  sel_b: {User: b}\n"
        "  other: {event_type: x}\n"
        f"  condition: {condition}\n"
    )
    assert fired(load_policy(None, [sigma(tmp_path, body)]), raw) is expected


def test_a_list_of_conditions_is_any_of_them(tmp_path: Path) -> None:
    body = "detection:\n  a: {User: a}\n  b: {User: b}\n  condition:\n    - a\n    - b\n"
    policy = load_policy(None, [sigma(tmp_path, body)])
    assert fired(policy, {"user": "a"})
    assert fired(policy, {"user": "b"})
    assert not fired(policy, {"user": "c"})


def test_frostgate_section_sets_id_points_and_scope(tmp_path: Path) -> None:
    body = (
        "detection:\n  sel: {User: root}\n  condition: sel\n"
        "frostgate:\n"
        "  id: root-anywhere\n"
        "  points: 35\n"
        "  anomaly_score: 0.6\n"
        "  when: {field: source, op: eq, value: sshd}\n"
    )
    policy = load_policy(None, [sigma(tmp_path, body)])
    decision = evaluate(normalize({"user": "root", "source": "sshd"}), policy, now=NOW)
    assert decision.rules_triggered == ("root-anywhere",)
    assert (decision.score, decision.anomaly_score) == (35, 0.6)
    other = evaluate(normalize({"user": "root", "source": "web"}), policy, now=NOW)
    assert "root-anywhere" not in other.rules_triggered


def test_a_block_needs_its_target(tmp_path: Path) -> None:
    body = SSH_ROOT.replace("all of selection_*", "selection_user")
    policy = load_policy(None, [sigma(tmp_path, body)])
    assert fired(policy, {"user": "root", "src_ip": "192.0.2.1"})
    assert not fired(policy, {"user": "root"})  # no address: nothing to block, no fire


def test_informational_is_zero_points(tmp_path: Path) -> None:
    header = HEADER.replace("level: high", "level: informational")
    policy = load_policy(
        None, [sigma(tmp_path, "detection:\n  s: {User: x}\n  condition: s\n", header)]
    )
    decision = evaluate(normalize({"user": "x"}), policy, now=NOW)
    assert decision.rules_triggered == (RULE_ID,)
    assert decision.score == 0


# --------------------------------------------------------------------------- refusals


def test_count_aggregation_is_refused_with_file_line_and_construct(tmp_path: Path) -> None:
    path = sigma(
        tmp_path,
        "detection:\n"
        "  selection: {event_type: ssh_login_failed}\n"
        "  condition: selection | count() by IpAddress > 5\n",
    )
    assert refused(path) == [
        (
            line_of(path, "condition:"),
            "Sigma aggregation 'count()' is not supported "
            "(use a FrostGate rule pack with a window clause for counting)",
        )
    ]


def test_near_is_refused(tmp_path: Path) -> None:
    path = sigma(
        tmp_path,
        "detection:\n  a: {User: a}\n  b: {User: b}\n  condition: a | near b\n",
    )
    assert refused(path) == [
        (line_of(path, "condition:"), "Sigma 'near' (temporal proximity) is not supported")
    ]


def test_every_unsupported_construct_is_listed_at_its_line(tmp_path: Path) -> None:
    path = sigma(
        tmp_path,
        "detection:\n"
        "  enc:\n"
        "    CommandLine|base64offset|contains: whoami\n"
        "  dash:\n"
        "    CommandLine|windash|contains: ' -enc '\n"
        "  ref:\n"
        "    User|fieldref: TargetUserName\n"
        "  keywords:\n"
        "    - mimikatz\n"
        "  backref:\n"
        "    Msg|re: '(a)\\1'\n"
        "  net:\n"
        "    SourceIp|cidr: 10.0.0.300/8\n"
        "  timeframe: 5m\n"
        "  condition: 1 of them\n",
    )
    problems = refused(path)
    lines = [line for line, _ in problems]
    assert lines == sorted(lines)
    text = "\n".join(f"{line}: {message}" for line, message in problems)
    for snippet, reason in [
        ("CommandLine|base64offset", "modifier 'base64offset'"),
        ("CommandLine|windash", "modifier 'windash'"),
        ("User|fieldref", "modifier 'fieldref'"),
        ("- mimikatz", "keyword detections (values without a field) are not supported"),
        ("Msg|re", "invalid escape sequence"),
        ("SourceIp|cidr", "10.0.0.300/8"),
        ("timeframe", "Sigma 'timeframe' (an aggregation window) is not supported"),
    ]:
        assert f"{line_of(path, snippet)}: " in text
        assert any(
            line == line_of(path, snippet) and reason in message for line, message in problems
        ), (snippet, problems)


def test_correlation_rules_are_refused(tmp_path: Path) -> None:
    text = """
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [IpAddress]
  timespan: 5m
  condition: {gte: 10}
"""
    path = write(tmp_path, "corr.yml", text)
    assert refused(path) == [
        (
            line_of(path, "correlation:"),
            "Sigma correlation rules (type 'event_count') are not supported",
        )
    ]


def test_a_rule_collection_is_refused(tmp_path: Path) -> None:
    text = """
action: global
title: Shared
logsource: {product: linux}
---
detection:
  s: {User: x}
  condition: s
"""
    path = write(tmp_path, "collection.yml", text)
    ((line, message),) = refused(path)
    assert line == line_of(path, "detection:")
    assert "a second YAML document" in message


@pytest.mark.parametrize(
    ("body", "snippet", "reason"),
    [
        (
            "detection:\n  s: {failures: many}\n  condition: s\n",
            "failures: many",
            "Sigma field 'failures': 'failures' holds whole numbers, not 'many'",
        ),
        (
            # "²".isdigit() is true and int("²") raises: this was a bare ValueError
            'detection:\n  s: {failures: "\u00b2"}\n  condition: s\n',
            "failures: ",
            "Sigma field 'failures': 'failures' holds whole numbers, not '\u00b2'",
        ),
        (
            "detection:\n  s: {User: x}\n  condition: s\nfrostgate:\n  points: lots\n",
            "points: lots",
            "frostgate.points: 'lots' is not of type 'integer'",
        ),
        (
            "detection:\n  s: {User: x}\n  condition: s\nfrostgate:\n  severity: 3\n",
            "severity: 3",
            "('severity' was unexpected)",
        ),
        (
            "detection:\n  s: {User: x}\n  condition: s\nfrostgate:\n  id: brute_force\n",
            "id: brute_force",
            "rule id 'brute_force' is already defined in default.yaml",
        ),
        (
            "detection:\n  s: {User: x}\n  condition: s\n"
            "frostgate:\n  mitigation: {action: nuke, confidence: 1, reason: r}\n",
            "mitigation:",
            "mitigation.action: 'nuke' has no entry in mitigations",
        ),
        (
            "detection:\n  s: {User: x}\n  condition: s and missing\n",
            "condition:",
            "Sigma: Detection 'missing' not defined in detections",
        ),
    ],
)
def test_bad_sigma_rules_are_refused_at_their_line(
    tmp_path: Path, body: str, snippet: str, reason: str
) -> None:
    path = sigma(tmp_path, body)
    problems = refused(path)
    assert any(
        line == line_of(path, snippet) and reason in message for line, message in problems
    ), problems


def test_a_rule_without_level_or_points_is_refused(tmp_path: Path) -> None:
    header = HEADER.replace("level: high\n", "")
    path = sigma(tmp_path, "detection:\n  s: {User: x}\n  condition: s\n", header)
    ((line, message),) = refused(path)
    assert line == 1
    assert "Sigma level None gives no points" in message


def test_pysigma_errors_are_all_reported(tmp_path: Path) -> None:
    header = "id: not-a-uuid\nlevel: low\nlogsource: {product: linux}\n"
    path = sigma(tmp_path, "detection:\n  s: {User: x}\n  condition: s\n", header)
    assert refused(path) == [
        (1, "Sigma: Sigma rule identifier must be an UUID"),
        (1, "Sigma: Sigma rule must have a title"),
    ]


def test_sigma_metadata_is_accepted(tmp_path: Path) -> None:
    header = HEADER + (
        "date: 2024-01-15\nmodified: 2024/02/01\nauthor: someone\n"
        "tags: [attack.credential_access, attack.t1110]\nfalsepositives: [Unknown]\n"
    )
    policy = load_policy(
        None, [sigma(tmp_path, "detection:\n  s: {User: x}\n  condition: s\n", header)]
    )
    assert fired(policy, {"user": "X"})
