"""Rule files (policies and rule packs): YAML, the JSON Schema and the compiler refuse bad
input with ``file:line: reason``; packs merge before the fallback, all or nothing.

Everything runs the real loader, schema and compiler on files written to disk.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from frostgate.engine import (
    Problem,
    RuleFileError,
    evaluate,
    load_policy,
    normalize,
    policy_from_document,
)
from tests.engine.engine_policies import NOW, default_document
from tests.rules.rule_files import line_of, where, write

DEFAULT_YAML = resources.files("frostgate.engine").joinpath("policies/default.yaml").read_text()


def refusal(policy: Path | None, packs: list[Path] | None = None) -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        load_policy(policy, packs or [])
    return info.value


def pack(tmp_path: Path, rules: str, name: str = "pack.yaml", header: str = "") -> Path:
    body = f"pack: test-pack\nversion: '1'\n{header}rules:\n" + rules
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- YAML


def test_bad_yaml_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "pack: p\nversion: '1'\nrules:\n  - id: [unclosed\n")
    error = refusal(None, [path])
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert (problem.file, problem.line) == (str(path), 5)
    assert problem.message.startswith("not valid YAML")
    assert str(error) == f"{path}:5: {problem.message}"


def test_a_repeated_key_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = pack(tmp_path, "  - id: a\n    points: 10\n    points: 90\n")
    error = refusal(None, [path])
    assert [str(p) for p in error.problems] == [
        f"{path}:6: not valid YAML: duplicate key 'points' in one mapping"
    ]


def test_a_second_yaml_document_is_refused(tmp_path: Path) -> None:
    path = pack(tmp_path, "  - id: a\n    points: 1\n---\npack: other\n")
    (problem,) = refusal(None, [path]).problems
    assert problem.line == line_of(path, "pack: other")
    assert "a second YAML document" in problem.message


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    started = time.perf_counter()
    (problem,) = refusal(path).problems
    assert time.perf_counter() - started < 5
    assert "expands to more than" in problem.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "42\n"])
def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "x.yaml", text)
    (problem,) = refusal(path).problems
    assert problem.message == "the document must be a mapping at the top level"


# --------------------------------------------------------------------------- schema


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    text = resources.files("frostgate.engine").joinpath("schemas/rules.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(default_document())) == []


def test_shipped_policies_pass_the_schema() -> None:
    folder = resources.files("frostgate.jobs").joinpath("simulation/policies")
    names = [p.name for p in folder.iterdir() if p.name.endswith(".yaml")]
    assert names
    for name in names:
        with resources.as_file(folder.joinpath(name)) as path:
            assert load_policy(path).version


def test_unknown_fields_are_refused_at_their_line(tmp_path: Path) -> None:
    text = DEFAULT_YAML.replace(
        "    points: 60\n", "    points: 60\n    severity: high\n    points_extra: 2\n", 1
    )
    path = write(tmp_path, "policy.yaml", text)
    problems = refusal(path).problems
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert str(problems[0]).startswith(where(path, "severity: high"))
    assert "('points_extra', 'severity' were unexpected)" in problems[0].message
    assert problems[0].message.startswith("rule 'suspicious_llm_usage':")


def test_every_shape_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = pack(
        tmp_path,
        "  - id: a\n"
        "    points: lots\n"
        "    when: {field: user, op: equals, value: root}\n"
        "  - id: b\n"
        "    points: 1\n"
        "    mitigation: {action: block_ip, confidence: 2, reason: r}\n",
    )
    messages = {(p.line, p.message) for p in refusal(None, [path]).problems}
    assert (5, "rule 'a'.points: 'lots' is not of type 'integer'") in messages
    assert any(line == 6 and "'equals' is not one of" in m for line, m in messages)
    assert any(
        line == 9 and "confidence: 2 is greater than the maximum of 1" in m for line, m in messages
    )


def test_semantic_problems_are_located_too(tmp_path: Path) -> None:
    path = pack(
        tmp_path,
        "  - id: first\n    points: 1\n    unless_fired: [later]\n  - id: later\n    points: 1\n",
    )
    (problem,) = refusal(None, [path]).problems
    assert str(problem) == (
        f"{path}:6: rule 'first'.unless_fired: 'later' is not an earlier rule (rules run in order)"
    )


def test_documents_built_in_code_pass_the_schema_as_well() -> None:
    doc = default_document()
    doc["rules"][0]["description"] = 42  # the compiler has no opinion; the schema does
    with pytest.raises(ValueError, match=r"rule 'brute_force'\.description: 42 is not of type"):
        policy_from_document(doc)


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("window", "snippet", "reason"),
    [
        (
            "{key: src_ip, count: 1, seconds: 60}",
            "window:",
            "count: 1 is less than the minimum of 2",
        ),
        (
            "{key: src_ip, count: 5, seconds: 0}",
            "window:",
            "seconds: 0 is less than the minimum of 1",
        ),
        (
            "{key: src_ip, count: 5, seconds: 172800}",
            "window:",
            "seconds: 172800 is greater than the maximum of 86400",
        ),
        ("{key: payload.ip, count: 5, seconds: 60}", "window:", "'payload.ip' is not one of"),
        (
            "{key: src_ip, distinct: src_ip, count: 5, seconds: 60}",
            "window:",
            "distinct: must be one of src_ip, src_net, user, source, other than the key",
        ),
        (
            "{key: src_ip, distinct: src_net, count: 5, seconds: 60}",
            "window:",
            "distinct: src_net is fixed by src_ip: it never counts past 1",
        ),
        (
            "{key: user, count: 5, seconds: 60}",
            "window:",
            "the rule only matches events without 'user'",
        ),
    ],
)
def test_impossible_windows_are_refused(
    tmp_path: Path, window: str, snippet: str, reason: str
) -> None:
    path = pack(
        tmp_path,
        "  - id: counted\n"
        "    points: 10\n"
        "    when:\n"
        "      all:\n"
        "        - {field: src_ip, op: exists}\n"
        "        - {field: user, op: exists, value: false}\n"
        f"    window: {window}\n",
    )
    (problem,) = refusal(None, [path]).problems
    assert problem.line == line_of(path, snippet)
    assert reason in problem.message


# --------------------------------------------------------------------------- ops


def fires(when: str, raw: dict[str, object], tmp_path: Path) -> bool:
    path = pack(tmp_path, f"  - id: probe\n    points: 10\n    when: {when}\n")
    policy = load_policy(None, [path])
    return "probe" in evaluate(normalize(raw), policy, now=NOW).rules_triggered


@pytest.mark.parametrize(
    ("when", "raw", "expected"),
    [
        ("{field: failures, op: gt, value: 3}", {"failures": 4}, True),
        ("{field: failures, op: gt, value: 3}", {"failures": 3}, False),
        ("{field: failures, op: lt, value: 3}", {"failures": 2}, True),
        ("{field: failures, op: lt, value: 3}", {}, False),
        ("{field: payload.n, op: gt, value: 1.5}", {"payload": {"n": 2}}, True),
        ("{field: payload.n, op: lt, value: 1.5}", {"payload": {"n": "1"}}, False),
        ("{field: payload.n, op: gt, value: 0}", {"payload": {"n": True}}, False),
        ("{field: user, op: regex, value: '^adm'}", {"user": "admin"}, True),
        ("{field: user, op: regex, value: '^adm'}", {"user": "sysadm"}, False),
        ("{field: user, op: regex, value: '(?i)ROOT'}", {"user": "xrootx"}, True),
        (
            "{field: ecs_category, op: regex, value: '^auth'}",
            {"event": {"category": "authentication"}},
            True,
        ),
        (
            "{field: payload.ua, op: regex, value: nmap}",
            {"payload": {"ua": ["curl", "nmap"]}},
            True,
        ),
        ("{field: payload.ua, op: regex, value: '1'}", {"payload": {"ua": 1}}, False),
        ("{field: src_ip, op: cidr, value: 10.0.0.0/8}", {"src_ip": "10.9.8.7"}, True),
        ("{field: src_ip, op: cidr, value: 10.0.0.0/8}", {"src_ip": "11.0.0.1"}, False),
        ("{field: src_ip, op: cidr, value: 10.0.0.0/8}", {}, False),
        (
            "{field: src_ip, op: cidr, value: ['192.0.2.0/24', '2001:db8::/32']}",
            {"src_ip": "2001:db8::7"},
            True,
        ),
        (
            "{field: payload.peer, op: cidr, value: 10.0.0.0/8}",
            {"payload": {"peer": "::ffff:10.0.0.1"}},
            True,
        ),
        (
            "{field: payload.peer, op: cidr, value: 10.0.0.0/8}",
            {"payload": {"peer": "not an ip"}},
            False,
        ),
        (
            "{field: payload.peer, op: cidr, value: 10.0.0.0/8}",
            {"payload": {"peer": 167772161}},
            False,
        ),
        ("{not: {field: src_ip, op: cidr, value: 10.0.0.0/8}}", {"src_ip": "192.0.2.1"}, True),
        ("{not: {field: src_ip, op: cidr, value: 10.0.0.0/8}}", {"src_ip": "10.0.0.1"}, False),
    ],
)
def test_new_ops_match_what_they_say(
    tmp_path: Path, when: str, raw: dict[str, object], expected: bool
) -> None:
    assert fires(when, raw, tmp_path) is expected


def test_a_catastrophic_regex_cannot_stall_evaluation(tmp_path: Path) -> None:
    """``(a+)+$`` backtracks exponentially in Python's re on 'aaa...!'; on RE2 it is linear,
    so it is accepted and a 100,000-character hostile payload is decided at once."""
    path = pack(
        tmp_path,
        "  - id: redos\n    points: 10\n    when: {field: payload.q, op: regex, value: '(a+)+$'}\n",
    )
    policy = load_policy(None, [path])
    hostile = normalize({"payload": {"q": "a" * 100_000 + "!"}})
    started = time.perf_counter()
    decision = evaluate(hostile, policy, now=NOW)
    assert time.perf_counter() - started < 0.5
    assert "redos" not in decision.rules_triggered
    assert (
        "redos" in evaluate(normalize({"payload": {"q": "aaa"}}), policy, now=NOW).rules_triggered
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\\1", "invalid escape sequence"),  # a backreference
        ("(?=admin)", "invalid perl operator"),  # lookahead
        ("(?<!x)y", "invalid perl operator"),  # lookbehind
        ("(x{1000}){1000}", "invalid repetition size"),  # a program too large to build
        ("[unclosed", "missing ]"),
    ],
)
def test_regexes_that_are_not_linear_time_are_refused_at_their_line(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    path = pack(
        tmp_path,
        "  - id: ok\n    points: 1\n"
        "  - id: bad\n    points: 1\n"
        f'    when: {{field: payload.q, op: regex, value: "{pattern}"}}\n',
    )
    (problem,) = refusal(None, [path]).problems
    assert problem.line == line_of(path, "op: regex")
    assert problem.message.startswith("rule 'bad'.when.value: regex ")
    assert reason in problem.message


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (
            "{field: src_ip, op: cidr, value: 10.0.0.1/8}",
            "has host bits set); did you mean '10.0.0.0/8'?",
        ),
        (
            "{field: src_ip, op: cidr, value: [10.0.0.0/8, nope]}",
            "value[1]: 'nope' is not a network",
        ),
        ("{field: user, op: cidr, value: 10.0.0.0/8}", "cidr needs an address field"),
        ("{field: failures, op: regex, value: '1'}", "regex needs a text or list field"),
        ("{field: user, op: gt, value: 1}", "gt needs a numeric field"),
    ],
)
def test_ops_on_the_wrong_field_or_value_are_refused(
    tmp_path: Path, when: str, reason: str
) -> None:
    path = pack(tmp_path, f"  - id: probe\n    points: 1\n    when: {when}\n")
    (problem,) = refusal(None, [path]).problems
    assert problem.line == line_of(path, "when:")
    assert reason in problem.message


# --------------------------------------------------------------------------- packs


SSH_PACK = """
  - id: root_outside
    points: 60
    unless_fired: [brute_force]
    when:
      all:
        - {field: user, op: eq, value: root}
        - {field: src_ip, op: exists}
        - not: {field: src_ip, op: cidr, value: [10.0.0.0/8]}
    mitigation:
      action: block_ip
      target_field: src_ip
      confidence: 0.7
      reason: "root from {src_ip}"
      ttl_seconds: 900
"""


def test_a_pack_merges_before_the_fallback_and_into_the_fingerprint(tmp_path: Path) -> None:
    path = pack(tmp_path, SSH_PACK.lstrip("\n"))
    policy = load_policy(None, [path])
    ids = [r["id"] for r in policy.document["rules"]]
    assert ids[-2:] == ["root_outside", "default_allow"]
    assert policy.document["packs"] == [{"name": "test-pack", "version": "1"}]
    assert policy.hash != load_policy().hash
    assert "packs" not in load_policy().document  # the default alone is unchanged
    decision = evaluate(normalize({"user": "root", "src_ip": "192.0.2.5"}), policy, now=NOW)
    assert decision.rules_triggered == ("root_outside",)
    (mitigation,) = decision.mitigations
    assert (mitigation.target, mitigation.ttl_seconds) == ("192.0.2.5", 900)
    inside = evaluate(normalize({"user": "root", "src_ip": "10.0.0.5"}), policy, now=NOW)
    assert inside.rules_triggered == ("default_allow",)


def test_a_duplicate_rule_id_is_refused_naming_both_files(tmp_path: Path) -> None:
    first = pack(tmp_path, SSH_PACK.lstrip("\n"), name="a.yaml")
    second = pack(
        tmp_path,
        "  - id: ok_one\n    points: 1\n  - id: root_outside\n    points: 2\n",
        name="b.yaml",
    )
    clash = pack(tmp_path, "  - id: brute_force\n    points: 2\n", name="c.yaml")
    error = refusal(None, [first, second, clash])
    assert [str(p) for p in error.problems] == [
        f"{second}:6: rule id 'root_outside' is already defined in {first}",
        f"{clash}:4: rule id 'brute_force' is already defined in default.yaml",
    ]


def test_a_pack_cannot_add_a_fallback(tmp_path: Path) -> None:
    path = pack(tmp_path, "  - id: late\n    points: 0\n    fallback: true\n")
    (problem,) = refusal(None, [path]).problems
    assert (problem.line, problem.message) == (
        6,
        "rule 'late': a pack cannot add a fallback rule (the policy's fallback stays last)",
    )


def test_a_pack_uses_the_policys_actions(tmp_path: Path) -> None:
    path = pack(
        tmp_path,
        "  - id: nuke\n    points: 1\n    mitigation: {action: nuke, confidence: 0.5, reason: r}\n",
    )
    (problem,) = refusal(None, [path]).problems
    assert problem.line == 6
    assert "mitigation.action: 'nuke' has no entry in mitigations" in problem.message


def test_loading_is_all_or_nothing(tmp_path: Path) -> None:
    good = pack(tmp_path, SSH_PACK.lstrip("\n"), name="good.yaml")
    bad = pack(
        tmp_path,
        "  - id: x\n    points: 1\n    when: {field: nope, op: eq, value: 1}\n",
        name="bad.yaml",
    )
    error = refusal(None, [good, bad])
    assert [p.file for p in error.problems] == [str(bad)]
    assert "unknown field 'nope'" in error.problems[0].message
    assert isinstance(error, ValueError)


def test_kinds_are_not_confused(tmp_path: Path) -> None:
    policy_file = write(tmp_path, "policy.yaml", DEFAULT_YAML)
    (problem,) = refusal(None, [policy_file]).problems
    assert "this is a policy, not a rule pack" in problem.message
    pack_file = pack(tmp_path, SSH_PACK.lstrip("\n"))
    (problem,) = refusal(pack_file).problems
    assert "this is a rulepack file, not a policy" in problem.message


def test_a_missing_pack_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy(None, [tmp_path / "absent.yaml"])


def test_problems_sort_by_file_and_line() -> None:
    problems = sorted([Problem("b", 1, "x"), Problem("a", 9, "y"), Problem("a", 2, "z")])
    assert [str(p) for p in problems] == ["a:2: z", "a:9: y", "b:1: x"]
